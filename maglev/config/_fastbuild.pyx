# cython: language_level=3
"""The compiled fast-build engine: the plainest backends, pool members and frontends, built
directly.

The twin `_fastbuild_py` line for line, with the name and address checks as loops over the
characters in C, and the frozen model objects filled in as their dataclass `__init__` fills them
(`object.__setattr__` of each field, here the C function it is) without running that `__init__`
in Python: most of building a backend or a member. `maglev.config.fastbuild` says what is taken
and why. Called on whichever thread loads the config; no state.
"""

from cpython.object cimport PyObject_GenericSetAttr, PyTypeObject
from cpython.ref cimport PyObject

import dataclasses
import ipaddress

from maglev.config._fastload_types import let_others_run
from maglev.model import Backend, Encap, Frontend, Pool, PoolMember, Protocol

cdef object _IPv4Address = ipaddress.IPv4Address
cdef object _IPv6Address = ipaddress.IPv6Address
cdef tuple _NO_ARGS = ()


cdef inline object _blank(object cls):
    """`object.__new__(cls)`, called as C (the model classes and IPv4Address have no __new__)."""
    return (<PyTypeObject *>cls).tp_new(<type>cls, <PyObject *>_NO_ARGS, NULL)


cdef inline object _address(long long n):
    # What `IPv4Address(n)` makes (its __init__ checks the range, done here, and sets `_ip`),
    # without running that __init__ in Python: a fifth of building a backend.
    cdef object a = _blank(_IPv4Address)
    a._ip = n
    return a


cdef inline int _version(object address):
    if type(address) is _IPv4Address:
        return 4
    if type(address) is _IPv6Address:
        return 6
    return address.version
# The sections `section` knows (`fastbuild.HEALTHCHECKS` ...), and the backends' worth of work
# between two calls of `let_others_run`.
cdef enum:
    YIELD_EVERY = 256
    HEALTHCHECKS = 0
    BACKENDS = 1
    FRONTENDS = 2

cdef object _Backend = Backend
cdef object _PoolMember = PoolMember
cdef object _Frontend = Frontend
cdef object _Pool = Pool
cdef object _IPv4Network = ipaddress.IPv4Network
# The fields a frontend always has (set first, in this order) and the defaults of the others,
# as its `__init__` sets them when given only the first.
cdef tuple _FRONTEND_GIVEN = ("name", "address", "protocol", "port", "encap", "pools")
cdef tuple _FRONTEND_DEFAULTS = tuple(
    (f.name, f.default) for f in dataclasses.fields(Frontend) if f.name not in _FRONTEND_GIVEN
)
if tuple(f.name for f in dataclasses.fields(Frontend))[:6] != _FRONTEND_GIVEN or any(
    d is dataclasses.MISSING for _, d in _FRONTEND_DEFAULTS
):
    raise ImportError("maglev.model.Frontend's fields are not those _fastbuild fills in")
cdef dict _PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP}
cdef object _TCP = Protocol.TCP
cdef dict _ENCAPS = {"gre4": Encap.GRE4, "gre6": Encap.GRE6, "nat4": Encap.NAT4}


cdef inline object _member(object backend, object weight):
    """`PoolMember(backend, weight, None)`, its fields set as its `__init__` sets them."""
    cdef object m = _blank(_PoolMember)
    PyObject_GenericSetAttr(m, "backend", backend)
    PyObject_GenericSetAttr(m, "weight", weight)
    PyObject_GenericSetAttr(m, "slow_start", None)
    return m


cdef inline object _backend(object name, object address, object check, object enabled):
    """`Backend(name, address, check, enabled)`, as `_member`."""
    cdef object b = _blank(_Backend)
    PyObject_GenericSetAttr(b, "name", name)
    PyObject_GenericSetAttr(b, "address", address)
    PyObject_GenericSetAttr(b, "healthcheck", check)
    PyObject_GenericSetAttr(b, "enabled", enabled)
    return b


def engine_name():
    return "cython"


cdef inline bint _head(Py_UCS4 c):
    return (c >= 'A' and c <= 'Z') or (c >= 'a' and c <= 'z') or (c >= '0' and c <= '9') or c == '_'


cpdef bint plain_name(str name):
    """`validate._NAME.fullmatch(name)`: a letter, digit or '_', then up to 63 of those, '.' or
    '-' (ASCII only)."""
    cdef Py_ssize_t n = len(name)
    cdef Py_UCS4 c
    if n == 0 or n > 64 or not _head(name[0]):
        return False
    for c in name:
        if not (_head(c) or c == '.' or c == '-'):
            return False
    return True


cpdef long long ipv4(str text):
    """A dotted quad as `ipaddress` accepts it (four decimal octets of 1 to 3 digits, no leading
    zero, each at most 255) as its integer; -1 for anything else (the full path decides)."""
    cdef long long n = 0
    cdef int octet = 0, digits = 0, parts = 0
    cdef bint zero_first = False
    cdef Py_UCS4 c
    if len(text) > 15:
        return -1
    for c in text:
        if c == '.':
            if digits == 0 or parts == 3:
                return -1
            n = (n << 8) | octet
            parts += 1
            octet = digits = 0
            continue
        if c < '0' or c > '9':
            return -1
        if digits == 1 and zero_first:
            return -1
        if digits == 0:
            zero_first = c == '0'
        digits += 1
        if digits > 3:
            return -1
        octet = octet * 10 + (<int>c - 48)
        if octet > 255:
            return -1
    if digits == 0 or parts != 3:
        return -1
    return (n << 8) | octet


cpdef object backend(str name, object value, object healthchecks):
    """The backend `name: value` if it is plain (see `fastbuild`), else None."""
    cdef long long n
    if type(value) is not dict or not plain_name(name):
        return None
    for k in <dict>value:
        if type(k) is not str or not (k == "address" or k == "healthcheck" or k == "enabled"):
            return None
    address = (<dict>value).get("address")
    if type(address) is not str:
        return None
    n = ipv4(<str>address)
    if n < 0:
        return None
    check = (<dict>value).get("healthcheck")
    if check is not None:
        if type(check) is not str or not (<str>check).strip() or check not in healthchecks:
            return None
    enabled = (<dict>value).get("enabled")
    if enabled is None:
        enabled = True
    elif type(enabled) is not bool:
        return None
    return _backend(name, _address(n), check, enabled)


cpdef object members(object data, int version, object backends, object seen):
    """A pool's members if every one is plain (see `fastbuild`), else None; `version` is the
    IP version the encap needs of backends (0: no encap known), `seen` the frontend's backends
    already in a pool (not changed here: the caller records these)."""
    cdef list out = []
    cdef object weight
    if type(data) is not dict or not data:
        return None
    for bname, spec in (<dict>data).items():
        if bname in seen:
            return None
        if spec is None:
            weight = 100
        elif type(spec) is dict:
            if len(<dict>spec) == 0:
                weight = 100
            elif len(<dict>spec) == 1:
                weight = (<dict>spec).get("weight", -1)
                if weight is None:
                    weight = 100
                elif type(weight) is not int or not 0 <= weight <= 100:
                    return None
            else:
                return None
        else:
            return None
        be = backends.get(bname)
        if be is None or (version and _version(be.address) != version):
            return None
        out.append(_member(bname, weight))
    return tuple(out)


cpdef object frontend(str name, object value, object backends):
    """The frontend `name: value` if it is plain (see `fastbuild`), else None."""
    cdef long long n
    cdef list pools = []
    cdef set names = set()
    cdef dict seen = {}
    if type(value) is not dict or not plain_name(name):
        return None
    for k in <dict>value:
        if type(k) is not str or not (
            k == "address" or k == "protocol" or k == "port" or k == "encap" or k == "pools"
        ):
            return None
    address = (<dict>value).get("address")
    if type(address) is not str:
        return None
    n = ipv4(<str>address)
    if n < 0:
        return None
    protocol = (<dict>value).get("protocol")
    if protocol is None:
        protocol = _TCP
    else:
        if type(protocol) is not str:
            return None
        protocol = _PROTOCOLS.get(protocol)
        if protocol is None:
            return None
    port = (<dict>value).get("port")
    if type(port) is not int or not 0 < port <= 65535:
        return None
    encap = (<dict>value).get("encap")
    if type(encap) is not str:
        return None
    enc = _ENCAPS.get(encap)
    if enc is None:
        return None
    items = (<dict>value).get("pools")
    if type(items) is not list or not items:
        return None
    version = enc.backend_version
    for item in <list>items:
        if type(item) is not dict:
            return None
        for k in <dict>item:
            if type(k) is not str or not (k == "name" or k == "backends"):
                return None
        pname = (<dict>item).get("name")
        if type(pname) is not str or not (<str>pname).strip() or pname in names:
            return None
        names.add(pname)
        data = (<dict>item).get("backends")
        if type(data) is not dict:
            return None
        built = members(data, version, backends, seen)
        if built is None:
            return None
        for m in <tuple>built:
            seen[(<object>m).backend] = pname
        pool = _blank(_Pool)
        PyObject_GenericSetAttr(pool, "name", pname)
        PyObject_GenericSetAttr(pool, "members", built)
        pools.append(pool)
    fe = _blank(_Frontend)
    given = (name, _IPv4Network(n), protocol, port, enc, tuple(pools))
    for field, v in zip(_FRONTEND_GIVEN, given):
        PyObject_GenericSetAttr(fe, field, v)
    for field, default in _FRONTEND_DEFAULTS:
        PyObject_GenericSetAttr(fe, field, default)
    return fe


cpdef bint same(object a, object b):
    """Whether two parsed values mean the same: equal, of the same type at every level (`1`,
    `1.0`, `true` and `"1"` differ, as their `repr`s do), mappings in the same order."""
    cdef Py_ssize_t i, n
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        if len(<dict>a) != len(<dict>b):
            return False
        for (k1, v1), (k2, v2) in zip((<dict>a).items(), (<dict>b).items()):
            if not same(k1, k2) or not same(v1, v2):
                return False
        return True
    if t is list:
        n = len(<list>a)
        if n != len(<list>b):
            return False
        for i in range(n):
            if not same((<list>a)[i], (<list>b)[i]):
                return False
        return True
    if t is float:
        return repr(a) == repr(b)  # -0.0 is not 0.0, nan is nan
    return a == b


cdef bint _refers(int kind, object obj, object rebuilt):
    """Whether the built `obj` names one of `rebuilt`: a backend its healthcheck, a frontend
    one of its backends."""
    if kind == BACKENDS:
        check = obj.healthcheck
        return check is not None and check in rebuilt
    if kind == FRONTENDS:
        for pool in <tuple>obj.pools:
            for m in <tuple>pool.members:
                if m.backend in rebuilt:
                    return True
    return False


def section(int kind, dict data, object context, object old, object new, object rebuilt):
    """One named section (`kind`: HEALTHCHECKS, BACKENDS or FRONTENDS) in one loop: (every name
    -> its object, None where the general validator must decide; the names whose object is
    not the memo's; those the validator must decide, in order). See `fastbuild.section`."""
    cdef dict out = {}
    cdef set changed = set()
    cdef list rest = []
    cdef bint memo = old is not None and new is not None
    cdef bint any_rebuilt = bool(rebuilt)
    # This loop runs no Python bytecode, so it never hands the GIL to a check worker that asked
    # for it: a call into Python every ~0.3 ms of work does (a frontend is about 16 backends'
    # work), as in `_fastload`.
    cdef int budget = YIELD_EVERY
    cdef int cost = 16 if kind == FRONTENDS else 1
    for name, value in data.items():
        budget -= cost
        if budget <= 0:
            budget = YIELD_EVERY
            let_others_run()
        if memo:
            hit = (<dict>old).get(name)
            if hit is not None and same((<tuple>hit)[0], value):
                obj = (<tuple>hit)[1]
                if not any_rebuilt or not _refers(kind, obj, rebuilt):
                    out[name] = obj
                    (<dict>new)[name] = hit
                    continue
        changed.add(name)
        built = None
        if type(name) is str:
            if kind == BACKENDS:
                built = backend(<str>name, value, context)
            elif kind == FRONTENDS:
                built = frontend(<str>name, value, context)
        out[name] = built
        if built is None:
            rest.append(name)
        elif new is not None:
            (<dict>new)[name] = (value, built)
    return out, changed, rest
