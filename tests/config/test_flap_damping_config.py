"""`healthchecks.NAME.flap-damping`: off unless configured, its defaults, its values, and every
mistake at its key path."""

from __future__ import annotations

from typing import Any

import pytest

from maglev.config import diff_configs
from maglev.model import FlapDamping
from tests.config.sample import BASE, bare, load, mutate, problems_of

K = "healthchecks.t.flap-damping"


def with_damping(value: object) -> dict[str, Any]:
    return mutate(BASE, K, value)


def test_off_unless_configured() -> None:
    assert load(BASE).healthchecks["t"].flap_damping is None
    assert load(with_damping(None)).healthchecks["t"].flap_damping is None


def test_an_empty_mapping_is_on_with_the_defaults() -> None:
    fd = load(with_damping({})).healthchecks["t"].flap_damping
    assert fd == FlapDamping(1000.0, 30.0, 2000.0, 750.0, 600.0)


def test_values() -> None:
    fd = load(
        with_damping(
            {"penalty": 500, "half-life": "1m", "suppress": 3000, "reuse": 1000,
             "max-suppress": "1h"}
        )
    ).healthchecks["t"].flap_damping  # fmt: skip
    assert fd == FlapDamping(500.0, 60.0, 3000.0, 1000.0, 3600.0)


def test_every_check_type_accepts_it() -> None:
    for name in ("h", "d", "e", "s", "i"):
        cfg = load(mutate(BASE, f"healthchecks.{name}.flap-damping", {}))
        assert cfg.healthchecks[name].flap_damping == FlapDamping()


CASES: list[tuple[object, str, str]] = [
    ("on", K, "expected a mapping, got 'on'"),
    ({"reuse": 2000}, f"{K}.reuse", "2000 must be less than suppress (2000)"),
    ({"suppress": 500}, f"{K}.reuse", "750 must be less than suppress (500)"),
    ({"penalty": 0}, f"{K}.penalty", "0 is not in 1..1000000"),
    ({"penalty": "lots"}, f"{K}.penalty", "expected an integer, got 'lots'"),
    ({"half-life": "0s"}, f"{K}.half-life", "'0s' must be greater than 0"),
    ({"max-suppress": "-1s"}, f"{K}.max-suppress", ""),
    ({"max-suppress": "10s"}, f"{K}.max-suppress", "10s is shorter than half-life 30s"),
    ({"halflife": "1s"}, f"{K}.halflife", "did you mean 'half-life'?"),
]


@pytest.mark.parametrize(("value", "path", "text"), CASES)
def test_problems(value: object, path: str, text: str) -> None:
    got = bare(problems_of(with_damping(value)))
    assert any(p.startswith(f"{path}: ") and text in p for p in got), got


def test_a_reload_can_change_it() -> None:
    old, new = load(BASE), load(with_damping({}))
    assert "t" in diff_configs(old, new).healthchecks.changed
