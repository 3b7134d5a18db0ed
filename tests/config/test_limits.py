"""Hostile documents cost bounded work: alias bombs, recursive aliases, deep nesting, long text,
thousands of problems. Each test asserts on the work done (what was built, examined or called),
never on time."""

from __future__ import annotations

import gc
import itertools
import pathlib
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from maglev.config import fields, limits, load_file, load_text, loader, schema
from maglev.errors import ConfigError, ConfigInvalid


def bomb(levels: int, width: int = 9, at: str = "health: {workers: *%s}") -> str:
    """Billion laughs: level 0 a list of `width` strings, each further level `width` aliases of
    the one before; the last level is used once more at `at`."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"a: &a [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [{', '.join([f'*{names[i - 1]}'] * width)}]")
    lines.append(at % names[levels - 1])
    return "\n".join(lines) + "\n"


def test_the_alias_bomb_is_refused_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    monkeypatch.setattr(loader._Loader, "construct_document", lambda self, n: built.append(n))
    text = bomb(9)  # 418 bytes, 387 million lols
    assert len(text) < 500
    with pytest.raises(ConfigError) as e:
        load_text(text, source="cfg")
    assert str(e.value) == (
        f"cfg:7:4: with its aliases expanded the document has more than {limits.MAX_NODES:,} keys, values "
        "and items (the limit): item [5] of this list is an alias repeating what is anchored "
        "at line 6, column 4"
    )
    assert built == []


@pytest.mark.parametrize("levels", [1, 2, 5])
def test_the_expanded_size_is_counted_without_expanding(levels: int) -> None:
    node = yaml.compose(bomb(levels), Loader=loader._Loader)
    size = limits.measure(node)
    lists = [10]  # each level: the list node and what its items expand to
    for _ in range(1, levels):
        lists.append(1 + 9 * lists[-1])
    leaf_lists = sum(9**i for i in range(levels)) + 9 ** (levels - 1)
    # the root, a key per level, the levels, and health: {workers: <the last level>}
    assert size.nodes == 1 + levels + sum(lists) + 3 + lists[-1]
    assert size.chars == levels + len("health") + len("workers") + 27 * leaf_lists
    assert size.depth == levels + 3  # root > health > the levels > a lol
    assert size.aliases == 9 * (levels - 1) + 1
    # The work: each real node's children once (the root's keys and values, 9 per level, and
    # health's key and value), however big the expansion.
    assert size.examined == 2 * (levels + 1) + 9 * levels + 2


def test_a_bomb_under_the_limits_is_quoted_briefly() -> None:
    with pytest.raises(ConfigInvalid) as e:
        load_text(bomb(5))  # 140,000 nodes: under the limit, so it reaches validation
    (problem,) = [p for p in e.value.problems if p.path == "health.workers"]
    assert problem.message == (
        "expected an integer, got a list [[[[['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', "
        "'lol', 'lol'], ['lol', ... (line 6)"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: &a [1, *a]\n", "cfg:1:4"),
        ("a: &a {x: *a}\n", "cfg:1:4"),
        ("a: &a [[x, *a]]\n", "cfg:1:4"),
        ("a: [1, &b {c: [*b]}]\n", "cfg:1:8"),
    ],
)
def test_a_recursive_alias_is_refused(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(text, source="cfg")
    assert (
        str(e.value) == f"{where}: a recursive alias: this collection contains an alias of itself"
    )


def test_nesting_is_bounded() -> None:
    deep = "a: " + "[" * 40 + "]" * 40 + "\n"
    with pytest.raises(ConfigError, match=r"^cfg:1:\d+: the document is nested more than 32 lev"):
        load_text(deep, source="cfg")
    with pytest.raises(ConfigInvalid):  # 31 levels: past the limits, to the validators
        load_text("a: " + "[" * 30 + "]" * 30 + "\n")
    # Through aliases, each of which adds a level.
    chain = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 40)]
    with pytest.raises(ConfigError) as e:
        load_text("\n".join(chain) + "\n", source="cfg")
    assert str(e.value).startswith("cfg:")
    assert "with its aliases expanded the document is nested more than 32 levels" in str(e.value)


def test_a_long_string_cannot_be_repeated_past_the_character_limit() -> None:
    text = f"s: &s {'x' * 400_000}\nt: [{', '.join(['*s'] * 100)}]\n"  # 40 M characters
    with pytest.raises(
        ConfigError, match=rf"^cfg:2:4: the document has more than {limits.MAX_CHARS:,} char"
    ):
        load_text(text, source="cfg")


def test_text_and_file_size_are_bounded(tmp_path: pathlib.Path) -> None:
    big = "#" * limits.MAX_BYTES + "\n"
    with pytest.raises(
        ConfigError, match=rf"^cfg: longer than {limits.MAX_BYTES >> 20} Mi characters$"
    ):
        load_text(big, source="cfg")
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(ConfigError, match=rf"larger than {limits.MAX_BYTES >> 20} MiB"):
        load_file(str(path))


def test_problems_past_the_limit_are_counted_without_their_hints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hints: list[str] = []
    real = schema.unknown_key_message

    def counted(key: str, allowed: object) -> str:
        hints.append(key)
        return real(key, allowed)  # type: ignore[arg-type]

    monkeypatch.setattr(schema, "unknown_key_message", counted)
    text = "".join(f"k{i}: 1\n" for i in range(1500))
    with pytest.raises(ConfigInvalid) as e:
        load_text(text)
    problems = [str(p) for p in e.value.problems]
    assert len(problems) == fields.MAX_PROBLEMS + 1
    assert problems[0].startswith("k0: unknown key 'k0'")
    assert problems[-1] == "... and 500 more problem(s) not listed"
    assert len(hints) == fields.MAX_PROBLEMS


def test_a_long_plain_scalar_is_a_string() -> None:
    # YAML's number patterns are not run over it (one regex call over 4 MiB holds the GIL).
    with pytest.raises(ConfigInvalid) as e:
        load_text("health: {workers: " + "9" * 2000 + "}\n")
    (problem,) = e.value.problems
    assert problem.message.startswith("expected an integer, got '99999")


def test_a_long_key_is_cut_in_paths_and_messages() -> None:
    key = "k" * 100_000
    with pytest.raises(ConfigInvalid) as e:
        load_text(f"vpp:\n  ? {key}\n  : 1\n")  # (an implicit key is at most 1024 long)
    (problem,) = e.value.problems
    assert problem.path == "vpp." + "k" * 77 + "..."
    assert problem.message == "unknown key " + fields.show(key) + " (line 1)"
    assert len(problem.message) < 110


# --- the collector --------------------------------------------------------------------------


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()  # as found, whatever the test left


def test_the_collector_is_paused_while_loading(
    monkeypatch: pytest.MonkeyPatch, collector_on: None
) -> None:
    seen: list[bool] = []
    real = loader.build
    monkeypatch.setattr(
        loader, "build", lambda *a, **k: seen.append(gc.isenabled()) or real(*a, **k)
    )
    load_text("vpp: {}\n")
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    load_text("vpp: {}\n")
    assert not gc.isenabled()  # left as it was found


def test_overlapping_loads_resume_the_collector_after_the_last(
    monkeypatch: pytest.MonkeyPatch, collector_on: None
) -> None:
    inside, release = threading.Event(), threading.Event()
    real = loader.build

    def build(
        data: dict[str, object],
        source: str,
        lines: loader.Lines | None,
        memo: loader.Memo | None,
        **kw: Any,
    ) -> object:
        if source == "slow":
            inside.set()
            assert release.wait(30)
        return real(data, source, lines, memo, **kw)

    monkeypatch.setattr(loader, "build", build)
    slow = threading.Thread(target=load_text, args=("vpp: {}\n", "slow"))
    slow.start()
    assert inside.wait(30)
    load_text("vpp: {}\n")
    assert not gc.isenabled()  # the slow load is still running
    release.set()
    slow.join(30)
    assert gc.isenabled()


# --- quoting --------------------------------------------------------------------------------


class _Leaf:
    quoted = 0

    def __repr__(self) -> str:
        _Leaf.quoted += 1
        return "leaf"


def test_show_does_bounded_work_on_a_shared_value() -> None:
    value: object = [_Leaf()] * 9
    for _ in range(5):
        value = [value] * 9  # 531,441 leaves, six objects
    _Leaf.quoted = 0
    text = fields.show(value)
    assert (
        text == "[[[[[[leaf, leaf, leaf, leaf, leaf, leaf, leaf, leaf, leaf], [leaf, leaf, lea..."
    )
    assert _Leaf.quoted <= fields.SHOW_MAX


@pytest.mark.parametrize(
    "value",
    [
        [1, "a", None, True, 1.5, b"x"],
        {"a": [1, 2], 3: {}},
        (1,),
        (),
        (1, 2),
        set(),
        frozenset(),
        {3},
        "it's",
        "é\n\x00",
        10**400,
        -(10**30),
        "x" * 1000,
        [["x" * 100]],
        float("nan"),
    ],
)
def test_show_is_repr_cut_short(value: object) -> None:
    text = repr(value)
    assert fields.show(value) == (text if len(text) <= 80 else text[:77] + "...")


def test_show_of_yaml_words() -> None:
    assert [fields.show(v) for v in (None, True, False)] == ["null", "true", "false"]


def test_a_duration_is_matched_on_bounded_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # `1`, spaces and `x` made the old pattern backtrack quadratically.
    matched: list[int] = []

    class Recorder:
        def match(self, text: str) -> None:
            matched.append(len(text))

        fullmatch = match

    monkeypatch.setattr(fields, "_DURATION", Recorder())
    with pytest.raises(ValueError, match="expected a duration"):
        fields.parse_duration("1" + " " * 100_000 + "x")
    assert all(n <= 64 for n in matched)


# --- taking the graph apart -------------------------------------------------------------------


def collections_of(root: yaml.Node) -> list[yaml.Node]:
    """Every collection node reachable from root, each once (aliases share one node)."""
    seen: dict[int, yaml.Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode) or id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(children(node))
    return list(seen.values())


def children(node: yaml.Node) -> list[yaml.Node]:
    """A collection's keys and values (alternating) or items."""
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)


def test_release_empties_every_collection_once_shared_or_not() -> None:
    root = yaml.compose(bomb(4) + "r: &r [x, *r]\n", Loader=loader._Loader)
    nodes = collections_of(root)
    scalars = [n for c in nodes if isinstance(c, yaml.SequenceNode) for n in c.value]
    assert len(nodes) == 1 + 4 + 1 + 1  # the root, the levels, health's mapping, r
    limits.release(root)
    assert [c.value for c in nodes] == [None] * len(nodes)
    # Scalars are left as they are: nothing else refers to them once their parents let go.
    assert all(isinstance(s.value, str) for s in scalars if isinstance(s, yaml.ScalarNode))


def test_release_of_a_deep_graph_does_not_recurse() -> None:
    leaf: yaml.Node = yaml.ScalarNode("tag:yaml.org,2002:str", "x")
    top: yaml.Node = leaf
    chain = []
    for _ in range(200_000):  # far past the recursion limit
        top = yaml.SequenceNode("tag:yaml.org,2002:seq", [top])
        chain.append(top)
    limits.release(top)
    assert all(n.value is None for n in chain)


class _Steps:
    """Counts, at each line release() runs, how many of the watched nodes have been freed."""

    def __init__(self, root: yaml.Node, code: object) -> None:
        self.freed = 0
        self.seen: list[int] = []
        self.code = code
        self.watched = 0
        stack, ids = [root], {id(root)}
        while stack:  # a finalizer on every node but the root, each once
            node = stack.pop()
            if not isinstance(node.value, list):
                continue
            for kid in children(node):
                if id(kid) not in ids:
                    ids.add(id(kid))
                    weakref.finalize(kid, self._freed)
                    self.watched += 1
                    stack.append(kid)

    def _freed(self) -> None:
        self.freed += 1

    def trace(self, frame: types.FrameType, event: str, arg: object) -> object:
        if frame.f_code is not self.code:
            return None
        self.seen.append(self.freed)
        return self.trace

    def largest_step(self) -> int:
        return max(b - a for a, b in itertools.pairwise(self.seen))


def _drop(graph: list[yaml.Node]) -> None:
    """Frees a graph the way reference counting does (one statement), for comparison."""
    graph.clear()


def stepped(fn: Callable[..., None], arg: object, steps: _Steps) -> None:
    was = sys.gettrace()
    sys.settrace(steps.trace)
    try:
        fn(arg)
    finally:
        sys.settrace(was)


def test_release_frees_about_one_node_per_step() -> None:
    # The interpreter can switch threads between any two lines: release() must free the graph
    # a little at each, where dropping the last reference frees it all inside one.
    text = bomb(4) + "".join(f"k{i}: {{a: [{i}, {i}], b: x}}\n" for i in range(2000))
    gc.disable()  # nothing here is cyclic: what is freed, reference counting frees
    try:
        root = yaml.compose(text, Loader=loader._Loader)
        steps = _Steps(root, limits.release.__code__)
        stepped(limits.release, root, steps)
        assert steps.freed == steps.watched > 10_000  # all of it, the root aside
        assert len(steps.seen) > steps.watched
        assert steps.largest_step() <= 2

        graph = [yaml.compose(text, Loader=loader._Loader)]
        dropped = _Steps(graph[0], _drop.__code__)
        stepped(_drop, graph, dropped)
        assert dropped.freed == dropped.watched
        assert dropped.largest_step() > 10_000  # the measure would see the old way
    finally:
        gc.enable()
