"""Probes from inside network namespaces (root and `ip netns` needed; skipped otherwise).

Two namespaces joined by a veth pair: "a" probes, "b" is the backend host. Addresses are
link-local (169.254.77.0/24) and exist only inside these namespaces. Every namespace made here is
deleted again, also when a test fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from maglev.health import netns
from maglev.model import CheckType, Reason, netns_name_ok
from tests.health.conftest import LO, check, run_probe

pytestmark = [pytest.mark.netns, pytest.mark.integration]

A_ADDR = ipaddress.IPv4Address("169.254.77.1")
B_ADDR = ipaddress.IPv4Address("169.254.77.2")
NOBODY = ipaddress.IPv4Address("169.254.77.3")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _wait_carrier(ns: str, dev: str, deadline: float = 5.0) -> None:
    """A fresh veth may drop packets until both ends report a carrier."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        out = subprocess.run(
            ["ip", "-n", ns, "link", "show", "dev", dev], capture_output=True, text=True
        ).stdout
        if "state UP" in out and "NO-CARRIER" not in out:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"{dev} in {ns} never came up")


@dataclass
class Pair:
    a: str
    b: str


@pytest.fixture
def pair() -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = uuid.uuid4().hex[:6]
    p = Pair(f"mgt-a-{tag}", f"mgt-b-{tag}")
    made: list[str] = []
    try:
        for ns in (p.a, p.b):
            try:
                _ip("netns", "add", ns)
            except (OSError, subprocess.CalledProcessError) as e:
                pytest.skip(f"ip netns unavailable: {e}")
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", p.a, "link", "add", "mga", "type", "veth", "peer", "name", "mgb", "netns", p.b)
        _ip("-n", p.a, "addr", "add", f"{A_ADDR}/24", "dev", "mga")
        _ip("-n", p.b, "addr", "add", f"{B_ADDR}/24", "dev", "mgb")
        _ip("-n", p.a, "link", "set", "mga", "up")
        _ip("-n", p.b, "link", "set", "mgb", "up")
        _wait_carrier(p.a, "mga")
        yield p
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_tcp_inside_namespace(pair: Pair) -> None:
    # A listener on 127.0.0.1 inside "b" is invisible from the root namespace.
    with netns.socket_in(pair.b, socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        port = lsock.getsockname()[1]
        r = run_probe(check(CheckType.TCP, port=port, netns=pair.b))
        assert (r.ok, r.reason) == (True, Reason.L4OK), r.detail
        # The thread came back to its own namespace: the same port here is someone else's.
        r = run_probe(check(CheckType.TCP, port=port))
        assert (r.ok, r.reason) == (False, Reason.L4CON)


def test_namespace_host_over_veth(pair: Pair) -> None:
    with netns.socket_in(pair.b, socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.bind((str(B_ADDR), 0))
        lsock.listen(8)
        port = lsock.getsockname()[1]
        r = run_probe(check(CheckType.TCP, port=port, netns=pair.a, timeout=10.0), B_ADDR)
        assert r.ok, r.detail
        r = run_probe(check(CheckType.TCP, port=port, netns=pair.a, timeout=0.3), NOBODY)
        assert (r.ok, r.reason) == (False, Reason.L4TOUT)  # no neighbour answers: blackhole


def test_icmp_to_namespace_host(pair: Pair) -> None:
    r = run_probe(check(CheckType.ICMP, netns=pair.a, timeout=10.0), B_ADDR)
    assert (r.ok, r.reason) == (True, Reason.ICMPOK), r.detail
    r = run_probe(check(CheckType.ICMP, netns=pair.a, timeout=0.3), NOBODY)
    assert (r.ok, r.reason) == (False, Reason.ICMPTOUT)
    # With a source address of the probing namespace.
    r = run_probe(check(CheckType.ICMP, netns=pair.a, source_ip4=A_ADDR, timeout=10.0), B_ADDR)
    assert r.ok, r.detail


def test_exec_inside_namespace(pair: Pair) -> None:
    c = check(CheckType.EXEC, command=("ip", "link", "show", "dev", "mga"), netns=pair.a)
    assert run_probe(c).ok
    assert not run_probe(check(CheckType.EXEC, command=c.command)).ok  # not in the root ns


def test_missing_namespace_is_a_socket_error() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = run_probe(check(CheckType.TCP, port=80, netns=f"mgt-missing-{uuid.uuid4().hex[:6]}"), LO)
    assert (r.ok, r.reason) == (False, Reason.SOCKERR)


def test_namespace_names_are_file_names_in_the_netns_directory() -> None:
    # One rule (`model.netns_name_ok`) for the config loader and for the probes, which check again.
    assert netns.ns_path("probes") == "/run/netns/probes" and netns_name_ok("mgt-a-1")
    for bad in ("", ".", "..", "a/b", "../etc"):
        assert not netns_name_ok(bad)
        with pytest.raises(OSError, match=re.escape(f"bad network namespace name {bad!r}")):
            netns.ns_path(bad)
    r = run_probe(check(CheckType.TCP, port=80, netns="../etc"), LO)  # needs no privilege
    assert (r.ok, r.reason, r.detail) == (
        False,
        Reason.SOCKERR,
        "bad network namespace name '../etc'",
    )
