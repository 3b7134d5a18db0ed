"""The event loader against the node graph's loader: the same value and lines, or a hand-over.

Per construct whose meaning differs between YAML dialects (1.1 booleans, octal, sexagesimal,
dates, null, tags, anchors, merge keys, duplicates), the fast path must produce exactly what the
full loader produces, lines included, or hand the text over to it (`Unsupported`); and the
public loader must then give the full loader's value or its error, message and line alike.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config import fastload, limits, loader
from maglev.errors import ConfigError

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
    for key, value in items:
        here = f"{path}/{key!r}:{type(key).__name__}"
        shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
        out.append((here, f"{type(value).__name__}:{shown}", at.get(key, -1)))
        out.extend(_flat(value, lines, here))
    return out


@pytest.mark.parametrize(("text", "path"), CASES)
def test_the_fast_path_means_what_the_full_loader_means(text: str, path: str) -> None:
    full = _composed(text)
    try:
        fast = fastload.load(
            text, loader._Loader.yaml_implicit_resolvers, loader._construct_plain, 1000
        )
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
def test_parse_gives_the_full_loaders_value_or_its_message(text: str, path: str) -> None:
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
        )
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
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small limit, so the shapes are small: each crosses it at a key, a value or an item.
    monkeypatch.setattr(limits, "MAX_NODES", 50)
    full = _composed(text)
    assert isinstance(full, str) and "(the limit)" in full
    with pytest.raises(ConfigError) as e:
        loader._parse(text, "cfg")
    assert str(e.value) == full
