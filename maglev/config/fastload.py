"""The fast way from YAML text to plain data: libyaml's events straight into dicts and lists.

PyYAML's loader composes a node graph (a node and two marks per key and item) and then
constructs values from it in Python, one generator per collection: on the 2.4 MiB benchmark
config that is over 90% of loading. Here the events of PyYAML's libyaml parser are turned into
values in one loop, with the line of every key and item kept as the loader keeps them.

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

from collections.abc import Callable
from typing import Any

import yaml

# libyaml's parser, part of PyYAML's wheels: PyYAML built without it is an install error, not a
# slower mode, so a missing one fails the import.
from yaml._yaml import CParser

from maglev.config import limits

Lines = dict[int, dict[object, int]]


class Unsupported(Exception):
    """The text uses a construct this path leaves to the full loader (or is not valid YAML)."""


STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"


def load(
    text: str,
    resolvers: dict[Any, list[tuple[str, Any]]],
    construct: Callable[[str, str], object],
    typed_max: int,
) -> tuple[object, Lines]:
    """(the document's value, the lines of its keys and items); Unsupported if out of scope.

    `resolvers` is the loader's implicit-resolver table (first character -> (tag, regex)),
    `construct(tag, value)` its constructor for a resolved plain scalar other than a string
    (raising Unsupported for a tag it leaves to the full loader),
    and plain scalars longer than `typed_max` are strings, as the loader resolves them.
    """
    try:
        return _load(CParser(text), resolvers, construct, typed_max)
    except yaml.YAMLError:
        # Syntax and reader errors are reported by the full loader, with its wording.
        raise Unsupported("a YAML error") from None


def _load(
    parser: Any,
    resolvers: dict[Any, list[tuple[str, Any]]],
    construct: Callable[[str, str], object],
    typed_max: int,
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
    lines: Lines = {}
    max_nodes, max_chars, max_depth = limits.MAX_NODES, limits.MAX_CHARS, limits.MAX_DEPTH
    nodes = chars = 0

    event = get_event()  # stream start
    event = get_event()
    if isinstance(event, yaml.StreamEndEvent):
        return None, lines
    if not isinstance(event, yaml.DocumentStartEvent):
        raise Unsupported("no document")

    # Each open collection: [container, its lines, the pending key (mappings) or None].
    stack: list[list[Any]] = []
    root: object = None
    missing = object()
    while True:
        event = get_event()
        kind = type(event)
        if kind is scalar_event:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            text = event.value
            nodes += 1
            chars += len(text)
            if event.implicit[0]:  # plain: resolved as the loader resolves it
                value = plain.get(text, missing)
                if value is missing:
                    value = _resolve(text, resolvers, wildcard, construct, typed_max)
                    plain[text] = value
            else:
                value = text
            line = event.start_mark.line + 1
        elif kind is mapping_start or kind is sequence_start:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            nodes += 1
            value = {} if kind is mapping_start else []
            line = event.start_mark.line + 1
        elif kind in collection_end:
            frame = stack.pop()
            lines[id(frame[0])] = frame[1]
            if not stack:
                root = frame[0]
                break
            continue
        else:  # an alias (or the document's end after a top-level scalar)
            if isinstance(event, yaml.DocumentEndEvent) and not stack:
                break
            raise Unsupported("an alias")
        if nodes > max_nodes or chars > max_chars or len(stack) + 1 > max_depth:
            raise Unsupported("over a limit")  # refused by the loader, with its message

        if not stack:
            root = value
        else:
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                frame[1][len(container)] = line
                container.append(value)
            elif frame[2] is missing:  # this is a key
                if type(value) is dict or type(value) is list:
                    raise Unsupported("a collection key")
                if value in container:
                    raise Unsupported("a duplicate key")
                frame[2] = value
                if isinstance(value, str | int | float | bool):
                    frame[1][value] = line
            else:
                container[frame[2]] = value
                frame[2] = missing
        if type(value) is dict or type(value) is list:
            stack.append([value, {}, missing])
        elif not stack:
            break  # a document that is one scalar

    if stack or not isinstance(get_event(), yaml.DocumentEndEvent):
        raise Unsupported("an unfinished document")
    if not isinstance(get_event(), yaml.StreamEndEvent):
        raise Unsupported("more than one document")  # the full loader names the line
    return root, lines


def _resolve(
    text: str,
    resolvers: dict[Any, list[tuple[str, Any]]],
    wildcard: list[tuple[str, Any]],
    construct: Callable[[str, str], object],
    typed_max: int,
) -> object:
    """A plain scalar's value: PyYAML's resolution (first character, then regexes in order)."""
    if len(text) > typed_max:
        return text
    for tag, regex in resolvers.get(text[:1], []) + wildcard:
        if regex.match(text):
            if tag == STR:
                return text
            if tag == MERGE:
                raise Unsupported("a merge key")
            return construct(tag, text)
    return text
