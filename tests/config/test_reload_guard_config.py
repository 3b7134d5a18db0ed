"""`reload-guard`: its values, its defaults, and every mistake at its key path."""

from __future__ import annotations

import pytest

from maglev.config import diff_configs, restart_only_changes
from maglev.model import ReloadGuardSettings
from tests.config.sample import BASE, bare, load, mutate, problems_of

R = "reload-guard"


def test_defaults_when_absent_or_empty() -> None:
    want = ReloadGuardSettings(
        max_deleted_frontends=1, max_capacity_loss=0.5, protect_busy_frontends=True
    )
    assert load(BASE).reload_guard == want
    assert load(mutate(BASE, R, None)).reload_guard == want
    assert load(mutate(BASE, R, {})).reload_guard == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ({"max-deleted-frontends": 0}, ReloadGuardSettings(max_deleted_frontends=0)),
        ({"max-deleted-frontends": 25}, ReloadGuardSettings(max_deleted_frontends=25)),
        ({"max-capacity-loss": "12.5%"}, ReloadGuardSettings(max_capacity_loss=0.125)),
        ({"max-capacity-loss": 0.25}, ReloadGuardSettings(max_capacity_loss=0.25)),
        ({"max-capacity-loss": "0%"}, ReloadGuardSettings(max_capacity_loss=0.0)),
        ({"max-capacity-loss": "100%"}, ReloadGuardSettings(max_capacity_loss=1.0)),
        ({"protect-busy-frontends": False}, ReloadGuardSettings(protect_busy_frontends=False)),
    ],
)
def test_values(value: dict[str, object], want: ReloadGuardSettings) -> None:
    assert load(mutate(BASE, R, value)).reload_guard == want


CASES: list[tuple[object, str, str]] = [
    ("on", R, "expected a mapping, got 'on'"),
    ({"max-deleted-frontends": -1}, f"{R}.max-deleted-frontends", "is not in 0..1000000"),
    ({"max-deleted-frontends": "two"}, f"{R}.max-deleted-frontends", "expected an integer"),
    ({"max-deleted-frontends": 1.5}, f"{R}.max-deleted-frontends", "expected an integer"),
    ({"max-capacity-loss": "150%"}, f"{R}.max-capacity-loss", "'150%' is not in 0%..100%"),
    ({"max-capacity-loss": -0.1}, f"{R}.max-capacity-loss", "is not in 0%..100%"),
    ({"max-capacity-loss": "half"}, f"{R}.max-capacity-loss", "expected a percentage like 50%"),
    ({"max-capacity-loss": True}, f"{R}.max-capacity-loss", "got true"),
    ({"protect-busy-frontends": "yes"}, f"{R}.protect-busy-frontends", "expected true or false"),
    ({"max-deleted-frontend": 2}, f"{R}.max-deleted-frontend", "did you mean 'max-deleted-"),
    ({"max_capacity_loss": "5%"}, f"{R}.max_capacity_loss", "keys are kebab-case"),
]


@pytest.mark.parametrize(("value", "path", "text"), CASES)
def test_problems(value: object, path: str, text: str) -> None:
    got = bare(problems_of(mutate(BASE, R, value)))
    assert any(p.startswith(f"{path}: ") and text in p for p in got), got


def test_every_problem_at_once_with_its_line() -> None:
    broken = {"max-deleted-frontends": -3, "max-capacity-loss": "x", "protect": True}
    got = [str(p) for p in problems_of(mutate(BASE, R, broken))]
    assert len(got) == 3 and all("(line " in p for p in got), got


def test_a_reload_applies_it() -> None:
    old, new = load(BASE), load(mutate(BASE, R, {"max-deleted-frontends": 3}))
    assert diff_configs(old, new).settings == ("reload-guard",)
    assert not diff_configs(old, new).empty
    assert restart_only_changes(old, new) == ()
