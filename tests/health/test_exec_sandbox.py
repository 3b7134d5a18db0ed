"""Exec checks: the child gets a minimal environment and none of maglevd's privileges.

The child's shell reports what it was given: its environment as execve passed it
(/proc/$$/environ, before the shell adds anything), its capability sets and no_new_privs, and its
network namespace. The parent's capabilities are asserted first, so that "the child has none"
cannot pass for want of any to inherit: hence root only. The last test runs the probe under the
restrictions of the shipped systemd unit (`unit_jail`), where it used to fail: `ip netns exec`
makes a mount namespace, which `RestrictNamespaces=net` refuses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import struct
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from maglev.health.checks import exec as exec_check
from maglev.model import CheckType, HealthCheck, ProbeResult, Reason
from tests.health import unit_jail
from tests.health.conftest import check, run_probe

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The capabilities the unit grants maglevd (and so the ones a child must not get).
UNIT_CAPS = {"CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_SYS_NICE": 23}
UNIT_MASK = sum(1 << c for c in UNIT_CAPS.values())

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: the parent must hold the capabilities the child must not inherit",
)


def report(out: pathlib.Path) -> str:
    """A shell command writing what its process was given to `out`."""
    return (
        f"{{ tr '\\0' '\\n' < /proc/$$/environ; echo ==; "
        f"grep -E '^(Cap|NoNewPrivs)' /proc/$$/status; readlink /proc/$$/ns/net; }} > {out}"
    )


def parse(text: str) -> tuple[dict[str, str], dict[str, str], str]:
    env_part, _, rest = text.partition("==\n")
    env = dict(line.split("=", 1) for line in env_part.splitlines())
    *status_lines, ns = rest.splitlines()
    status = dict(line.split(":\t", 1) for line in status_lines)
    return env, status, ns


def caps(status: dict[str, str], key: str) -> int:
    return int(status[key], 16)


def assert_unprivileged(status: dict[str, str]) -> None:
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert caps(status, key) == 0, (key, status)
    assert status["NoNewPrivs"] == "1"  # and execve cannot give any back (setuid, file caps)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.prctl.argtypes = (
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
)


def _raise_ambient(mask: int) -> None:
    """Give the calling thread `mask` as ambient capabilities (as the unit gives maglevd)."""
    status = unit_jail.status_caps("/proc/thread-self/status")
    eff, prm = caps(status, "CapEff"), caps(status, "CapPrm")
    inh = caps(status, "CapInh") | mask
    words = [(eff, prm, inh)[i] >> shift & 0xFFFFFFFF for shift in (0, 32) for i in range(3)]
    assert _libc.capset(struct.pack("Ii", 0x20080522, 0), struct.pack("6I", *words)) == 0
    for cap in UNIT_CAPS.values():
        assert _libc.prctl(unit_jail.PR_CAP_AMBIENT, unit_jail.PR_CAP_AMBIENT_RAISE, cap, 0, 0) == 0


def probe_with_ambient_caps(c: HealthCheck) -> tuple[ProbeResult, dict[str, str]]:
    """Probe from a thread holding the unit's capabilities as effective and ambient ones
    (capabilities belong to a thread: they end with it, the test process keeps its own)."""
    out: list[tuple[ProbeResult, dict[str, str]]] = []

    def run() -> None:
        _raise_ambient(UNIT_MASK)
        mine = unit_jail.status_caps("/proc/thread-self/status")
        out.append((run_probe(c), mine))

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert out, "the probing thread failed"
    return out[0]


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"mgt-exec-{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"ip netns unavailable: {e}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def test_the_environment_is_the_base_plus_the_checks_own() -> None:
    c = check(CheckType.EXEC, command=("true",), environment=(("A", "1"), ("PATH", "/opt/bin")))
    assert exec_check.environment_for(c) == {"PATH": "/opt/bin", "LANG": "C", "A": "1"}
    assert exec_check.environment_for(check(CheckType.EXEC)) == dict(exec_check.BASE_ENVIRONMENT)


@needs_root
def test_the_child_inherits_no_environment_and_no_capabilities(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGLEV_TEST_SENTINEL", "inherited")  # maglevd's own environment
    out = tmp_path / "report"
    c = check(
        CheckType.EXEC,
        shell=True,
        command=(report(out),),
        environment=(("APP_TOKEN", "s3cret"), ("PATH", "/usr/bin:/bin")),
    )
    r, parent = probe_with_ambient_caps(c)
    # The parent had them all, as maglevd has under the unit: effective and ambient.
    assert caps(parent, "CapEff") & UNIT_MASK == UNIT_MASK
    assert caps(parent, "CapAmb") & UNIT_MASK == UNIT_MASK
    assert (r.ok, r.reason) == (True, Reason.EXECOK), r.detail
    env, status, _ns = parse(out.read_text())
    assert env == {"PATH": "/usr/bin:/bin", "LANG": "C", "APP_TOKEN": "s3cret"}
    assert_unprivileged(status)
    assert caps(status, "CapBnd") == 0  # root may drop the bounding set too (CAP_SETPCAP)


@needs_root
def test_a_namespace_is_entered_before_the_capabilities_go(
    tmp_path: pathlib.Path, namespace: str
) -> None:
    out = tmp_path / "report"
    c = check(CheckType.EXEC, shell=True, command=(report(out),), netns=namespace)
    r, _parent = probe_with_ambient_caps(c)
    assert (r.ok, r.reason) == (True, Reason.EXECOK), r.detail
    _env, status, ns = parse(out.read_text())
    assert ns == f"net:[{os.stat(f'/run/netns/{namespace}').st_ino}]"
    assert ns != os.readlink("/proc/self/ns/net")
    assert_unprivileged(status)


def test_a_missing_namespace_is_local_trouble() -> None:
    c = check(CheckType.EXEC, command=("true",), netns=f"mgt-missing-{uuid.uuid4().hex[:6]}")
    r = run_probe(c)
    assert (r.ok, r.reason) == (False, Reason.SOCKERR)


@needs_root
def test_a_child_that_cannot_enter_its_namespace_runs_nothing(tmp_path: pathlib.Path) -> None:
    # A file under /run/netns that is no namespace: opening it works, setns in the child fails.
    name = f"mgt-fake-{uuid.uuid4().hex[:6]}"
    fake = pathlib.Path("/run/netns") / name
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("")
    ran = tmp_path / "ran"
    try:
        r = run_probe(check(CheckType.EXEC, command=("touch", str(ran)), netns=name))
    finally:
        fake.unlink()
    assert (r.ok, r.reason, r.detail) == (
        False,
        Reason.EXECFAIL,
        f"cannot enter network namespace {name} or drop privileges for touch",
    )
    assert not ran.exists()


@needs_root
@pytest.mark.netns
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the jail's filter is for x86-64")
@pytest.mark.skipif(
    "Seccomp:" not in pathlib.Path("/proc/self/status").read_text(), reason="no seccomp"
)
def test_exec_in_a_namespace_under_the_units_restrictions(
    tmp_path: pathlib.Path, namespace: str
) -> None:
    unit = unit_jail.unit_settings()
    assert "net" in unit["RestrictNamespaces"].split()  # setns into a network namespace
    assert set(unit["AmbientCapabilities"].split()) == set(UNIT_CAPS)
    out = tmp_path / "report"
    got = unit_jail.run({"command": report(out), "netns": namespace}, ROOT)
    # The jail is the unit's: its capabilities ambient and effective, no_new_privs, the filter.
    jail = got["status"]
    assert isinstance(jail, dict)
    assert caps(jail, "CapEff") == caps(jail, "CapAmb") == caps(jail, "CapBnd") == UNIT_MASK
    assert jail["NoNewPrivs"] == "1" and jail["Seccomp"] == "2"
    assert got["unshare_mnt"] == os.strerror(1)  # EPERM: the filter bites ...
    assert got["ip_netns_exec"] != 0  # ... and so the old way, `ip netns exec`, fails there
    assert got["result"] == [True, "EXECOK", "exit 0"]
    _env, status, ns = parse(out.read_text())
    assert ns == f"net:[{os.stat(f'/run/netns/{namespace}').st_ino}]"
    assert_unprivileged(status)
    # Without CAP_SETPCAP the bounding set stays, but with nothing permitted and no_new_privs,
    # nothing in it can be had again.
    assert caps(status, "CapBnd") == UNIT_MASK
