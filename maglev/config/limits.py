"""What one config document may cost to load, checked on the parsed node graph before anything
is built from it.

YAML aliases let a few hundred bytes stand for billions of values (`&i [*h, *h, ...]`, nine
levels deep); building, validating or quoting such a value ties up the loading thread for minutes
and, inside C calls such as `repr`, the GIL with it, so probes and VPP writes stall. `measure`
walks the composed graph visiting each shared node once and adds up the size the document would
have with every alias expanded, so a bomb is refused after examining its few hundred real nodes.
Called by `maglev.config.loader` on whichever thread loads the config; it holds no state.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from maglev.errors import ConfigError

MAX_BYTES = 16 << 20
"""The largest config text: the control API's body limit (so `config check` and a reload accept
the same files), and 2.6x the 6.2 MiB of a config of 5,000 frontends x 20 = 100,000 backends
(6.6x the 2.4 MiB of 2,000 x 20)."""

MAX_NODES = 4_000_000
"""Keys, values and items, each alias counted as a copy of what it names. The 2.4 MiB config
has 354,000, the 100,000-backend one 885,000; validating costs about 2-8 us per node, so the
worst accepted document stays in seconds while a real one has room for aliases to spare."""

MAX_CHARS = 2 * MAX_BYTES
"""Characters of all keys and scalar values, aliases expanded: a file without aliases cannot
exceed its own length, so this leaves merge keys in the biggest file room, but stops a long
string from being repeated a thousand times through aliases."""

MAX_DEPTH = 32
"""Nesting levels, aliases expanded (the top mapping is level 1): four times the deepest a config
goes (the weight in frontends.f.pools[0].backends.b.weight is at level 8), and far from the
recursion limit of anything that walks the data."""


@dataclass(frozen=True, slots=True)
class Size:
    """A document as loading it would see it (aliases expanded), and what measuring it cost."""

    nodes: int
    chars: int
    depth: int
    aliases: int
    """Uses of an anchored collection after its first appearance."""
    examined: int
    """Node-to-child edges followed: the work done, bounded by the text, not by the expansion."""


_RECURSIVE = "a recursive alias: this collection contains an alias of itself"


class _Frame:
    """A collection being walked: its children are taken one at a time, in document order."""

    __slots__ = ("chars", "depth", "height", "kids", "next", "node", "nodes")

    def __init__(self, node: yaml.Node, depth: int, nodes: int, chars: int) -> None:
        self.node = node
        # A mapping's children are its keys and values, alternating.
        self.kids: list[yaml.Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
        )
        self.depth = depth
        self.nodes = nodes  # the totals when this node was entered: its expansion is the growth
        self.chars = chars
        self.height = 0  # of its tallest child so far
        self.next = 0


def measure(root: yaml.Node, source: str = "<string>") -> Size:
    """The expanded size of a composed document; ConfigError (with the line) past a limit.

    Iterative, so a deep document cannot overflow the stack; a collection reached again while it
    is being walked is a recursive alias (`&a [*a]`), which no config needs and which would make
    every consumer of the data loop, so it is refused too.
    """
    size = _walk(root, source)
    if isinstance(size, ConfigError):
        # Raised here rather than in the walk, whose frame (in the traceback) would keep its
        # copies of child lists, and so a million nodes, alive for the caller to free in one go.
        raise size
    return size


def _walk(root: yaml.Node, source: str) -> Size | ConfigError:
    if not isinstance(root, yaml.SequenceNode | yaml.MappingNode):
        return Size(1, len(root.value), 1, 0, 0)
    done: dict[int, tuple[int, int, int]] = {}  # id(collection) -> its (nodes, chars, height)
    walking: set[int] = {id(root)}
    stack = [_Frame(root, 1, 0, 0)]
    nodes, chars, depth, aliases, examined = 1, 0, 1, 0, 0
    while stack:
        # One frame's children in a tight loop, until one is a collection not yet walked; the
        # frame is at `level`, its children one below, an alias of height h reaches level + h.
        frame = stack[-1]
        kids, level, tallest, start = frame.kids, frame.depth, frame.height, frame.next
        fresh = None
        i = start
        while i < len(kids):
            kid = kids[i]
            i += 1
            if isinstance(kid, yaml.ScalarNode):
                nodes += 1
                chars += len(kid.value)
                height = 1
            elif (cost := done.get(id(kid))) is not None:  # an alias of a walked collection
                n, c, height = cost
                nodes += n
                chars += c
                aliases += 1
            elif id(kid) in walking:
                return _error(source, kid.start_mark, _RECURSIVE)
            else:
                fresh = kid
                break
            tallest = max(tallest, height)
            if nodes > MAX_NODES or chars > MAX_CHARS or level + height > MAX_DEPTH:
                repeated = not isinstance(kid, yaml.ScalarNode)
                return _over(source, frame, i - 1, kid, repeated, (nodes, chars, level + height))
        frame.next, frame.height = i, tallest
        examined += i - start
        if fresh is not None:
            nodes += 1
            if level + 1 > MAX_DEPTH:
                return _over(source, frame, i - 1, fresh, False, (nodes, chars, level + 1))
            walking.add(id(fresh))
            stack.append(_Frame(fresh, level + 1, nodes - 1, chars))
            continue
        stack.pop()
        walking.discard(id(frame.node))
        height = tallest + 1
        depth = max(depth, level + tallest)
        done[id(frame.node)] = (nodes - frame.nodes, chars - frame.chars, height)
        if stack:
            stack[-1].height = max(stack[-1].height, height)
    return Size(nodes, chars, depth, aliases, examined)


def _over(
    source: str,
    parent: _Frame,
    i: int,
    kid: yaml.Node,
    repeated: bool,
    totals: tuple[int, int, int],
) -> ConfigError:
    """The error for child `i` of `parent` (`repeated`: an alias of a collection) taking one of
    the `totals` (nodes, chars, depth) over its limit. It is placed by the parent or the key,
    which are walked at their own position: an alias's node carries its anchor's."""
    nodes, _, depth = totals
    if isinstance(parent.node, yaml.MappingNode):
        mark = parent.node.value[i >> 1][0].start_mark
        here = "the value of this key" if i & 1 else "this key"
    else:
        mark = parent.node.start_mark
        here = f"item [{i}] of this list"
    if depth > MAX_DEPTH:
        what = f"is nested more than {MAX_DEPTH} levels deep"
    elif nodes > MAX_NODES:
        what = f"has more than {MAX_NODES:,} keys, values and items (the limit)"
    else:
        what = f"has more than {MAX_CHARS:,} characters in keys and values (the limit)"
    if not repeated:
        return _error(source, mark, f"the document {what}, at {here}")
    anchor = kid.start_mark
    return _error(
        source,
        mark,
        f"with its aliases expanded the document {what}: {here} is an alias repeating what is "
        f"anchored at line {anchor.line + 1}, column {anchor.column + 1}",
    )


def _error(source: str, mark: yaml.Mark, what: str) -> ConfigError:
    return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {what}")


def release(root: yaml.Node) -> None:
    """Take a composed graph apart a node at a time.

    Left to reference counting, the last reference to a 4 MiB document frees its million nodes
    and two million marks in one C call, which holds the GIL for 100-400 ms; here each step
    frees about one node, and the interpreter can switch threads between steps.
    """
    stack = [root]
    while stack:
        node = stack.pop()
        value = node.value
        if isinstance(value, list):
            node.value = None  # the children move to the stack; an alias met again is skipped
            if isinstance(node, yaml.MappingNode):
                for pair in value:
                    stack.extend(pair)
            else:
                stack.extend(value)
