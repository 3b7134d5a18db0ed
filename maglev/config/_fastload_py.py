"""The pure-Python twin of `_fastload`: PyYAML's libyaml events straight into dicts and lists.

PyYAML's loader composes a node graph (a node and two marks per key and item) and then
constructs values from it in Python, one generator per collection: on the 2.4 MiB benchmark
config that is over 90% of loading. Here the events of PyYAML's libyaml parser are turned into
values in one loop, with the line of every key and item kept as the loader keeps them. The
compiled `_fastload` drives libyaml itself and builds the same result, raising the same
exceptions at the same events; `maglev.config.fastload` selects one (what is taken, what is
handed over and why is said there). Called on whichever thread loads the config; no state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

# libyaml's parser, part of PyYAML's wheels: PyYAML built without it is an install error, not a
# slower mode, so a missing one fails the import.
from yaml._yaml import CParser

from maglev.config import limits
from maglev.config._fastload_types import MERGE, STR, Lines, TooMany, Unsupported


def engine_name() -> str:
    return "python"


def load(
    text: str,
    resolvers: dict[Any, list[tuple[str, Any]]],
    construct: Callable[[str, str], object],
    typed_max: int,
    with_lines: bool = True,
) -> tuple[object, Lines]:
    """(the document's value, the lines of its keys and items: {} unless `with_lines`);
    Unsupported if out of scope.

    `resolvers` is the loader's implicit-resolver table (first character -> (tag, regex)),
    `construct(tag, value)` its constructor for a resolved plain scalar other than a string
    (raising Unsupported for a tag it leaves to the full loader),
    and plain scalars longer than `typed_max` are strings, as the loader resolves them.
    """
    try:
        return _load(CParser(text), resolvers, construct, typed_max, with_lines)
    except yaml.YAMLError:
        # Syntax and reader errors are reported by the full loader, with its wording.
        raise Unsupported("a YAML error") from None


def _load(
    parser: Any,
    resolvers: dict[Any, list[tuple[str, Any]]],
    construct: Callable[[str, str], object],
    typed_max: int,
    track: bool,
) -> tuple[object, Lines]:
    scalar_event = yaml.ScalarEvent
    mapping_start = yaml.MappingStartEvent
    sequence_start = yaml.SequenceStartEvent
    collection_end = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    get_event = parser.get_event
    wildcard = resolvers.get(None, [])
    # Resolving a plain scalar runs up to a dozen regexes; configs repeat most of theirs
    # (`tcp`, `80`, `100`), so each distinct text is resolved once.
    plain: dict[str, object] = {}
    # The first characters some resolver is for (all of them if one is for any): a plain
    # scalar starting with another one is a string without a look-up.
    typed: Any = _Everything() if wildcard else resolvers
    lines: Lines = {}
    max_nodes = limits.MAX_NODES
    # A scalar sits one level below its collection: no collection may open at the last level
    # that still has room for a child. (An empty one there is fine for the full loader, which
    # then takes the document.)
    max_open = limits.MAX_DEPTH - 1
    max_chars = limits.MAX_CHARS
    nodes = chars = 0

    event = get_event()  # stream start
    event = get_event()
    if isinstance(event, yaml.StreamEndEvent):
        return None, lines
    if not isinstance(event, yaml.DocumentStartEvent):
        raise Unsupported("no document")

    # The open collection lives in these locals; the ones around it wait on `stack` as
    # (container, its lines, is a list, pending key).
    stack: list[tuple[Any, Any, bool, object, Any, Any]] = []
    missing = object()
    container: Any = None
    at: Any = {}  # a mapping's: key -> line; a list's: the line of each item
    is_list = False
    key: object = missing
    key_mark: Any = None  # of the pending key, and where the open collection starts:
    open_mark: Any = None  # both only read to place an error
    root: object = missing
    while True:
        event = get_event()
        kind = type(event)
        if kind is scalar_event:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            nodes += 1
            text = event.value
            chars += len(text)
            if event.implicit[0] and not (
                (text[:1] not in typed and text) or _dotted(text)
            ):  # plain: resolved as the loader resolves it
                value = plain.get(text, missing)
                if value is missing:
                    value = _resolve(text, resolvers, wildcard, construct, typed_max)
                    plain[text] = value
            else:
                value = text
            if is_list:
                if track:
                    at.append(event.start_mark.line + 1)
                container.append(value)
            elif key is missing:
                if container is None:  # a document that is one scalar
                    root = value
                    break
                if value in container:
                    raise Unsupported("a duplicate key")
                key = value
                key_mark = event.start_mark
                if track and isinstance(value, str | int | float | bool):
                    at[value] = key_mark.line + 1
            else:
                container[key] = value
                key = missing
            if nodes > max_nodes:
                _too_many(container, is_list, key, key_mark, open_mark, missing)
            if chars > max_chars:
                raise Unsupported("over a limit")  # refused by the loader, with its message
            continue
        if kind is mapping_start or kind is sequence_start:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            nodes += 1
            if len(stack) >= max_open:
                raise Unsupported("over a limit")
            value = {} if kind is mapping_start else []
            if is_list:
                if track:
                    at.append(event.start_mark.line + 1)
                container.append(value)
            elif key is missing:
                if container is not None:
                    raise Unsupported("a collection key")
            else:
                container[key] = value
                key = missing
            if nodes > max_nodes:
                _too_many(container, is_list, key, key_mark, open_mark, missing)
            if container is not None:
                stack.append((container, at, is_list, key, key_mark, open_mark))
            is_list = kind is sequence_start
            container, key = value, missing
            if track:
                at = [] if is_list else {}
            open_mark = event.start_mark
            if root is missing:
                root = value
            continue
        if kind in collection_end:
            if track:
                lines[id(container)] = at
            if not stack:
                break
            container, at, is_list, key, key_mark, open_mark = stack.pop()
            continue
        raise Unsupported("an alias")  # or anything else this path does not know

    if not isinstance(get_event(), yaml.DocumentEndEvent):
        raise Unsupported("an unfinished document")
    if not isinstance(get_event(), yaml.StreamEndEvent):
        raise Unsupported("more than one document")  # the full loader names the line
    return root, lines


def _too_many(
    container: Any, is_list: bool, key: object, key_mark: Any, open_mark: Any, missing: object
) -> None:
    """Raise TooMany for the child just placed, with `limits`' wording for its place: a
    mapping's key, or the value of a key, at the key; an item at the start of its list."""
    if container is None:  # the top level itself: a single node is never too many
        return
    if is_list:
        where = f"item [{len(container) - 1}] of this list"
        raise TooMany(open_mark.line + 1, open_mark.column + 1, where)
    if key is missing:  # a value: placing it took its key off
        raise TooMany(key_mark.line + 1, key_mark.column + 1, "the value of this key")
    raise TooMany(key_mark.line + 1, key_mark.column + 1, "this key")


def _resolve(
    text: str,
    resolvers: dict[Any, list[tuple[str, Any]]],
    wildcard: list[tuple[str, Any]],
    construct: Callable[[str, str], object],
    typed_max: int,
) -> object:
    """A plain scalar's value: PyYAML's resolution (first character, then regexes in order)."""
    if len(text) > typed_max or _dotted(text):
        return text
    for tag, regex in resolvers.get(text[:1], []) + wildcard:
        if regex.match(text):
            if tag == STR:
                return text
            if tag == MERGE:
                raise Unsupported("a merge key")
            return construct(tag, text)
    return text


_DIGITS_AND_DOTS = frozenset("0123456789.")


def _dotted(text: str) -> bool:
    """Only digits and dots, and at least two dots (an IPv4 address): a string, as every
    resolver for a first digit or dot says (a float has one dot, an int or a date none), without
    running their regexes (a third of resolving a config of addresses)."""
    return text.count(".") >= 2 and _DIGITS_AND_DOTS.issuperset(text)


class _Everything:
    """Holds every first character (a resolver for any)."""

    def __contains__(self, item: object) -> bool:
        return True
