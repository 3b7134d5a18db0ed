"""`frontends.NAME.min-healthy` and `on-mass-failure`: values, defaults and mistakes."""

from __future__ import annotations

import pytest

from maglev.model import MassFailure, MinHealthy
from tests.config.sample import BASE, bare, load, mutate, problems_of


def test_defaults_are_fail_static_at_half() -> None:
    fe = load(BASE).frontends["www"]
    assert fe.min_healthy == MinHealthy(5000, percent=True)
    assert fe.on_mass_failure is MassFailure.FAIL_STATIC
    assert str(fe.min_healthy) == "50%"


@pytest.mark.parametrize(
    ("value", "expected", "shown"),
    [
        ("50%", MinHealthy(5000), "50%"),
        ("0%", MinHealthy(0), "0%"),
        ("100%", MinHealthy(10000), "100%"),
        ("12.5%", MinHealthy(1250), "12.5%"),
        (" 33.33 % ", MinHealthy(3333), "33.33%"),
        (2, MinHealthy(2, percent=False), "2"),
        (0, MinHealthy(0, percent=False), "0"),
        (3.0, MinHealthy(3, percent=False), "3"),
    ],
)
def test_min_healthy_is_a_percentage_or_a_count(
    value: object, expected: MinHealthy, shown: str
) -> None:
    fe = load(mutate(BASE, "frontends.www.min-healthy", value)).frontends["www"]
    assert fe.min_healthy == expected and str(fe.min_healthy) == shown


@pytest.mark.parametrize(
    ("value", "mode"),
    [("fail-static", MassFailure.FAIL_STATIC), ("panic", MassFailure.PANIC),
     ("DRAIN", MassFailure.DRAIN)],
)  # fmt: skip
def test_on_mass_failure(value: str, mode: MassFailure) -> None:
    fe = load(mutate(BASE, "frontends.www.on-mass-failure", value)).frontends["www"]
    assert fe.on_mass_failure is mode


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("min-healthy", "150%", "'150%' is not in 0%..100%"),
        (
            "min-healthy",
            "12.345%",
            "expected a percentage like 50% or a count like 2, got '12.345%'",
        ),
        ("min-healthy", "-5%", "expected a percentage like 50% or a count like 2, got '-5%'"),
        ("min-healthy", "half", "expected a percentage like 50% or a count like 2, got 'half'"),
        ("min-healthy", "2", "expected a percentage like 50% or a count like 2, got '2'"),
        ("min-healthy", 0.5, "expected a percentage like 50% or a count like 2, got 0.5"),
        ("min-healthy", True, "expected a percentage like 50% or a count like 2, got true"),
        ("min-healthy", -1, "-1 is not in 0..100000"),
        ("min-healthy", 10**6, "1000000 is not in 0..100000"),
        ("on-mass-failure", "failstatic", "'failstatic' is not one of fail-static, panic, drain"),
        ("on-mass-failure", 1, "1 is not one of fail-static, panic, drain"),
    ],
)
def test_mistakes_are_reported_at_their_key(key: str, value: object, message: str) -> None:
    problems = problems_of(mutate(BASE, f"frontends.www.{key}", value))
    assert bare(problems) == [f"frontends.www.{key}: {message}"]


def test_misspelt_keys_get_a_hint() -> None:
    problems = problems_of(mutate(BASE, "frontends.www.min-heathy", "50%"))
    assert bare(problems) == [
        "frontends.www.min-heathy: unknown key 'min-heathy' (did you mean 'min-healthy'?)"
    ]
