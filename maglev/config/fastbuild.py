"""The short way from parsed YAML to the model for the entries most of a big config is made of.

A config of 40,000 backends is mostly `b1: {address: 10.0.0.1}` and `b1: {weight: 100}`: the
general validators (`maglev.config.validate`) spend about 5 us on each, checking keys, types and
ranges one getter at a time. Here an entry is taken only when it is plainly valid — a backend
with a plain name, only `address` (a dotted IPv4 quad), `healthcheck` (a known one) and
`enabled` (a boolean); a pool whose every member is null, `{}` or `{weight: 0..100}` (an int),
names a known, built backend of the encap's family and is in no other pool of the frontend; a
frontend with a plain name and only `address` (a dotted IPv4 quad), `protocol` (`tcp` or `udp`,
as written), `port` (an int 1..65535), `encap` (`gre4`, `gre6` or `nat4`) and `pools` (a
non-empty list of `{name, backends}` with distinct names and plain members) — and then it is
built exactly as the validator builds it. Anything else (a problem, a float, a
slow-start, IPv6) returns None and takes the general way, so every problem is still found and
worded by one validator. A hypothesis test holds both ways to the same objects.

Two engines, selected as `maglev.diff` selects its own: the compiled `_fastbuild` and its pure-Python twin
`_fastbuild_py`; `IMPLEMENTATION` says which. Called by the loader on whichever thread loads the
config; no state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType

from maglev.model import Backend, Frontend, PoolMember

_engine: ModuleType
if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev.config import _fastbuild_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev.config import (  # type: ignore[attr-defined,no-redef,unused-ignore]
            _fastbuild as _engine,
        )

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev.config import _fastbuild_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name


backend: Callable[[str, object, Mapping[str, object]], Backend | None] = _engine.backend
"""backend(name, value, healthchecks): the backend `name: value` if plainly valid, else None
(validate it the general way)."""

members: Callable[
    [Mapping[str, object], int, Mapping[str, Backend | None], Mapping[str, str]],
    tuple[PoolMember, ...] | None,
] = _engine.members
"""members(data, version, backends, seen): a pool's members (`data`: its `backends:` mapping)
if every one is plainly valid, else None; `version`: the IP version the frontend's encap needs
(0: none known); `seen`: the frontend's backends in pools before this one (the caller adds
these)."""


frontend: Callable[[str, object, Mapping[str, Backend | None]], Frontend | None] = _engine.frontend
"""frontend(name, value, backends): the frontend `name: value` if plainly valid, else None."""

HEALTHCHECKS, BACKENDS, FRONTENDS = 0, 1, 2
"""The sections `section` knows."""

section: Callable[
    [
        int,
        dict[str, object],
        Mapping[str, object],
        dict[str, tuple[object, object]] | None,
        dict[str, tuple[object, object]] | None,
        set[str] | None,
    ],
    tuple[dict[str, object], set[str], list[str]],
] = _engine.section
"""section(kind, data, context, old, new, rebuilt): a named section's entries in one loop, for
`loader._named`: (name -> object, None where the general validator must decide; the names
whose object is not the memo's; those the validator must decide, in order). With a memo (`old`,
the last good build's entries, and `new`, this build's, filled in here), an entry parsed the
same as then is its object from then unless it names one of `rebuilt` (a backend its
healthcheck, a frontend one of its backends); else a backend (`context`: the healthchecks) or
a frontend (`context`: the backends) is built here if plainly valid. Healthchecks are never
built here."""

same: Callable[[object, object], bool] = _engine.same
"""same(a, b): whether two parsed values mean the same (equal, of one type at every level,
mappings in one order): how the loader's memo tells an entry written as before."""

__all__ = [
    "BACKENDS",
    "FRONTENDS",
    "HEALTHCHECKS",
    "IMPLEMENTATION",
    "backend",
    "engine_name",
    "frontend",
    "members",
    "same",
    "section",
]
