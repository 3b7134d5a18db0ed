"""File-level failures: unreadable files and YAML errors name the file and the line."""

from __future__ import annotations

import math
import pathlib

import pytest

from maglev.config import load_file, load_text, parse_duration
from maglev.config.fields import parse_host_port
from maglev.errors import ConfigError, ConfigInvalid

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_syntax_error_names_file_and_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("vpp:\n  api-socket: embedded\nbackends: [a, b\nfrontends: {}\n")
    with pytest.raises(ConfigError) as e:
        load_file(str(path))
    assert str(e.value).startswith(f"{path}:")
    assert ":4:" in str(e.value)  # the flow sequence is still open on line 4


def test_bad_indentation_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^cfg:3:\d+: "):
        load_text("vpp:\n  lb: {}\n   api-socket: x\n", source="cfg")


def test_duplicate_keys_are_refused_with_their_line() -> None:
    with pytest.raises(ConfigError, match=r"^cfg:3:3: .*duplicate key 'web1'"):
        load_text(
            "backends:\n  web1: {address: 127.0.0.1}\n  web1: {address: 127.0.0.2}\n", source="cfg"
        )


def test_merge_keys_still_work() -> None:
    text = (
        "healthchecks:\n"
        "  base: &base {type: http, port: 8081, interval: 1s}\n"
        "  other: {<<: *base, port: 8082}\n"
    )
    cfg = load_text(text)
    assert cfg.healthchecks["other"].port == 8082
    assert cfg.healthchecks["other"].interval == 1.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- a\n- b\n", "top level must be a mapping"),
        ("just a string\n", "top level must be a mapping"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("a: 1\n---\nb: 2\n", "single document"),
        ("x: !!python/object/apply:os.system [true]\n", "python/object"),
        ("? [a, b]\n: 1\n", "unhashable"),
        ("a: 'unterminated\n", "cfg:"),
        ("a: 1\nb: \x07\n", "cfg:2:4: "),
        ("a: é\nb: \x07\n", "cfg:2:4: "),
    ],
)
def test_unparsable_text_is_a_config_error(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(text, source="cfg")
    assert needle in str(e.value)
    assert str(e.value).startswith("cfg")


def test_dates_are_plain_strings() -> None:
    # YAML 1.1 would make this a date, or fail on an impossible one with no line number.
    with pytest.raises(ConfigInvalid) as e:
        load_text("healthchecks: {h: {type: http, host: 2024-02-30, path: 2024-01-01}}\n")
    assert [str(p) for p in e.value.problems] == [
        "healthchecks.h.path: '2024-01-01' must start with / (line 1)"
    ]


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"^{path}: cannot read: No such file"):
        load_file(str(path))


def test_directory_is_unreadable(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read"):
        load_file(str(tmp_path))


def test_binary_file_is_unreadable(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"vpp: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(str(path))


def test_invalid_file_raises_config_invalid(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("health: {workers: 0}\n")
    with pytest.raises(ConfigInvalid) as e:
        load_file(str(path))
    assert [str(p) for p in e.value.problems] == ["health.workers: 0 is not in 1..64 (line 1)"]


def test_problems_end_with_the_line_of_their_key() -> None:
    text = (
        "backends:\n"
        "  web1:\n"
        "    address: nope\n"
        "  a.b: {address: 127.0.0.1, x: 1}\n"
        "frontends:\n"
        "  f:\n"
        "    address: 192.0.2.1\n"
        "    port: 80\n"
        "    encap: gre4\n"
        "    pools:\n"
        "      - name: a\n"
        "        backends: {web9: }\n"
        "      - 3\n"
        "healthchecks: {}\n"
    )
    with pytest.raises(ConfigInvalid) as e:
        load_text(text)
    assert [str(p) for p in e.value.problems] == [
        "backends.web1.address: 'nope' is not an IP address (line 3)",
        "backends.a.b.x: unknown key 'x' (expected one of: address, healthcheck, enabled) (line 4)",
        "frontends.f.pools[0].backends.web9: unknown backend 'web9' (did you mean 'web1'?) (line 12)",
        "frontends.f.pools[1]: expected a mapping, got 3 (line 13)",
    ]


def test_line_of_a_missing_key_is_its_parent() -> None:
    with pytest.raises(ConfigInvalid) as e:
        load_text("vpp: {}\nbackends:\n\n  web1:\n    healthcheck: x\n")
    assert [str(p) for p in e.value.problems] == [
        "backends.web1.address: is required (line 4)",
        "backends.web1.healthcheck: unknown healthcheck 'x' (line 5)",
    ]


@pytest.mark.parametrize("name", ["maglev.yaml", "maglev-demo.yaml"])
def test_example_configs_validate(name: str) -> None:
    cfg = load_file(str(REPO / "etc" / name))
    assert cfg.frontends and cfg.backends and cfg.healthchecks


def test_demo_config_runs_on_the_emulator_with_loopback_backends() -> None:
    cfg = load_file(str(REPO / "etc" / "maglev-demo.yaml"))
    assert cfg.vpp.embedded
    assert len(cfg.frontends) == 2
    assert all(len(fe.pools) == 2 for fe in cfg.frontends.values())
    assert all(b.address.is_loopback for b in cfg.backends.values())
    assert {hc.type.value for hc in cfg.healthchecks.values()} == {"http", "tcp"}
    assert all((hc.port or 0) > 1024 for hc in cfg.healthchecks.values())


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        (" 3 ", 3.0),
        (7, 7.0),
        (0, 0.0),
        (0.1, 0.1),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert math.isclose(parse_duration(value), seconds)


@pytest.mark.parametrize(
    "value",
    ["2x", "-1s", "", "s", "1 d", True, None, [1], float("nan"), float("inf"), -1, "8d", 10**400],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
        (":9100", ("127.0.0.1", 9100)),  # what the daemon binds for an empty host
    ],
)
def test_parse_host_port(text: str, parsed: tuple[str, int]) -> None:
    assert parse_host_port(text) == parsed


@pytest.mark.parametrize("text", ["localhost", "::1:80", "[::1]80", "h:x", "h:65536", "h:-1"])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


def test_the_documented_example_uses_every_key() -> None:
    import yaml

    from maglev.config import schema

    used: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            used.update(k for k in node if isinstance(k, str))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load((REPO / "etc" / "maglev.yaml").read_text()))
    every = {
        *schema.TOP,
        *schema.VPP,
        *schema.LB,
        *schema.HEALTHCHECK_COMMON,
        *schema.FLAP_DAMPING,
        *schema.BACKEND,
        *schema.FRONTEND,
        *schema.POOL,
        *schema.POOL_MEMBER,
        *schema.SLOW_START,
        *schema.CONTROL,
        *schema.METRICS,
        *schema.HEALTH,
        *schema.VANTAGE,
        *schema.CANARY,
        *(k for keys in schema.HEALTHCHECK_BY_TYPE.values() for k in keys),
    }
    assert every - used == set()


def test_problems_come_in_file_order() -> None:
    text = (
        "health: {workers: 0}\n"
        "frontends: {f: {address: 192.0.2.1, port: 0, encap: gre4, pools: [{name: a, backends: {b: }}]}}\n"
        "backends: {b: {address: 127.0.0.1, healthcheck: nope}}\n"
        "healthchecks: {h: {type: tcp}}\n"
    )
    with pytest.raises(ConfigInvalid) as e:
        load_text(text)
    assert [p.path for p in e.value.problems] == [
        "health.workers",
        "frontends.f.port",
        "backends.b.healthcheck",
        "healthchecks.h.port",
    ]
