"""`health.vantage`: its values, its defaults, and every mistake at its key path."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from maglev.config import diff_configs, restart_only_changes
from maglev.model import Canary, VantageSettings
from tests.config.sample import BASE, bare, load, mutate, problems_of

GOOD: dict[str, Any] = {
    "canaries": {"gw": {"address": "192.0.2.254", "healthcheck": "i"}},
    "max-down-fraction": "30%",
    "window": "15s",
}


def with_vantage(value: object) -> dict[str, Any]:
    return mutate(BASE, "health.vantage", value)


def test_off_unless_configured() -> None:
    assert load(BASE).health.vantage is None
    assert load(with_vantage(None)).health.vantage is None


def test_values() -> None:
    v = load(with_vantage(GOOD)).health.vantage
    gw = Canary("gw", ipaddress.ip_address("192.0.2.254"), "i")
    assert v == VantageSettings(canaries=(gw,), max_down_fraction=0.3, window=15.0)
    # A list names each canary by its position; the fraction may be a plain number.
    v = load(
        with_vantage(
            {"canaries": [{"address": "2001:db8::1", "healthcheck": "t"}], "max-down-fraction": 0.5}
        )
    ).health.vantage
    assert v is not None and v.max_down_fraction == 0.5 and v.window == 10.0
    assert [(c.name, str(c.address), c.healthcheck) for c in v.canaries] == [
        ("canaries[0]", "2001:db8::1", "t")
    ]
    assert load(with_vantage({"max-down-fraction": "12.5%"})).health.vantage == VantageSettings(
        max_down_fraction=0.125
    )


V = "health.vantage"
CASES: list[tuple[object, str, str]] = [
    ({}, V, "names no canaries and no max-down-fraction: the guard could never trip"),
    ("on", V, "expected a mapping, got 'on'"),
    ({"canaries": []}, f"{V}.canaries", "is empty"),
    ({"canaries": "gw"}, f"{V}.canaries", "expected a list or a mapping of canaries, got 'gw'"),
    ({"canaries": [{"healthcheck": "i"}]}, f"{V}.canaries[0].address", "is required"),
    ({"canaries": [{"address": "192.0.2.1"}]}, f"{V}.canaries[0].healthcheck", "is required"),
    (
        {"canaries": {"gw": {"address": "192.0.2.1", "healthcheck": "ii"}}},
        f"{V}.canaries.gw.healthcheck",
        "unknown healthcheck 'ii' (did you mean 'i'?)",
    ),
    (
        {"canaries": {"gw": {"address": "192.0.2.0/24", "healthcheck": "i"}}},
        f"{V}.canaries.gw.address",
        "'192.0.2.0/24' is not an IP address (a host address, not a prefix)",
    ),
    (
        {"canaries": {"gw": {"address": "192.0.2.1", "healthcheck": "i", "port": 80}}},
        f"{V}.canaries.gw.port",
        "unknown key 'port'",
    ),
    (
        {"canaries": {"g w": {"address": "192.0.2.1", "healthcheck": "i"}}},
        f"{V}.canaries.g w",
        "name 'g w' may only hold",
    ),
    (
        {"canaries": [{"address": "192.0.2.1", "healthcheck": "i"}] * 2},
        f"{V}.canaries[1]",
        "probes the same target as canary 'canaries[0]'",
    ),
    ({"canaries": ["192.0.2.1"]}, f"{V}.canaries[0]", "expected a mapping, got '192.0.2.1'"),
    ({"max-down-fraction": "0%"}, f"{V}.max-down-fraction", "'0%' is not between 0 and 1"),
    ({"max-down-fraction": 1}, f"{V}.max-down-fraction", "1 is not between 0 and 1"),
    ({"max-down-fraction": "most"}, f"{V}.max-down-fraction", "expected a percentage like 30%"),
    ({"max-down-fraction": True}, f"{V}.max-down-fraction", "got true"),
    ({"max-down-fraction": "30%", "window": "0s"}, f"{V}.window", "'0s' must be greater than 0"),
    ({"max-down-fraction": "30%", "windw": "1s"}, f"{V}.windw", "did you mean 'window'?"),
]


@pytest.mark.parametrize(("value", "path", "text"), CASES)
def test_problems(value: object, path: str, text: str) -> None:
    got = bare(problems_of(with_vantage(value)))
    assert any(p.startswith(f"{path}: ") and text in p for p in got), got


def test_every_problem_at_once_with_its_line() -> None:
    broken = {
        "canaries": {"a": {"address": "x", "healthcheck": "nope"}},
        "max-down-fraction": "200%",
        "window": "soon",
    }
    got = [str(p) for p in problems_of(with_vantage(broken))]
    assert len(got) == 4 and all("(line " in p for p in got), got


def test_a_reload_applies_it() -> None:
    old, new = load(BASE), load(with_vantage(GOOD))
    assert diff_configs(old, new).settings == ("health",)
    assert restart_only_changes(old, new) == ()  # no restart needed: applied on reload
