# cython: language_level=3
"""The compiled fast-build engine: the plainest backends and pool members, built directly.

The twin `_fastbuild_py` line for line, with the name and address checks as loops over the
characters in C; `maglev.config.fastbuild` says what is taken and why. Called on whichever
thread loads the config; no state.
"""

import ipaddress

from maglev.model import Backend, PoolMember

cdef object _IPv4Address = ipaddress.IPv4Address
cdef object _IPv6Address = ipaddress.IPv6Address
cdef object _new = ipaddress.IPv4Address.__new__


cdef inline object _address(long long n):
    # What `IPv4Address(n)` makes (its __init__ checks the range, done here, and sets `_ip`),
    # without running that __init__ in Python: a fifth of building a backend.
    cdef object a = _new(_IPv4Address)
    a._ip = n
    return a


cdef inline int _version(object address):
    if type(address) is _IPv4Address:
        return 4
    if type(address) is _IPv6Address:
        return 6
    return address.version
cdef object _Backend = Backend
cdef object _PoolMember = PoolMember


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


def backend(str name, object value, object healthchecks):
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
    return _Backend(name, _address(n), check, enabled)


def members(object data, int version, object backends, object seen):
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
        out.append(_PoolMember(bname, weight, None))
    return tuple(out)


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
