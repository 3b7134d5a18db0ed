"""`environment` of an exec healthcheck: NAME: value pairs for the command's environment."""

from __future__ import annotations

from tests.config.sample import BASE, bare, load, mutate, problems_of


def test_environment_is_read_sorted_by_name() -> None:
    env = {"PATH": "/opt/check/bin", "APP_TOKEN": "s3cret", "PORT": 8080, "EMPTY": ""}
    cfg = load(mutate(BASE, "healthchecks.e.environment", env))
    assert cfg.healthchecks["e"].environment == (
        ("APP_TOKEN", "s3cret"),
        ("EMPTY", ""),
        ("PATH", "/opt/check/bin"),
        ("PORT", "8080"),
    )
    assert load(BASE).healthchecks["e"].environment == ()


def test_bad_names_and_values_are_reported_each() -> None:
    env = {"1ST": "x", "A-B": "x", "FLAG": True, "NOTHING": None, "LIST": [1], "RATE": 1.5}
    env["NUL"] = "a\x00b"
    assert sorted(bare(problems_of(mutate(BASE, "healthchecks.e.environment", env)))) == sorted(
        [
            "healthchecks.e.environment.1ST: '1ST' is not an environment variable name"
            " (A-Z, a-z, 0-9, _)",
            "healthchecks.e.environment.A-B: 'A-B' is not an environment variable name"
            " (A-Z, a-z, 0-9, _)",
            "healthchecks.e.environment.FLAG: expected a string (quote it), got true",
            "healthchecks.e.environment.NOTHING: expected a string (quote it), got null",
            "healthchecks.e.environment.LIST: expected a string (quote it), got a list [1]",
            "healthchecks.e.environment.RATE: expected a string (quote it), got 1.5",
            "healthchecks.e.environment.NUL: 'a\\x00b' holds a NUL character",
        ]
    )


def test_environment_must_be_a_mapping_on_an_exec_check() -> None:
    assert bare(problems_of(mutate(BASE, "healthchecks.e.environment", ["A=1"]))) == [
        "healthchecks.e.environment: expected a mapping, got a list ['A=1']"
    ]
    assert bare(problems_of(mutate(BASE, "healthchecks.h.environment", {"A": "1"}))) == [
        "healthchecks.h.environment: does not apply to a http healthcheck (only exec)"
    ]
