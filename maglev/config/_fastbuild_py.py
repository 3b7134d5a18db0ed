"""The pure-Python twin of `_fastbuild`: the plainest backends and pool members, built directly.

`maglev.config.fastbuild` says what is taken and why; the compiled `_fastbuild` is this module
line for line, with C types. Called on whichever thread loads the config; no state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from maglev.model import Backend, PoolMember

_HEAD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAIL = _HEAD | frozenset(".-")
_DIGITS = frozenset("0123456789")
_BACKEND_KEYS = frozenset(("address", "healthcheck", "enabled"))


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
