"""`frontends.NAME.max-churn` and `churn-interval`: values, defaults, mistakes at their key."""

from __future__ import annotations

import pytest

from tests.config.sample import BASE, bare, load, mutate, problems_of


def test_off_unless_configured() -> None:
    fe = load(BASE).frontends["www"]
    assert fe.max_churn is None
    assert fe.churn_interval == 30.0


@pytest.mark.parametrize(("raw", "value"), [("10%", 0.1), (0.25, 0.25), ("100%", 1.0), (1, 1.0)])
def test_values(raw: object, value: float) -> None:
    data = mutate(BASE, "frontends.www.max-churn", raw)
    data = mutate(data, "frontends.www.churn-interval", "5s")
    fe = load(data).frontends["www"]
    assert fe.max_churn == pytest.approx(value)
    assert fe.churn_interval == 5.0


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("max-churn", "0%", "'0%' is not in (0..1] (0%..100%, more than 0)"),
        ("max-churn", 0, "0 is not in (0..1] (0%..100%, more than 0)"),
        ("max-churn", "150%", "'150%' is not in (0..1] (0%..100%, more than 0)"),
        ("max-churn", -0.1, "-0.1 is not in (0..1] (0%..100%, more than 0)"),
        ("max-churn", "lots", "expected a percentage like 10% or a fraction 0..1, got 'lots'"),
        ("max-churn", True, "expected a percentage like 10% or a fraction 0..1, got true"),
        ("churn-interval", "0s", "'0s' must be greater than 0"),
        ("churn-interval", "2h", "'2h' is longer than an hour"),
    ],
)
def test_mistakes_name_their_key(key: str, raw: object, message: str) -> None:
    problems = problems_of(mutate(BASE, f"frontends.www.{key}", raw))
    assert bare(problems) == [f"frontends.www.{key}: {message}"]


def test_a_misspelt_key() -> None:
    problems = problems_of(mutate(BASE, "frontends.www.max-churns", "10%"))
    assert bare(problems) == [
        "frontends.www.max-churns: unknown key 'max-churns' (did you mean 'max-churn'?)"
    ]
