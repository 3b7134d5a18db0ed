"""What a reply regex can cost: refuse a pattern whose search is not linear in the reply.

Pure functions over the stdlib's parse of a pattern; the config loader calls
`backtracking_risk` (from `healthchecks.reply_regex`) for `expect` and `expect-body`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from re import _constants as _sre  # type: ignore[attr-defined]
from re import _parser as _sre_parser  # type: ignore[attr-defined]
from typing import Any

# `re` backtracks and cannot be interrupted, and a check worker runs `expect` and `expect-body`
# over bytes the backend chose: a pattern whose worst case is exponential, or any power of the
# reply's length above one, lets one backend stall every probe of that worker (n^2 is already
# seconds at 16 KiB for some). No linear-time engine is at hand (none in the stdlib; a compiled
# dependency is unwelcome in a Debian package), so a pattern is judged by its structure, on the
# stdlib's parse of the bytes pattern the probes compile, and refused unless a search is linear;
# the probes search at most 16 KiB (`checks.base.MATCH_CAP`). Refused, erring on the safe side:
#   - backreferences and conditionals; repeats inside lookarounds;
#   - a repeat inside a repeat, and a repeat over alternatives that can start alike (`(a|ab)+`):
#     the ways to split the text multiply;
#   - repeats in a row that can take the same bytes (`a.*b.*c`): n^k for k of them;
#   - a repeat the search can rerun from every start (`\s*x`, `ok.*done`): n^2. Not when the
#     pattern is anchored (`^`, `\A`: one start) or the repeat follows a byte it cannot take
#     (`version [0-9]+`: its runs from different starts never overlap).


_ALL = frozenset(range(256))
_NAMES = ("DIGIT", "NOT_DIGIT", "SPACE", "NOT_SPACE", "WORD", "NOT_WORD")
_CATEGORIES = {  # what `re` itself takes for each class, in a bytes pattern
    getattr(_sre, f"CATEGORY_{name}"): frozenset(c for c in _ALL if re.match(cls, bytes((c,))))
    for name, cls in zip(_NAMES, rb"\d \D \s \S \w \W".split(), strict=True)
}
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_ASSERTS = (_sre.ASSERT, _sre.ASSERT_NOT)
_Items = Any  # a `re._parser.SubPattern`: a sequence of (opcode, argument) pairs


def backtracking_risk(pattern: str) -> str | None:
    """Why a search with `pattern` can cost more than linear time; None if it cannot."""
    parsed = _sre_parser.parse(pattern.encode())
    flags = int(parsed.state.flags)
    why = _hazard(parsed, flags)
    if why is not None:
        return why
    op, av = parsed[0] if len(parsed) else (None, None)
    starts = (_sre.AT_BEGINNING, _sre.AT_BEGINNING_STRING)
    anchored = op is _sre.AT and av in starts and not flags & re.MULTILINE
    # A last repeat that may take nothing never fails, nor is backtracked into: `ok.*` costs `ok`.
    while len(parsed) and parsed[-1][0] in _REPEATS and parsed[-1][1][0] == 0:
        del parsed[-1]
    return _chain_cost(parsed, flags, anchored)


def _children(op: object, av: Any, flags: int) -> list[tuple[_Items, int]]:
    """The sub-sequences of one step, each with the flags in force there."""
    if op is _sre.SUBPATTERN:
        return [(av[3], (flags | av[1]) & ~av[2])]
    if op is _sre.BRANCH:
        return [(alt, flags) for alt in av[1]]
    if op is _sre.ATOMIC_GROUP:
        return [(av, flags)]
    # Repeats are (min, max, seq), lookarounds (direction, seq).
    return [(av[-1], flags)] if op in _REPEATS or op in _ASSERTS else []


def _hazard(items: _Items, flags: int) -> str | None:
    """The first construct in `items` that backtracks exponentially or without bound."""
    for op, av in items:
        if op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            return "backreference"
        if op in _ASSERTS and _varies(av[1]):
            return "repeat inside a lookaround"
        if op in _REPEATS and av[1] > 1 and _varies(av[2]):
            return "nested repeat"
        if op in _REPEATS and av[1] > 1 and _alike_alternatives(av[2], flags):
            return "repeated alternatives can match the same text"
        for sub, sub_flags in _children(op, av, flags):
            why = _hazard(sub, sub_flags)
            if why is not None:
                return why
    return None


@dataclass(frozen=True, slots=True)
class _Piece:
    """One step of a pattern's top sequence, as far as backtracking is concerned."""

    chars: frozenset[int]  # every byte it may take (more is safe: it only refuses more)
    takes: bool  # it takes at least one byte
    lengths: int  # how many lengths it can take (1: fixed; REPLY_BYTES: any)


REPLY_BYTES = 16 * 1024
"""The most a probe searches (`checks.base.MATCH_CAP`): the n that costs are reckoned at."""
_BUDGET = 1024 * REPLY_BYTES  # steps of a search: linear, with a constant a few repeats may share
_OVER = _BUDGET + 1  # (costs stop growing there: anything over is refused alike)


def _chain_cost(items: _Items, flags: int, anchored: bool) -> str | None:
    """Why repeats in `items` make a search cost more than linear; inner parts judged alone."""
    inner: list[tuple[_Items, int]] = []
    pieces = _pieces(items, flags, inner)
    for sub, sub_flags in inner:
        why = _chain_cost(sub, sub_flags, False)
        if why is not None:
            return why
    # Per repeat, the worst chain of repeats ending there: (steps, repeats in the chain). Each
    # repeat multiplies by the lengths it can take; the search by n for trying every start,
    # unless the pattern is anchored (one start) or the repeat follows a byte it cannot take
    # (then its runs from different starts never overlap).
    worst: dict[int, tuple[int, int]] = {}
    for j, p in enumerate(pieces):
        if p.lengths == 1:
            continue
        alone = min(p.lengths * (1 if anchored or _fenced(pieces, j) else REPLY_BYTES), _OVER)
        worst[j] = max(worst.get(j, (0, 0)), (alone, 1))
        for k in range(j + 1, len(pieces)):
            q = pieces[k]
            if q.lengths > 1 and q.chars & p.chars:  # q can take over what p took
                steps, length = worst[j]
                worst[k] = max(worst.get(k, (0, 0)), (min(steps * q.lengths, _OVER), length + 1))
            if q.takes and not q.chars & p.chars:
                break  # a byte p cannot take: p cannot run past it
    steps, length = max(worst.values(), default=(0, 0))
    if steps <= _BUDGET:
        return None
    if length > 1:
        return f"{length} repeats in a row can take the same bytes: the ways to split it multiply"
    return "a repeat that the search retries from every byte: n^2 steps on n bytes"


def _fenced(pieces: list[_Piece], j: int) -> bool:
    """Whether a byte that repeat `j` cannot take always comes right before what it takes."""
    for q in reversed(pieces[:j]):
        if q.chars & pieces[j].chars:
            return False
        if q.takes:
            return True
    return False


def _pieces(items: _Items, flags: int, inner: list[tuple[_Items, int]]) -> list[_Piece]:
    """`items` flattened for `_chain_cost`: groups opened, zero-width steps left out, a repeat
    or an alternation one piece (what varies inside it goes to `inner`, to be judged alone)."""
    out: list[_Piece] = []
    for op, av in items:
        one = _one_byte(op, av, flags)
        if one is not None:
            out.append(_Piece(one, True, 1))
        elif op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
            ((sub, sub_flags),) = _children(op, av, flags)
            out.extend(_pieces(sub, sub_flags, inner))
        elif op in _REPEATS or op is _sre.BRANCH:
            subs = _children(op, av, flags)
            if any(_varies(sub) for sub, _ in subs):
                inner.extend(subs)
            step = [(op, av)]
            lo, hi = _sre_parser.SubPattern(items.state, step).getwidth()
            out.append(_Piece(_chars(step, flags), lo > 0, min(hi - lo + 1, REPLY_BYTES)))
    return out


def _one_byte(op: object, av: Any, flags: int) -> frozenset[int] | None:
    """The bytes a one-byte step matches, or None if `op` is not one."""
    if op is _sre.LITERAL:
        chars = frozenset((av,))
    elif op is _sre.NOT_LITERAL:
        chars = _ALL - {av} if not flags & re.IGNORECASE else _ALL
    elif op is _sre.ANY:
        chars = _ALL if flags & re.DOTALL else _ALL - {10}
    elif op is _sre.IN:
        chars = _in(av)
    else:
        return None
    if flags & re.LOCALE:
        return _ALL
    if flags & re.IGNORECASE:
        chars = chars | {c ^ 0x20 for c in chars if 65 <= (c & ~0x20) <= 90}
    return chars


def _in(items: list[tuple[object, Any]]) -> frozenset[int]:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        if op is _sre.NEGATE:
            negate = True
        elif op is _sre.LITERAL:
            chars.add(av)
        elif op is _sre.RANGE:
            chars.update(range(av[0], min(av[1], 255) + 1))
        elif op is _sre.CATEGORY and av in _CATEGORIES:
            chars |= _CATEGORIES[av]
        else:
            return _ALL  # not known exactly: everything, so that a negation cannot make it less
    return _ALL - chars if negate else frozenset(chars)


def _chars(items: _Items, flags: int) -> frozenset[int]:
    """Every byte `items` may take (lookarounds take none)."""
    out: set[int] = set()
    for op, av in items:
        one = _one_byte(op, av, flags)
        if one is not None:
            out |= one
        elif op not in _ASSERTS:
            for sub, sub_flags in _children(op, av, flags):
                out |= _chars(sub, sub_flags)
    return frozenset(out)


def _varies(items: _Items) -> bool:
    """Whether `items` holds a repeat whose count is open (`*`, `+`, `?`, `{m,n}`)."""
    return any(
        (op in _REPEATS and av[0] != av[1]) or any(_varies(sub) for sub, _ in _children(op, av, 0))
        for op, av in items
    )


def _alike_alternatives(items: _Items, flags: int) -> bool:
    """Whether an alternation in `items` has two alternatives that can begin alike (or be
    empty): repeated, every iteration could then go either way."""
    for op, av in items:
        if op is _sre.BRANCH:
            seen: set[int] = set()
            for alt in av[1]:
                first = _first(alt, flags)
                if first & seen:
                    return True
                seen |= first
        if any(_alike_alternatives(sub, f) for sub, f in _children(op, av, flags)):
            return True
    return False


def _first(items: _Items, flags: int) -> frozenset[int]:
    """The bytes a match of `items` can begin with; every byte if it can be empty."""
    for op, av in items:
        if _sre_parser.SubPattern(items.state, [(op, av)]).getwidth()[0] > 0:
            return _one_byte(op, av, flags) or _chars([(op, av)], flags)  # (all of it: safe)
        if op not in _ASSERTS and op is not _sre.AT:
            return _ALL  # a part that may be empty: what follows it could come first
    return _ALL
