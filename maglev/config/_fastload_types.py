"""What both fast-load engines share: the shape of their result and the exceptions they raise.

Defined once here, so that `except fastload.Unsupported` in the loader catches what either
engine (`_fastload`, compiled; `_fastload_py`, its pure-Python twin) raises. No state.
"""

from __future__ import annotations

Lines = dict[int, dict[object, int] | list[int]]
"""id() of a mapping -> its key -> the line (1-based) it is on; id() of a list -> the line of each
item, in order (a list, not a dict by index: a dict of millions of entries resizes in one go,
holding the GIL for 100+ ms)."""

STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"


class Unsupported(Exception):
    """The text uses a construct the fast path leaves to the full loader (or is not valid
    YAML)."""


class TooMany(Exception):
    """Past `limits.MAX_NODES`: refused by the fast path, placed as `limits` places it, rather
    than handed over (the full loader would compose the whole text again only to refuse it)."""

    def __init__(self, line: int, column: int, where: str) -> None:
        super().__init__(where)
        self.line, self.column, self.where = line, column, where


def let_others_run() -> None:
    """Nothing, in Python: called by the compiled engine every thousand events or so, since
    entering a Python function is where the interpreter hands the GIL to a thread that asked
    for it (a check worker, the reconciler); the loop in C around it never does."""


__all__ = ["MERGE", "STR", "Lines", "TooMany", "Unsupported", "let_others_run"]
