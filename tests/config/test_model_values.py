"""Good configs build the right frozen model values: durations, defaults, enums, addresses."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from maglev.model import (
    EMBEDDED,
    CheckType,
    Encap,
    Frontend,
    Pool,
    PoolMember,
    Protocol,
    UnmanagedPolicy,
)
from tests.config.sample import BASE, DELETE, load, mutate


def test_base_config_builds_the_expected_model() -> None:
    cfg = load(BASE)
    assert cfg.vpp.api_socket == EMBEDDED and cfg.vpp.embedded
    assert cfg.vpp.unmanaged_vips is UnmanagedPolicy.KEEP
    assert cfg.vpp.lb.ip4_src_address == ipaddress.IPv4Address("198.51.100.1")
    assert cfg.vpp.lb.ip6_src_address is None
    assert list(cfg.healthchecks) == ["h", "t", "d", "e", "s", "i"]
    assert list(cfg.backends) == ["web1", "web2", "web3"]
    assert cfg.frontends["www"] == Frontend(
        name="www",
        address=ipaddress.IPv4Network("192.0.2.80/32"),
        protocol=Protocol.TCP,
        port=80,
        encap=Encap.GRE4,
        pools=(
            Pool("primary", (PoolMember("web1", 50), PoolMember("web2", 100))),
            Pool("backup", (PoolMember("web3", 100),)),
        ),
    )
    web1 = cfg.backends["web1"]
    assert web1.address == ipaddress.IPv4Address("127.0.0.11")
    assert (web1.healthcheck, web1.enabled) == ("h", True)
    assert cfg.backends["web3"].healthcheck is None
    assert cfg.control.socket == "/tmp/maglev-test.sock"
    assert cfg.control.socket_mode == 0o660
    assert cfg.metrics.listen is None
    assert (cfg.health.workers, cfg.health.queue_size, cfg.health.priority) == (2, 10000, -5)


def test_healthcheck_defaults_and_default_ports() -> None:
    cfg = load(BASE)
    h, t, d, s, i = (cfg.healthchecks[n] for n in "htdsi")
    assert h.type is CheckType.HTTP and h.port == 8081
    assert (h.interval, h.fast_interval, h.down_interval, h.timeout) == (2.0, 0.5, 10.0, 1.0)
    assert (h.rise, h.fall, h.jitter) == (2, 3, 0.1)
    assert (h.path, h.method, h.expect_status) == ("/", "GET", ((200, 399),))
    assert t.type is CheckType.TCP and t.port == 8082
    assert d.port == 53 and d.query_name == "example.com"
    assert (d.query_type, d.expect_rcode) == ("A", "NOERROR")
    assert s.port == 443 and s.verify is False
    assert i.port is None
    assert cfg.healthchecks["e"].command == ("check", "{address}")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0), (3, 3.0), (0.25, 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    cfg = load(mutate(BASE, "healthchecks.h.down-interval", text))
    assert cfg.healthchecks["h"].down_interval == seconds


def test_every_healthcheck_option() -> None:
    hc = {
        "type": "https",
        "port": 8443,
        "interval": "5s",
        "fast-interval": "250ms",
        "down-interval": "1m",
        "timeout": "5s",
        "rise": 1,
        "fall": 5,
        "jitter": "25%",
        "netns": "probes",
        "source-ip4": "127.0.0.1",
        "source-ip6": "::1",
        "path": "/healthz",
        "host": "www.example.com",
        "method": "head",
        "expect-status": ["200-204", 301, "302"],
        "expect-body": "^ok",
        "server-name": "www.example.com",
        "verify": True,
        "ca-file": "/etc/ssl/ca.pem",
    }
    got = load(mutate(BASE, "healthchecks.s", hc)).healthchecks["s"]
    assert got.type is CheckType.HTTPS
    assert (got.interval, got.fast_interval, got.down_interval, got.timeout) == (5, 0.25, 60, 5)
    assert (got.rise, got.fall, got.jitter, got.netns) == (1, 5, 0.25, "probes")
    assert got.source_ip4 == ipaddress.IPv4Address("127.0.0.1")
    assert got.source_ip6 == ipaddress.IPv6Address("::1")
    assert (got.path, got.host, got.method) == ("/healthz", "www.example.com", "HEAD")
    assert got.expect_status == ((200, 204), (301, 301), (302, 302))
    assert (got.expect_body, got.server_name, got.verify) == ("^ok", "www.example.com", True)
    assert got.ca_file == "/etc/ssl/ca.pem"


def test_tcp_dns_and_exec_options() -> None:
    data = mutate(BASE, "healthchecks.t.send", "PING\r\n")
    data = mutate(data, "healthchecks.t.expect", "^\\+PONG")
    data = mutate(data, "healthchecks.d.query-type", "aaaa")
    data = mutate(data, "healthchecks.d.expect-rcode", "NXDOMAIN")
    data = mutate(data, "healthchecks.d.expect-answer", "2001:db8::53")
    data = mutate(
        data,
        "healthchecks.e",
        {
            "type": "exec",
            "shell": True,
            "port": 9,
            "command": "nc -z {address} {port} && echo ${HOME} | awk '{print $1}'",
        },
    )
    cfg = load(data)
    t, d, e = (cfg.healthchecks[n] for n in "tde")
    assert (t.send, t.expect) == ("PING\r\n", "^\\+PONG")
    assert (d.query_type, d.expect_rcode, d.expect_answer) == ("AAAA", "NXDOMAIN", "2001:db8::53")
    assert (e.shell, e.port, e.command) == (
        True,
        9,
        ("nc -z {address} {port} && echo ${HOME} | awk '{print $1}'",),
    )


def test_jitter_as_fraction_and_single_status_string() -> None:
    data = mutate(BASE, "healthchecks.h.jitter", 0.5)
    data = mutate(data, "healthchecks.h.expect-status", "200-299")
    h = load(data).healthchecks["h"]
    assert (h.jitter, h.expect_status) == (0.5, ((200, 299),))


def test_ipv6_frontend_protocol_any_and_options() -> None:
    data = mutate(BASE, "backends.v6", {"address": "::1", "enabled": False})
    data = mutate(data, "vpp.lb.ip6-src-address", "2001:db8::1")
    data = mutate(
        data,
        "frontends.v6",
        {
            "address": "2001:db8:80::/64",
            "protocol": "any",
            "encap": "gre6",
            "src-ip-sticky": True,
            "flow-table-length": 65536,
            "flush-on-down": False,
            "pools": [{"name": "only", "backends": {"v6": {"weight": 0}}}],
        },
    )
    cfg = load(data)
    fe = cfg.frontends["v6"]
    assert fe.address == ipaddress.IPv6Network("2001:db8:80::/64")
    assert (fe.protocol, fe.port, fe.encap) == (Protocol.ANY, 0, Encap.GRE6)
    assert (fe.src_ip_sticky, fe.flow_table_length, fe.flush_on_down) == (True, 65536, False)
    assert fe.pools[0].members == (PoolMember("v6", 0),)
    assert cfg.backends["v6"].address == ipaddress.IPv6Address("::1")
    assert cfg.backends["v6"].enabled is False
    assert cfg.vpp.lb.ip6_src_address == ipaddress.IPv6Address("2001:db8::1")


def test_host_address_frontend_is_a_host_prefix_v6() -> None:
    data = mutate(BASE, "backends.v6", {"address": "::1"})
    data = mutate(data, "vpp.lb.ip6-src-address", "2001:db8::1")
    data = mutate(
        data,
        "frontends.v6",
        {
            "address": "2001:db8::80",
            "port": 443,
            "protocol": "udp",
            "encap": "nat6",
            "pools": [{"name": "only", "backends": {"v6": None}}],
        },
    )
    fe = load(data).frontends["v6"]
    assert fe.address == ipaddress.IPv6Network("2001:db8::80/128")
    assert (fe.protocol, fe.encap) == (Protocol.UDP, Encap.NAT6)


def test_l3dsr_takes_dscp() -> None:
    data = mutate(BASE, "frontends.www.encap", "l3dsr")
    data = mutate(data, "frontends.www.dscp", 46)
    data = mutate(data, "vpp.lb", {})
    fe = load(data).frontends["www"]
    assert (fe.encap, fe.dscp) == (Encap.L3DSR, 46)


def test_settings_sections() -> None:
    data = mutate(
        BASE,
        "vpp",
        {
            "api-socket": "/run/vpp/api.sock",
            "api-dir": "/usr/share/vpp/api",
            "stats-socket": "/run/vpp/stats.sock",
            "unmanaged-vips": "delete",
            "lb": {
                "ip4-src-address": "198.51.100.1",
                "sticky-buckets-per-core": 4096,
                "flow-timeout": "1m",
                "sync-interval": "10s",
                "startup-min-delay": 0,
                "startup-max-delay": "0s",
            },
        },
    )
    data = mutate(
        data,
        "control",
        {
            "socket": "/tmp/s",
            "socket-group": "maglev",
            "socket-mode": "0600",
            "tcp-listen": "[::1]:9901",
            "token-file": "/etc/maglev/token",
        },
    )
    data = mutate(data, "metrics.listen", "127.0.0.1:0")
    data = mutate(data, "health", {"workers": 64, "queue-size": 1, "priority": 19})
    cfg = load(data)
    assert cfg.vpp.api_socket == "/run/vpp/api.sock" and not cfg.vpp.embedded
    assert (cfg.vpp.api_dir, cfg.vpp.stats_socket) == ("/usr/share/vpp/api", "/run/vpp/stats.sock")
    assert cfg.vpp.unmanaged_vips is UnmanagedPolicy.DELETE
    lb = cfg.vpp.lb
    assert (lb.sticky_buckets_per_core, lb.flow_timeout, lb.sync_interval) == (4096, 60, 10)
    assert (lb.startup_min_delay, lb.startup_max_delay) == (0, 0)
    assert cfg.control.socket_mode == 0o600 and cfg.control.socket_group == "maglev"
    assert (cfg.control.tcp_listen, cfg.control.token_file) == ("[::1]:9901", "/etc/maglev/token")
    assert cfg.metrics.listen == "127.0.0.1:0"
    assert (cfg.health.workers, cfg.health.queue_size, cfg.health.priority) == (64, 1, 19)


def test_unquoted_octal_mode_is_read_as_octal() -> None:
    text = "control: {socket-mode: 0640}\n"
    from maglev.config import load_text

    assert load_text(text).control.socket_mode == 0o640


def test_minimal_config_is_all_defaults() -> None:
    from maglev.config import load_text
    from maglev.model import ControlSettings, HealthSettings, MetricsSettings, VppSettings

    cfg = load_text("vpp: {}\n")
    assert cfg.vpp == VppSettings()
    assert (cfg.control, cfg.metrics, cfg.health) == (
        ControlSettings(),
        MetricsSettings(),
        HealthSettings(),
    )
    assert not cfg.frontends and not cfg.backends and not cfg.healthchecks


def test_the_config_is_frozen() -> None:
    cfg = load(BASE)
    with pytest.raises(TypeError):
        cfg.frontends["x"] = cfg.frontends["www"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.vpp = cfg.vpp  # type: ignore[misc]


def test_null_values_mean_defaults() -> None:
    data = mutate(BASE, "healthchecks.h.interval", None)
    data = mutate(data, "frontends.www.flow-table-length", None)
    data = mutate(data, "metrics", None)
    data = mutate(data, "health.workers", DELETE)
    cfg = load(data)
    assert cfg.healthchecks["h"].interval == 2.0
    assert cfg.frontends["www"].flow_table_length == 1024
    assert cfg.health.workers == 1


def test_probe_target_hash_equality_and_pickling() -> None:
    import pickle

    from maglev.model import ProbeTarget

    a = ProbeTarget(ipaddress.ip_address("10.0.0.1"), "web")
    b = ProbeTarget(ipaddress.ip_address("10.0.0.1"), "web")
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != ProbeTarget(ipaddress.ip_address("10.0.0.2"), "web")
    assert a != ProbeTarget(ipaddress.ip_address("10.0.0.1"), "dns")
    assert a != ProbeTarget(ipaddress.ip_address("::1"), "web")
    assert a != ("10.0.0.1", "web")
    c = pickle.loads(pickle.dumps(a))
    assert c == a and hash(c) == hash(a)
    assert repr(a) == "ProbeTarget(address=IPv4Address('10.0.0.1'), healthcheck='web')"
