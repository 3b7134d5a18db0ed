"""The event loader against the node graph's loader: the same value and lines, or a hand-over.

Per construct whose meaning differs between YAML dialects (1.1 booleans, octal, sexagesimal,
dates, null, tags, anchors, merge keys, duplicates), the fast path must produce exactly what the
full loader produces, lines included, or hand the text over to it (`Unsupported`); and the
public loader must then give the full loader's value or its error, message and line alike.
Each test runs on both engines (the compiled `_fastload`, skipped when it is not built, except
under MAGLEV_REQUIRE_EXTENSIONS=1, and its twin `_fastload_py`), and a hypothesis test holds them
to the same value, lines or exception on random documents.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config import _fastload_py, fastload, limits, loader
from maglev.errors import ConfigError, ConfigInvalid
from tests import twins

COMPILED = twins.compiled("maglev.config._fastload")
ENGINES = twins.params("maglev.config._fastload", COMPILED, _fastload_py)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def _load(engine: ModuleType, text: str) -> tuple[object, loader.Lines]:
    return fastload.load(
        text, loader._Loader.yaml_implicit_resolvers, loader._construct_plain, 1000, engine
    )


FAST = "fast"
HANDED_OVER = "handed over"

# (a document, whether the fast path takes it)
CASES: list[tuple[str, str]] = [
    # YAML 1.1 booleans: PyYAML's meaning (yes/no/on/off are booleans; y and n are strings)
    *((f"a: {word}\n", FAST) for word in ("yes", "no", "on", "off", "Yes", "NO", "On", "OFF")),
    *((f"a: {word}\n", FAST) for word in ("y", "n", "Y", "N", "true", "False", "TRUE")),
    # octal (socket modes), hexadecimal, binary, underscores, signs; 08 is not octal: a string
    *((f"a: {n}\n", FAST) for n in ("0660", "0o660", "0x1f", "0b101", "1_000", "+12", "-0", "08")),
    # sexagesimal (1:30 is 90), exponents and special floats
    *((f"a: {n}\n", FAST) for n in ("1:30", "190:20:30.15", "1e3", "1.0e+3", "12.", ".inf")),
    *((f"a: {n}\n", FAST) for n in ("-.inf", ".NaN", "0.5%", "1,000")),
    # null spellings, empty values, quoted look-alikes
    *((f"a: {v}\n", FAST) for v in ("~", "null", "Null", "NULL", "", '"0660"', "'yes'", '"~"')),
    # dates stay strings (the loader drops PyYAML's timestamp resolver)
    ("a: 2024-01-02\n", FAST),
    ("a: 2024-01-02 10:00:00\n", FAST),
    ("a: 2024-02-30\n", FAST),
    # block scalars, flow and block collections, keys of other types
    ("a: |\n  x\n  y\nb: >-\n  p\n  q\n", FAST),
    ("a: [1, {b: 2}, [c]]\nd:\n  - e\n  - {f: g}\n", FAST),
    ("1: a\nfalse: b\n~: c\n1.5: d\n", FAST),
    ("'quoted key': 1\n\"d\": 2\n", FAST),
    ("a: " + "9" * (loader.PLAIN_TYPED_MAX + 1) + "\n", FAST),  # long plain text is a string
    ("- 1\n- 2\n", FAST),  # a top level the loader then refuses
    ("just text\n", FAST),
    ("", FAST),
    ("# only a comment\n", FAST),
    # handed over: the full loader gives these their meaning or its refusal
    ("a: &x {b: 1}\nc: *x\n", HANDED_OVER),
    ("a: &x {b: 1}\nc: {<<: *x, d: 2}\n", HANDED_OVER),
    ("a: {<<: {b: 1}, b: 2}\n", HANDED_OVER),
    ("a: <<\n", HANDED_OVER),
    ("a: !!str 12\n", HANDED_OVER),
    ("a: !!int '12'\n", HANDED_OVER),
    ("a: !!binary aGk=\n", HANDED_OVER),
    ("a: !foo 12\n", HANDED_OVER),
    ("a: ! 12\n", HANDED_OVER),
    ("!!map {a: 1}\n", HANDED_OVER),
    ("a: !!timestamp 2024-01-02\n", HANDED_OVER),
    ("a: =\n", HANDED_OVER),
    ("a: 1\na: 2\n", HANDED_OVER),
    ("1: a\ntrue: b\n", HANDED_OVER),  # 1 == True: a duplicate for Python
    ("? [1, 2]\n: 3\n", HANDED_OVER),
    ("? {a: 1}\n: 3\n", HANDED_OVER),
    ("a: 1\n---\nb: 2\n", HANDED_OVER),
    ("a: [1, 2\n", HANDED_OVER),
    ("a: b: c\n", HANDED_OVER),
    ("a: *nothing\n", HANDED_OVER),
    ("a: " + "1" * 5000 + "\n", FAST),  # longer than PLAIN_TYPED_MAX: a string, not a number
    ("a: 1" + "0" * 900 + "\n", FAST),
    ("a: \x07\n", HANDED_OVER),  # a character YAML does not allow
    ("a: " + "[" * (limits.MAX_DEPTH + 1) + "]" * (limits.MAX_DEPTH + 1) + "\n", HANDED_OVER),
]


def _composed(text: str) -> tuple[object, loader.Lines] | str:
    try:
        return loader._parse_composed(text, "cfg")
    except ConfigError as e:
        return str(e)


def _flat(data: object, lines: loader.Lines, path: str = "") -> list[tuple[str, object, int]]:
    """(path, value, line) of every key and item: lines compared by place, not by object id."""
    out: list[tuple[str, object, int]] = []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    at = lines.get(id(data), {})
    if isinstance(data, list):  # a list's lines are a list too, one per item
        assert isinstance(at, list) and len(at) == len(data), (at, data)
    for key, value in items:
        here = f"{path}/{key!r}:{type(key).__name__}"
        shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
        line = at[key] if isinstance(at, list) else at.get(key, -1)
        out.append((here, f"{type(value).__name__}:{shown}", line))
        out.extend(_flat(value, lines, here))
    return out


@pytest.mark.parametrize(("text", "path"), CASES)
def test_the_fast_path_means_what_the_full_loader_means(
    engine: ModuleType, text: str, path: str
) -> None:
    full = _composed(text)
    try:
        fast = _load(engine, text)
    except fastload.Unsupported:
        assert path == HANDED_OVER, f"{text!r} should not need the full loader"
    else:
        assert path == FAST, f"{text!r} should have been handed over, got {fast[0]!r}"
        assert not isinstance(full, str), f"the full loader refuses {text!r}: {full}"
        assert _flat(*fast) == _flat(*full)
        assert type(fast[0]) is type(full[0])
        if not isinstance(fast[0], dict | list):
            assert fast[0] == full[0]


@pytest.mark.parametrize(("text", "path"), CASES)
def test_parse_gives_the_full_loaders_value_or_its_message(
    engine: ModuleType, text: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastload, "_engine", engine)
    full = _composed(text)
    try:
        got: object = loader._parse(text, "cfg")
    except ConfigError as e:
        got = str(e)
    if isinstance(full, str):
        assert got == full
    elif isinstance(full[0], dict):
        assert not isinstance(got, str)
        assert _flat(*got) == _flat(*full)  # type: ignore[misc]
    else:
        assert isinstance(got, str)  # the top level is not a mapping: refused either way


SCALARS = st.text(alphabet="0123456789abefnoxyYNT_:.+-e~ ", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(SCALARS, SCALARS), max_size=6))
def test_random_plain_scalars_mean_the_same(pairs: list[tuple[str, str]]) -> None:
    text = "".join(f"k{i}{key}: {value}\n" for i, (key, value) in enumerate(pairs))
    full = _composed(text)
    try:
        fast = fastload.load(
            text, loader._Loader.yaml_implicit_resolvers, loader._construct_plain, 1000
        )  # the selected engine; the twins are compared with each other below
    except fastload.Unsupported:
        return
    assert not isinstance(full, str), f"the full loader refuses {text!r}: {full}"
    assert _flat(*fast) == _flat(*full)


@pytest.mark.parametrize(
    "text",
    [
        "x: [" + ", ".join(["a"] * 60) + "]\n",
        "x:\n" + "".join(f"  k{i}: v\n" for i in range(40)),
        "x:\n" + "".join(f"  k{i}: [a]\n" for i in range(40)),
        "x:\n" + "".join(f"  k{i}: {{a: b}}\n" for i in range(40)),
        "x: [" + ", ".join(["{a: b}"] * 40) + "]\n",
        "x: [" + ", ".join(["[a]"] * 40) + "]\n",
        "- " + "\n- ".join(["a"] * 60) + "\n",
    ],
)
def test_too_many_nodes_is_refused_as_the_full_loader_refuses_it(
    engine: ModuleType, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastload, "_engine", engine)
    # A small limit, so the shapes are small: each crosses it at a key, a value or an item.
    monkeypatch.setattr(limits, "MAX_NODES", 50)
    full = _composed(text)
    assert isinstance(full, str) and "(the limit)" in full
    with pytest.raises(ConfigError) as e:
        loader._parse(text, "cfg")
    assert str(e.value) == full


# --- the two engines agree on random documents ---------------------------------------------------

# Plain scalars of every kind the resolver tells apart, quoted ones, and the constructs that are
# handed over (anchors, aliases, tags, merge keys); a small pool, so keys repeat (duplicates).
TOKENS = [
    *("0", "1", "-1", "0660", "0o17", "0x1f", "0b11", "1_000", "08", "1:30", "1e3", "1.5", ".inf"),
    *("-.inf", ".nan", ".NaN", "yes", "no", "on", "off", "Y", "n", "true", "False", "null", "~"),
    *("", "2024-01-02", "2024-01-02 10:00:00", "web", "a b", "'yes'", '"0660"', "'~'", '"x"'),
    *("x" * 30, "9" * 30, "<<", "&a 1", "*a", "!!str 5", "!foo x", "!!int '3'", "=", "@x"),
]
LEAF = st.sampled_from(TOKENS)
TREE = st.recursive(
    LEAF,
    lambda kids: st.tuples(
        st.sampled_from(["map", "list", "&a map", "&a list", "!!map map"]),
        st.booleans(),  # flow style
        st.lists(st.tuples(LEAF, kids), max_size=4),
    ),
    max_leaves=16,
)


def _flow(node: object) -> str:
    if isinstance(node, str):
        return node
    kind, _flow_style, items = node  # type: ignore[misc]
    prefix = kind.rpartition(" ")[0]
    prefix = prefix + " " if prefix else ""
    if kind.endswith("list"):
        return prefix + "[" + ", ".join(_flow(v) for _k, v in items) + "]"
    return prefix + "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in items) + "}"


def _block(node: object, indent: int) -> str:
    """A collection in block style (nested ones in flow style when so drawn, or empty)."""
    kind, _flow_style, items = node  # type: ignore[misc]
    pad = " " * indent
    out = []
    for key, value in items:
        head = f"{pad}- " if kind.endswith("list") else f"{pad}{key}:"
        if isinstance(value, str) or value[1] or not value[2] or value[0] != value[0].split()[-1]:
            out.append(f"{head} {_flow(value)}\n")
        else:
            out.append(f"{head}\n" + _block(value, indent + 2))
    return "".join(out)


def _document(tree: object) -> str:
    if isinstance(tree, str) or tree[1] or not tree[2]:  # type: ignore[index]
        return _flow(tree) + "\n"
    return _block(tree, 0)


def _outcome(engine: ModuleType, text: str) -> object:
    """What an engine makes of the text: its value and lines by place, or its exception."""
    try:
        data, lines = _load(engine, text)
    except fastload.TooMany as e:
        return ("TooMany", e.line, e.column, e.where)
    except Exception as e:
        return type(e).__name__
    root = "nan" if isinstance(data, float) and math.isnan(data) else repr(data)
    shown = f"{type(data).__name__}:{root}" if not isinstance(data, dict | list) else ""
    return (type(data).__name__, shown, _flat(data, lines))


@pytest.mark.skipif(COMPILED is None, reason="maglev.config._fastload is not built here")
@settings(max_examples=400, deadline=None)
@given(TREE, st.sampled_from([None, 6]), st.sampled_from([None, 4]))
def test_both_engines_agree_on_random_documents(
    tree: object, max_nodes: int | None, max_depth: int | None
) -> None:
    text = _document(tree)
    saved = limits.MAX_NODES, limits.MAX_DEPTH
    try:
        limits.MAX_NODES = max_nodes or saved[0]
        limits.MAX_DEPTH = max_depth or saved[1]
        assert _outcome(COMPILED, text) == _outcome(_fastload_py, text), text  # type: ignore[arg-type]
    finally:
        limits.MAX_NODES, limits.MAX_DEPTH = saved


@pytest.mark.skipif(COMPILED is None, reason="maglev.config._fastload is not built here")
@pytest.mark.parametrize(
    "text",
    [
        *(text for text, _path in CASES),
        "a: \ud800\n",  # a lone surrogate: not encodable, refused alike
        "\ufeffa: 1\n",  # a byte-order mark
        "a:\n  - 1\n  -\n  - [2, {b: }]\n",
    ],
)
def test_both_engines_agree_on_the_cases(text: str) -> None:
    assert COMPILED is not None
    assert _outcome(COMPILED, text) == _outcome(_fastload_py, text)


@pytest.mark.skipif(COMPILED is None, reason="maglev.config._fastload is not built here")
def test_the_compiled_loop_lets_other_threads_in_every_thousand_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its C loop runs no bytecode, so only this call lets a check worker or the reconciler take
    # the GIL during a load (releasing the GIL instead starved them: a 0.3 s load was one stall).
    calls: list[None] = []
    monkeypatch.setattr(COMPILED, "let_others_run", lambda: calls.append(None))
    items = 10_000
    value, _ = _load(COMPILED, "a: [" + ", ".join(["x"] * items) + "]\n")  # type: ignore[arg-type]
    assert value == {"a": ["x"] * items}
    events = items + 7  # stream, document and mapping start/end, the key, the sequence's two
    assert len(calls) == events // 1024


# --- short cuts: plain scalars no resolver looks at, and loading without lines ------------------

# Addresses, versions and names: digits and dots (one dot is a float, two or more a string),
# and first characters that start no resolver (a string at once) beside ones that do.
SHORT_CUT = st.one_of(
    st.from_regex(r"[0-9.]{0,16}", fullmatch=True),
    st.from_regex(r"[-+.]?[0-9]{1,3}(\.[0-9]{0,3}){0,4}(e[-+]?[0-9])?", fullmatch=True),
    st.text(alphabet="abcdghjxzABnNyYtTfFoO~=<é0.-_", min_size=1, max_size=6),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(SHORT_CUT, min_size=1, max_size=6))
def test_short_cut_scalars_mean_what_the_full_loader_means(values: list[str]) -> None:
    text = "".join(f"k{i}: {value}\n" for i, value in enumerate(values))
    full = _composed(text)
    for eng in (COMPILED, _fastload_py):
        if eng is None:
            continue
        try:
            fast = _load(eng, text)
        except fastload.Unsupported:
            continue
        assert not isinstance(full, str), f"the full loader refuses {text!r}: {full}"
        assert _flat(*fast) == _flat(*full), (eng.engine_name(), text)


def _without_lines(engine: ModuleType, text: str) -> object:
    try:
        data, lines = fastload.load(
            text,
            loader._Loader.yaml_implicit_resolvers,
            loader._construct_plain,
            1000,
            engine,
            with_lines=False,
        )
    except fastload.TooMany as e:
        return ("TooMany", e.line, e.column, e.where)
    except Exception as e:
        return type(e).__name__
    assert lines == {}
    return repr(data)


@settings(max_examples=300, deadline=None)
@given(TREE)
def test_without_lines_the_value_and_the_refusals_are_the_same(tree: object) -> None:
    text = _document(tree)
    for eng in (COMPILED, _fastload_py):
        if eng is None:
            continue
        outcome = _outcome(eng, text)
        if isinstance(outcome, tuple) and outcome[0] != "TooMany":
            data, _lines = _load(eng, text)
            assert _without_lines(eng, text) == repr(data), text
        else:
            assert _without_lines(eng, text) == outcome, text


def test_a_good_config_is_parsed_once_without_lines_a_bad_one_again_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    real = fastload.load

    def counting(*args: Any, **kw: Any) -> object:
        calls.append(kw.get("with_lines", True))
        return real(*args, **kw)

    monkeypatch.setattr(fastload, "load", counting)
    good = "backends:\n  b1: {address: 10.0.0.1}\n"
    loader.load_text(good)
    assert calls == [False]
    calls.clear()
    bad = "backends:\n  b1: {address: 10.0.0.1}\n  b2: {address: 10.0.0.300}\n"
    with pytest.raises(ConfigInvalid) as e:
        loader.load_text(bad)
    assert calls == [False, True]
    assert [str(p) for p in e.value.problems] == [
        "backends.b2.address: '10.0.0.300' is not an IP address (line 3)"
    ]
