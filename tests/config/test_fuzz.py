"""Random YAML-ish input never escapes as anything but ConfigError or ConfigInvalid; with
anchors and aliases (bombs and recursive ones included), the work stays bounded by the text."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maglev.config import limits, load_text, loader, schema
from maglev.errors import ConfigError, ConfigInvalid
from maglev.model import Config
from tests.config.sample import BASE, mutate, split_path

KEYS = sorted(
    {
        *schema.TOP,
        *schema.VPP,
        *schema.LB,
        *schema.BACKEND,
        *schema.FRONTEND,
        *schema.POOL,
        *schema.POOL_MEMBER,
        *schema.CONTROL,
        *schema.METRICS,
        *schema.HEALTH,
        *(k for keys in schema.HEALTHCHECK_BY_TYPE.values() for k in keys),
        *schema.HEALTHCHECK_COMMON,
        "web1",
        "h",
        "www",
    }
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2s",
            "500ms",
            "10%",
            "0660",
            "tcp",
            "any",
            "gre4",
            "nat6",
            "l3dsr",
            "http",
            "exec",
            "dns",
            "127.0.0.1",
            "::1",
            "192.0.2.0/24",
            "200-299",
            "{address}",
            "{x}",
            "h:1",
            "[::1]:0",
            "(" * 2000,
            "a{99999999999}",
            "9" * 5000,
            "h:" + "9" * 5000,
            "[[:alpha:]]",
            "٣",
        ]
    ),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)


def _paths(node: object, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out += [path, *_paths(v, path)]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            path = f"{prefix}[{i}]"
            out += [path, *_paths(v, path)]
    return out


PATHS = _paths(BASE)


def _load_survives(text: str) -> None:
    try:
        cfg = load_text(text)
    except ConfigError as e:
        assert str(e)
    except ConfigInvalid as e:
        assert e.problems and all(p.message for p in e.problems)
    else:
        assert isinstance(cfg, Config)


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(schema.TOP), keys), values, max_size=6))
def test_random_documents(doc: dict[Any, Any]) -> None:
    _load_survives(yaml.safe_dump(doc))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_random_values_in_a_valid_config(changes: list[tuple[str, Any]]) -> None:
    data = BASE
    for path, value in changes:
        try:
            data = mutate(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the parent of this path
    assert split_path(changes[0][0])
    _load_survives(yaml.safe_dump(data))


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _load_survives(text)


# --- anchors and aliases ------------------------------------------------------------------

_SCALARS = ["1", "x", "2s", "127.0.0.1", "192.0.2.0/24", "null", "true", "''", "gre4", "web1"]


@st.composite
def aliased_documents(draw: st.DrawFn) -> str:
    """Flow-style YAML whose collections may carry anchors and whose values may be aliases of
    an anchor defined before: mostly of a finished collection, now and then of one still open
    (a recursive alias); mapping keys include merges (`<<`)."""
    done: list[str] = []
    open_: list[str] = []

    def value(depth: int) -> str:
        choice = draw(st.integers(0, 9 if depth < 5 else 3))
        if choice == 3 and open_ and draw(st.integers(0, 15)) == 0:
            return "*" + draw(st.sampled_from(open_))
        if choice == 3 and done:
            return "*" + draw(st.sampled_from(done))
        if choice <= 3:
            return draw(st.sampled_from(_SCALARS))
        name = f"a{len(done) + len(open_)}" if draw(st.booleans()) else None
        if name:
            open_.append(name)
        if choice <= 6:
            items = [value(depth + 1) for _ in range(draw(st.integers(0, 4)))]
            text = "[" + ", ".join(items) + "]"
        else:
            keys = draw(st.lists(st.sampled_from([*KEYS, "<<"]), max_size=4, unique=True))
            text = "{" + ", ".join(f"{k}: {value(depth + 1)}" for k in keys) + "}"
        if name:
            open_.remove(name)
            done.append(name)
            return f"&{name} {text}"
        return text

    sections = draw(st.lists(st.sampled_from([*schema.TOP, "x"]), max_size=5, unique=True))
    return "".join(f"{s}: {value(1)}\n" for s in sections)


def _measured(text: str) -> limits.Size | None:
    """The expanded size of `text` (None if it is empty or a limit refused it)."""
    node = yaml.compose(text, Loader=loader._Loader)
    try:
        return limits.measure(node) if node is not None else None
    except ConfigError:
        return None


@FUZZ
@given(aliased_documents())
def test_documents_with_aliases(text: str) -> None:
    _load_survives(text)
    size = _measured(text)
    if size is not None:
        # The walk visits each real node once: no more than the text has characters.
        assert size.examined <= len(text)


_PLACES = [
    "health: {workers: *%s}",
    "backends: {b: *%s}",
    "frontends: {f: {pools: *%s}}",
    "vpp: {lb: *%s}",
    "x: [*%s, *%s]",
]


@FUZZ
@given(st.integers(1, 14), st.integers(1, 12), st.sampled_from(_PLACES))
def test_alias_bombs(levels: int, width: int, place: str) -> None:
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{names[i - 1]}"] * width)
        lines.append(f"{names[i]}: &{names[i]} [{refs}]")
    lines.append(place.replace("%s", names[-1]))
    text = "\n".join(lines) + "\n"
    built: list[object] = []
    real = loader._Loader.construct_document

    def construct(self: loader._Loader, node: yaml.Node) -> Any:
        built.append(node)
        return real(self, node)

    with mock.patch.object(loader._Loader, "construct_document", construct):
        _load_survives(text)
        if width**levels > limits.MAX_NODES:  # the last level alone expands past the limit
            with pytest.raises(ConfigError, match=r"keys, values and items \(the limit\)"):
                load_text(text)
            assert built == []  # refused from the node graph, before building anything


@FUZZ
@given(st.text(alphabet="&*ab[]{}:,- \n'\"!<>|#?", max_size=200))
def test_random_yaml_punctuation(text: str) -> None:
    _load_survives(text)
