"""Random YAML-ish input never escapes as anything but ConfigError or ConfigInvalid."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maglev.config import load_text, schema
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
