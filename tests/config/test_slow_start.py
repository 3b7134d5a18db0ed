"""`frontends.NAME.slow-start` and a pool member's `slow-start`: values, defaults, mistakes."""

from __future__ import annotations

import pytest

from maglev.model import SlowStart
from tests.config.sample import BASE, bare, load, mutate, problems_of

MEMBER = "frontends.www.pools[0].backends.web1.slow-start"


def test_off_unless_configured() -> None:
    fe = load(BASE).frontends["www"]
    assert fe.slow_start is None
    assert fe.slow_start_of("web1") is None


def test_frontend_ramp_and_member_override() -> None:
    data = mutate(BASE, "frontends.www.slow-start", {"duration": "1m"})
    data = mutate(data, MEMBER, {"duration": "10s", "steps": 5})
    fe = load(data).frontends["www"]
    assert fe.slow_start == SlowStart(60.0, 4)
    assert fe.slow_start_of("web1") == SlowStart(10.0, 5)
    assert fe.slow_start_of("web2") == SlowStart(60.0, 4)
    assert fe.slow_start_of("nobody") is None


def test_a_member_ramp_without_a_frontend_one() -> None:
    fe = load(mutate(BASE, MEMBER, {"duration": 5})).frontends["www"]
    assert fe.slow_start_of("web1") == SlowStart(5.0, 4)
    assert fe.slow_start_of("web2") is None


@pytest.mark.parametrize(
    ("value", "where", "message"),
    [
        ({}, "duration", "is required"),
        ({"duration": "0s"}, "duration", "'0s' must be greater than 0"),
        ({"duration": "25h"}, "duration", "'25h' is longer than a day"),
        ({"duration": "10s", "steps": 1}, "steps", "1 is not in 2..100"),
        ({"duration": "10s", "steps": 101}, "steps", "101 is not in 2..100"),
        ({"duration": "10s", "steps": "x"}, "steps", "expected an integer, got 'x'"),
        (
            {"duration": "10s", "step": 3},
            "step",
            "unknown key 'step' (did you mean 'steps'?)",
        ),
    ],
)
def test_mistakes_are_reported_at_their_key(value: object, where: str, message: str) -> None:
    for path in ("frontends.www.slow-start", MEMBER):
        problems = problems_of(mutate(BASE, path, value))
        assert bare(problems) == [f"{path}.{where}: {message}"]


def test_not_a_mapping() -> None:
    problems = problems_of(mutate(BASE, "frontends.www.slow-start", "30s"))
    assert bare(problems) == ["frontends.www.slow-start: expected a mapping, got '30s'"]
