"""The fast way from YAML text to plain data: libyaml's events straight into dicts and lists.

PyYAML's loader composes a node graph (a node and two marks per key and item) and then
constructs values from it in Python, one generator per collection. Here libyaml's events are
turned into values in one loop, with the line of every key and item kept as the loader keeps
them. Two engines do it, selected as `maglev.diff` selects its own: the compiled `_fastload`
(Cython on libyaml's C API: no Python object per event) unless MAGLEV_NO_EXTENSIONS=1, its
pure-Python twin `_fastload_py` (a loop over the events of PyYAML's libyaml parser) otherwise,
or when the compiled module is missing, unless MAGLEV_REQUIRE_EXTENSIONS=1 makes that an
ImportError; `IMPLEMENTATION` says which. Both give the same value and lines, and raise the same
exception at the same event.

Only the common subset of YAML is taken this way: mappings, sequences and scalars without
anchors, aliases, explicit tags or merge keys, and no duplicate or collection keys. For anything
else `Unsupported` is raised before a value is returned, and the loader parses the text again
through its node graph: the meaning of those constructs, their errors and the alias bounds of
`maglev.config.limits` stay exactly those of the one full loader, instead of a second copy of
them here. Plain scalars are resolved by the same resolver table and converted by the same
constructor functions as that loader, so a value never means something else on this path.
Called by `maglev.config.loader` on whichever thread loads the config; it holds no state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from maglev.config._fastload_types import Lines, TooMany, Unsupported

if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev.config import _fastload_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev.config import (  # type: ignore[attr-defined,no-redef,unused-ignore]
            _fastload as _engine,
        )

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev.config import _fastload_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name


def load(
    text: str,
    resolvers: dict[Any, list[tuple[str, Any]]],
    construct: Callable[[str, str], object],
    typed_max: int,
    engine: ModuleType | None = None,
    with_lines: bool = True,
) -> tuple[object, Lines]:
    """(the document's value, the lines of its keys and items); Unsupported if out of scope,
    TooMany past `limits.MAX_NODES`. Without `with_lines` the lines are {} (a fifth of the
    time goes to them, and only a config with problems needs them: the loader parses it again).

    `resolvers` is the loader's implicit-resolver table (first character -> (tag, regex)),
    `construct(tag, value)` its constructor for a resolved plain scalar other than a string
    (raising Unsupported for a tag it leaves to the full loader), and plain scalars longer than
    `typed_max` are strings, as the loader resolves them. `engine` picks a twin explicitly
    (tests run both); default: the selected one.
    """
    e = _engine if engine is None else engine
    result: tuple[object, Lines] = e.load(text, resolvers, construct, typed_max, with_lines)
    return result


__all__ = ["IMPLEMENTATION", "Lines", "TooMany", "Unsupported", "engine_name", "load"]
