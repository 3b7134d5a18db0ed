"""The pure-Python twin of `_fastbuild`: the plainest backends, pool members and frontends, built
directly.

`maglev.config.fastbuild` says what is taken and why; the compiled `_fastbuild` is this module
line for line, with C types. Called on whichever thread loads the config; no state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from maglev.model import Backend, Encap, Frontend, Pool, PoolMember, Protocol

_HEAD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAIL = _HEAD | frozenset(".-")
_DIGITS = frozenset("0123456789")
_BACKEND_KEYS = frozenset(("address", "healthcheck", "enabled"))
_FRONTEND_KEYS = frozenset(("address", "protocol", "port", "encap", "pools"))
_POOL_KEYS = frozenset(("name", "backends"))
_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP}
# The encaps a plain IPv4 VIP with a port may have with no other key (l3dsr needs `dscp`, nat6
# an IPv6 VIP): those of `validate.family_rules` that pass for it.
_ENCAPS = {"gre4": Encap.GRE4, "gre6": Encap.GRE6, "nat4": Encap.NAT4}


def engine_name() -> str:
    return "python"


def plain_name(name: str) -> bool:
    """`validate._NAME.fullmatch(name)`: a letter, digit or '_', then up to 63 of those, '.' or
    '-' (ASCII only)."""
    if not 0 < len(name) <= 64 or name[0] not in _HEAD:
        return False
    return all(c in _TAIL for c in name)


def ipv4(text: str) -> int:
    """A dotted quad as `ipaddress` accepts it (four decimal octets of 1 to 3 digits, no leading
    zero, each at most 255) as its integer; -1 for anything else (the full path decides)."""
    parts = text.split(".")
    if len(parts) != 4:
        return -1
    n = 0
    for p in parts:
        if not 0 < len(p) <= 3 or (len(p) > 1 and p[0] == "0"):
            return -1
        if not all(c in _DIGITS for c in p):
            return -1
        octet = int(p)
        if octet > 255:
            return -1
        n = (n << 8) | octet
    return n


def backend(name: str, value: object, healthchecks: Mapping[str, object]) -> Backend | None:
    """The backend `name: value` if it is plain (see `fastbuild`), else None."""
    if type(value) is not dict or not plain_name(name):
        return None
    for k in value:
        if type(k) is not str or k not in _BACKEND_KEYS:
            return None
    address = value.get("address")
    if type(address) is not str:
        return None
    n = ipv4(address)
    if n < 0:
        return None
    check = value.get("healthcheck")
    if check is not None and (
        type(check) is not str or not check.strip() or check not in healthchecks
    ):
        return None
    enabled: Any = value.get("enabled")
    if enabled is None:
        enabled = True
    elif type(enabled) is not bool:
        return None
    return Backend(name, ipaddress.IPv4Address(n), check, enabled)


def members(
    data: Mapping[str, object],
    version: int,
    backends: Mapping[str, Backend | None],
    seen: Mapping[str, str],
) -> tuple[PoolMember, ...] | None:
    """A pool's members if every one is plain (see `fastbuild`), else None; `version` is the
    IP version the encap needs of backends (0: no encap known), `seen` the frontend's backends
    already in a pool (not changed here: the caller records these)."""
    if type(data) is not dict or not data:
        return None
    out: list[PoolMember] = []
    for bname, spec in data.items():
        if bname in seen:
            return None
        if spec is None:
            weight: Any = 100
        elif type(spec) is dict:
            if len(spec) == 0:
                weight = 100
            elif len(spec) == 1:
                weight = spec.get("weight", -1)
                if weight is None:
                    weight = 100
                elif type(weight) is not int or not 0 <= weight <= 100:
                    return None
            else:
                return None
        else:
            return None
        be = backends.get(bname)
        if be is None or (version and be.address.version != version):
            return None
        out.append(PoolMember(bname, weight, None))
    return tuple(out)


def frontend(name: str, value: object, backends: Mapping[str, Backend | None]) -> Frontend | None:
    """The frontend `name: value` if it is plain (see `fastbuild`), else None."""
    if type(value) is not dict or not plain_name(name):
        return None
    for k in value:
        if type(k) is not str or k not in _FRONTEND_KEYS:
            return None
    address = value.get("address")
    if type(address) is not str:
        return None
    n = ipv4(address)
    if n < 0:
        return None
    protocol: Any = value.get("protocol")
    if protocol is None:
        protocol = Protocol.TCP
    elif type(protocol) is not str or protocol not in _PROTOCOLS:
        return None
    else:
        protocol = _PROTOCOLS[protocol]
    port = value.get("port")
    if type(port) is not int or not 0 < port <= 65535:
        return None
    encap = value.get("encap")
    if type(encap) is not str or encap not in _ENCAPS:
        return None
    enc = _ENCAPS[encap]
    items = value.get("pools")
    if type(items) is not list or not items:
        return None
    pools: list[Pool] = []
    names: set[str] = set()
    seen: dict[str, str] = {}
    for item in items:
        if type(item) is not dict:
            return None
        for k in item:
            if type(k) is not str or k not in _POOL_KEYS:
                return None
        pname = item.get("name")
        if type(pname) is not str or not pname.strip() or pname in names:
            return None
        names.add(pname)
        data = item.get("backends")
        if type(data) is not dict:
            return None
        built = members(data, enc.backend_version, backends, seen)
        if built is None:
            return None
        for m in built:
            seen[m.backend] = pname
        pools.append(Pool(pname, built))
    return Frontend(name, ipaddress.IPv4Network(n), protocol, port, enc, tuple(pools))


def same(a: object, b: object) -> bool:
    """Whether two parsed values mean the same: equal, of the same type at every level (`1`,
    `1.0`, `true` and `"1"` differ, as their `repr`s do), mappings in the same order."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        x, y = cast(dict[object, object], a), cast(dict[object, object], b)
        if len(x) != len(y):
            return False
        for (k1, v1), (k2, v2) in zip(x.items(), y.items(), strict=True):
            if not same(k1, k2) or not same(v1, v2):
                return False
        return True
    if t is list:
        p, q = cast(list[object], a), cast(list[object], b)
        return len(p) == len(q) and all(same(v, w) for v, w in zip(p, q, strict=True))
    if t is float:
        return repr(a) == repr(b)  # -0.0 is not 0.0, nan is nan
    return a == b


HEALTHCHECKS, BACKENDS, FRONTENDS = 0, 1, 2
"""The sections `section` knows (`fastbuild.HEALTHCHECKS` ...)."""


def _refers(kind: int, obj: Any, rebuilt: set[str]) -> bool:
    """Whether the built `obj` names one of `rebuilt`: a backend its healthcheck, a frontend
    one of its backends."""
    if kind == BACKENDS:
        return obj.healthcheck is not None and obj.healthcheck in rebuilt
    if kind == FRONTENDS:
        return any(m.backend in rebuilt for pool in obj.pools for m in pool.members)
    return False


def section(
    kind: int,
    data: dict[Any, object],
    context: Mapping[str, Any],
    old: dict[str, tuple[object, object]] | None,
    new: dict[str, tuple[object, object]] | None,
    rebuilt: set[str] | None,
) -> tuple[dict[Any, object], set[Any], list[Any]]:
    """One named section (`kind`: HEALTHCHECKS, BACKENDS or FRONTENDS) in one loop: (every name
    -> its object, None where the general validator must decide; the names whose object is
    not the memo's; those the validator must decide, in order). See `fastbuild.section`."""
    out: dict[Any, object] = {}
    changed: set[Any] = set()
    rest: list[Any] = []
    memo = old is not None and new is not None
    for name, value in data.items():
        if memo:
            assert old is not None and new is not None
            hit = old.get(name)
            if hit is not None and same(hit[0], value):
                obj = hit[1]
                if not rebuilt or not _refers(kind, obj, rebuilt):
                    out[name] = obj
                    new[name] = hit
                    continue
        changed.add(name)
        built: object = None
        if type(name) is str:
            if kind == BACKENDS:
                built = backend(name, value, context)
            elif kind == FRONTENDS:
                built = frontend(name, value, context)
        out[name] = built
        if built is None:
            rest.append(name)
        elif new is not None:
            new[name] = (value, built)
    return out, changed, rest
