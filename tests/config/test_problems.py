"""Bad configs: each mistake is reported at its exact key path, quoting the offending value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.config.sample import BASE, DELETE, bare, mutate, problems_of

# (key path to set, value, expected problem path or None for the same, text the message holds)
CASES: list[tuple[str, object, str | None, str]] = [
    # healthchecks
    ("healthchecks.h.port", "abc", None, "expected an integer, got 'abc'"),
    ("healthchecks.h.port", 70000, None, "70000 is not in 1..65535"),
    ("healthchecks.h.port", True, None, "got true"),
    ("healthchecks.h.interval", "2x", None, "'2x'"),
    ("healthchecks.h.interval", "-1s", None, "'-1s'"),
    ("healthchecks.h.fast-interval", 0, None, "0 must be greater than 0"),
    ("healthchecks.h.timeout", "5s", None, "5s exceeds interval 2s"),
    ("healthchecks.h.rise", 0, None, "0 is not in 1..1000"),
    ("healthchecks.h.fall", "three", None, "'three'"),
    ("healthchecks.h.jitter", "60%", None, "'60%'"),
    ("healthchecks.h.jitter", 0.7, None, "0.7 is not in 0..0.5"),
    ("healthchecks.h.jitter", "lots", None, "'lots'"),
    ("healthchecks.h.path", "healthz", None, "'healthz' must start with /"),
    ("healthchecks.h.method", "DELETE", None, "'DELETE'"),
    ("healthchecks.h.path", "/a b", None, "'/a b' holds spaces"),
    ("healthchecks.h.host", "x\r\nEvil: 1", None, "'x\\r\\nEvil: 1' holds"),
    ("healthchecks.s.server-name", "a b", None, "'a b' holds"),
    (
        "healthchecks.h.expect-status",
        ["200-299", "700"],
        "healthchecks.h.expect-status[1]",
        "'700'",
    ),
    ("healthchecks.h.expect-status", "299-200", None, "'299-200'"),
    ("healthchecks.h.expect-body", "(unclosed", None, "'(unclosed'"),
    ("healthchecks.h.expect-body", "(" * 3000 + ")" * 3000, None, "not a valid regular"),
    ("healthchecks.h.expect-body", "a{99999999999}", None, "'a{99999999999}'"),
    ("healthchecks.h.expect-status", "1" * 5000, None, "'1111"),
    ("healthchecks.h.expect-status", "٣٠٠", None, "'٣٠٠'"),
    ("healthchecks.h.intervall", "1s", None, "did you mean 'interval'?"),
    ("healthchecks.h.source-ip4", "2001:db8::1", None, "'2001:db8::1' is not an IPv4 address"),
    ("healthchecks.h.netns", "../etc", None, "'../etc'"),
    ("healthchecks.h.type", "ftp", None, "'ftp' is not one of"),
    ("healthchecks.h.type", DELETE, None, "is required"),
    ("healthchecks.t.path", "/x", None, "does not apply to a tcp healthcheck"),
    ("healthchecks.t.port", DELETE, None, "is required"),
    ("healthchecks.t.expect", "[a-", None, "'[a-'"),
    ("healthchecks.i.port", 7, None, "does not apply to an icmp healthcheck"),
    ("healthchecks.d.query-name", DELETE, None, "is required"),
    ("healthchecks.d.query-type", "AXFR", None, "'AXFR'"),
    ("healthchecks.d.expect-rcode", "MAYBE", None, "'MAYBE'"),
    ("healthchecks.e.command", "check {address}", None, "'check {address}'"),
    ("healthchecks.e.command", ["check", "{host}"], "healthchecks.e.command[1]", "{host}"),
    ("healthchecks.e.command", ["check", "{port}"], "healthchecks.e.command[1]", "'{port}'"),
    ("healthchecks.e.command", ["check", "--{a}"], "healthchecks.e.command[1]", "'--{a}'"),
    ("healthchecks.e.command", [1, 2], None, "[1, 2]"),
    ("healthchecks.s.ca-file", "/x.pem", None, "'/x.pem'"),
    ("healthchecks.s.verify", "no", None, "'no'"),
    ("healthchecks.h", "http", None, "expected a mapping, got 'http'"),
    # backends
    ("backends.web1.address", "10.0.0.1/24", None, "'10.0.0.1/24'"),
    ("backends.web1.address", "not-an-ip", None, "'not-an-ip'"),
    ("backends.web1.address", DELETE, None, "is required"),
    ("backends.web1.healthcheck", "hh", None, "unknown healthcheck 'hh' (did you mean 'h'?)"),
    ("backends.web1.enabled", "yes please", None, "'yes please'"),
    ("backends.web1", ["127.0.0.1"], None, "['127.0.0.1']"),
    ("backends.web 1", {"address": "127.0.0.1"}, "backends.web 1", "'web 1'"),
    ("backends.web1\n", {"address": "127.0.0.1"}, "backends.web1\n", "'web1\\n'"),
    # frontends
    ("frontends.www.address", "192.0.2.1/24", None, "'192.0.2.1/24' has host bits set"),
    ("frontends.www.address", 12, None, "got 12"),
    ("frontends.www.port", 0, None, "0 is not in 1..65535"),
    ("frontends.www.port", "http", None, "'http'"),
    ("frontends.www.port", DELETE, None, "is required"),
    ("frontends.www.protocol", "sctp", None, "'sctp'"),
    ("frontends.www.encap", "vxlan", None, "'vxlan'"),
    ("frontends.www.encap", "nat6", None, "'nat6' needs an IPv6 address"),
    ("frontends.www.flow-table-length", 0, None, "0 is not in 1..65536"),
    ("frontends.www.flow-table-length", 1000, None, "1000 is not a power of two"),
    ("frontends.www.dscp", 5, None, "5: dscp applies only to encap l3dsr"),
    (
        "frontends.www.target-port",
        8080,
        None,
        "8080: target-port applies only to encap nat4 and nat6",
    ),
    ("frontends.www.target-port", 70000, None, "70000 is not in 1..65535"),
    ("frontends.www.src-ip-sticky", "sometimes", None, "'sometimes'"),
    ("frontends.www.pools[0].backends.web1.weight", 120, None, "120 is not in 0..100"),
    ("frontends.www.pools[0].backends.web1.wieght", 1, None, "did you mean 'weight'?"),
    ("frontends.www.pools[0].backends.ghost", {}, None, "unknown backend 'ghost'"),
    ("frontends.www.pools[0].backends.web1", 50, None, "like {weight: 50}, got 50"),
    ("frontends.www.pools[1].backends.web1", {}, None, "'web1' is already in pool 'primary'"),
    ("frontends.www.pools[1].name", "primary", None, "'primary' is already the name"),
    ("frontends.www.pools[1].name", DELETE, None, "is required"),
    ("frontends.www.pools[1].backends", {}, None, "at least one backend"),
    ("frontends.www.pools", [], None, "at least one pool"),
    ("frontends.www.pools", "primary", None, "expected a list, got 'primary'"),
    ("frontends.www.pools[1]", "backup", None, "got 'backup'"),
    ("frontends.www.encap", "gre6", "frontends.www.pools[0].backends.web1", "127.0.0.11"),
    ("frontends.www.encap", "l3dsr", "frontends.www.dscp", "is required for encap l3dsr"),
    # vpp, control, metrics, health, top level
    ("vpp.lb.sticky-buckets-per-core", 1000, None, "1000 is not a power of two"),
    ("vpp.lb.flow-timeout", "1500ms", None, "'1500ms'"),
    ("vpp.lb.startup-max-delay", "1s", None, "1s is less than startup-min-delay 5s"),
    ("vpp.lb.ip4-src-address", "2001:db8::1", None, "'2001:db8::1' is not an IPv4"),
    ("vpp.lb.ip4-src-address", DELETE, None, "is required by encap gre4 (frontends www)"),
    ("vpp.unmanaged-vips", "destroy", None, "'destroy'"),
    ("vpp.api_socket", "/x", None, "did you mean 'api-socket'?"),
    ("control.socket-mode", "0999", None, "'0999'"),
    ("control.socket-mode", 660, None, "660 is not a file mode"),
    ("control.tcp-listen", "127.0.0.1:9901", None, "'127.0.0.1:9901' requires"),
    ("control.tcp-listen", "127.0.0.1:99999", None, "'127.0.0.1:99999'"),
    ("metrics.listen", "localhost", None, "'localhost' is not host:port"),
    ("metrics.listen", "h:²00", None, "'h:²00'"),
    ("health.workers", 100, None, "100 is not in 1..64"),
    ("health.queue-size", 0, None, "0 is not in 1..10000000"),
    ("health.priority", -21, None, "-21 is not in -20..19"),
    ("health.priority", "high", None, "expected an integer, got 'high'"),
    ("frontend", {}, None, "did you mean 'frontends'?"),
    ("health", 3, None, "expected a mapping, got 3"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "text"), CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES]
)
def test_one_mistake_is_reported_at_its_path(
    path: str, value: object, where: str | None, text: str
) -> None:
    problems = problems_of(mutate(BASE, path, value))
    where = where or path
    at_path = [p.message for p in problems if p.path == where]
    assert at_path, f"nothing reported at {where}: {[str(p) for p in problems]}"
    assert any(text in m for m in at_path), f"{text!r} not in {at_path}"


def test_the_cases_are_distinct_and_many() -> None:
    assert len({(c[0], repr(c[1])) for c in CASES}) == len(CASES) >= 30


def test_every_problem_is_reported_not_just_the_first() -> None:
    data: dict[str, Any] = BASE
    breakage = {
        "healthchecks.h.port": "abc",
        "healthchecks.t.rise": 0,
        "backends.web1.address": "nope",
        "backends.web2.healthcheck": "missing",
        "frontends.www.port": 0,
        "frontends.www.pools[0].backends.web2.weight": -1,
        "vpp.lb.flow-timeout": "soon",
        "control.socket-mode": "rw",
        "health.workers": 0,
        "metrics.listen": "x",
    }
    for path, value in breakage.items():
        data = mutate(data, path, value)
    problems = problems_of(data)
    assert {p.path for p in problems} >= set(breakage)
    for p in problems:
        assert p.message and str(p).startswith(f"{p.path}: ")


def test_duplicate_frontends_on_one_prefix() -> None:
    www = BASE["frontends"]["www"]
    data = mutate(BASE, "frontends.www2", dict(www))
    problems = problems_of(data)
    assert bare(problems) == [
        "frontends.www2.address: 192.0.2.80/32 tcp port 80 is already used by frontends.www"
    ]


def test_all_port_and_per_port_frontends_cannot_share_a_prefix() -> None:
    www = BASE["frontends"]["www"]
    data = mutate(BASE, "frontends.all", {**www, "protocol": "any", "port": None})
    problems = problems_of(data)
    assert [p.path for p in problems] == ["frontends.all.address"]
    assert "192.0.2.80/32" in problems[0].message
    assert "frontends.www" in problems[0].message


def test_per_port_frontends_on_one_prefix_share_an_encap() -> None:
    www = BASE["frontends"]["www"]
    data = mutate(BASE, "frontends.w443", {**www, "port": 443, "encap": "nat4"})
    problems = problems_of(data)
    assert [p.path for p in problems] == ["frontends.w443.address"]
    assert "nat4" in problems[0].message and "gre4" in problems[0].message


def test_same_prefix_different_ports_is_fine() -> None:
    from tests.config.sample import load

    www = BASE["frontends"]["www"]
    cfg = load(mutate(BASE, "frontends.w443", {**www, "port": 443}))
    assert set(cfg.frontends) == {"www", "w443"}


def test_a_broken_backend_is_not_also_reported_as_unknown() -> None:
    problems = problems_of(mutate(BASE, "backends.web1.address", "bogus"))
    assert [p.path for p in problems] == ["backends.web1.address"]


def test_gre6_needs_the_ip6_source_address() -> None:
    data = mutate(BASE, "backends.web1.address", "::1")
    data = mutate(data, "frontends.www.pools", [{"name": "p", "backends": {"web1": {}}}])
    data = mutate(data, "frontends.www.encap", "gre6")
    problems = problems_of(data)
    assert bare(problems) == ["vpp.lb.ip6-src-address: is required by encap gre6 (frontends www)"]


def test_non_string_keys_are_problems() -> None:
    data = mutate(BASE, "backends.web1", {"address": "127.0.0.11", 7: "x"})
    problems = problems_of(data)
    assert any(p.path == "backends.web1" and "key 7" in p.message for p in problems)


def test_a_bad_source_address_is_reported_once() -> None:
    problems = problems_of(mutate(BASE, "vpp.lb.ip4-src-address", "2001:db8::1"))
    assert [p.path for p in problems] == ["vpp.lb.ip4-src-address"]
