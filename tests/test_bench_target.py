"""Benchmarks against a VPP the user has: option refusals, the CPU sampler and its verdict, the
safety checks, and the program suite run at smoke size against an emulator started here as its
own process (standing in for the user's VPP, reached only through its socket)."""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from benchmarks.runner import cli
from benchmarks.target import (
    CpuWindow,
    Occupied,
    Subject,
    VppTarget,
    cleanup,
    cpu_seconds,
    peer_pid,
    prepare,
    refused_options,
    verdict,
)
from maglev.vpp import apidefs
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.lb import LbConf
from maglev.vpp.papi import LbCall, VppConnection

BIN = pathlib.Path(sys.executable).parent


# ---- options -----------------------------------------------------------------------------------


def test_no_target_options_is_fine() -> None:
    assert refused_options(("diff",), {"--vpp-socket": None, "--api-dir": None}) is None


def test_options_for_a_suite_that_cannot_use_them_are_refused_by_name() -> None:
    msg = refused_options(("program", "diff"), {"--vpp-socket": "/x", "--vpp-pid": None})
    assert msg is not None and "--vpp-socket" in msg and "diff" in msg and "program" not in msg[:30]


def test_the_stats_socket_only_for_the_suites_that_read_it() -> None:
    given = {"--vpp-socket": "/a", "--vpp-stats-socket": "/s"}
    assert refused_options(("e2e", "reload"), given) is None
    msg = refused_options(("reload", "program"), given)
    assert (
        msg == "--vpp-stats-socket cannot be used with suite(s) program: only e2e, reload read it"
    )


def test_target_options_without_a_socket_are_refused() -> None:
    msg = refused_options(("program",), {"--vpp-socket": None, "--api-dir": "/usr/share/vpp/api"})
    assert msg is not None and msg.startswith("--api-dir needs --vpp-socket")


def test_the_runner_refuses_before_running_anything(tmp_path: pathlib.Path) -> None:
    sock = tmp_path / "api.sock"
    sock.write_text("")  # click checks it exists; nothing may connect to it
    r = CliRunner().invoke(
        cli, ["table", "--smoke", "--vpp-socket", str(sock), "--results", str(tmp_path / "r")]
    )
    assert r.exit_code == 2
    assert "--vpp-socket cannot be used with suite(s) table" in r.output
    assert not (tmp_path / "r").exists()
    r = CliRunner().invoke(cli, ["all", "--smoke", "--vpp-pid", "1"])
    assert r.exit_code == 2 and "--vpp-pid needs --vpp-socket" in r.output


# ---- CPU sampler -------------------------------------------------------------------------------


@pytest.fixture
def busy_child() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield p
    p.kill()
    p.wait(10)


def test_sampler_sees_a_busy_child_use_cpu(busy_child: subprocess.Popen[bytes]) -> None:
    window = CpuWindow(Subject("VPP main thread", busy_child.pid, busy_child.pid),
                       Subject("maglev", os.getpid()))  # fmt: skip
    with window.measure():
        # Wait on CPU accounting, not on a fixed time: done once the child's ticks show.
        deadline = time.monotonic() + 30
        start = cpu_seconds(busy_child.pid)
        while cpu_seconds(busy_child.pid) - start < 0.05 and time.monotonic() < deadline:
            time.sleep(0.01)
    vpp = window.pct(window.vpp)
    assert vpp is not None and vpp > 0
    assert window.pct(window.maglev) is not None
    assert window.verdict().startswith("VPP main thread ")


def test_sampler_of_a_gone_process_is_unknown() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(10)
    window = CpuWindow(Subject("VPP main thread", p.pid, p.pid), Subject("maglev", os.getpid()))
    with window.measure():
        pass
    assert window.pct(window.vpp) is None
    assert "bound unknown" in window.verdict()


def test_verdict_names_the_bound() -> None:
    assert verdict("VPP main thread", 91.2, 14.0) == (
        "VPP main thread 91% CPU, maglev 14%: VPP-bound"
    )
    assert verdict("emulator process", 30, 97).endswith(": maglev-bound")
    assert verdict("VPP main thread", 20, 30).endswith("neither CPU-bound (waiting)")
    assert "bound unknown" in verdict("VPP main thread", None, 12)


# ---- against an emulator in its own process ----------------------------------------------------


@pytest.fixture
def users_vpp(tmp_path: pathlib.Path) -> Iterator[tuple[VppTarget, int]]:
    sock = tmp_path / "vpp-api.sock"
    p = subprocess.Popen(
        [str(BIN / "maglev-vppsim"), "--socket", str(sock)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not sock.exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert sock.exists(), "the emulator did not start"
    # Its own API files, as a real VPP installs them under /usr/share/vpp/api.
    defs = tmp_path / "api"
    apidefs.generate(defs)
    yield VppTarget(str(sock), str(defs)), p.pid
    p.terminate()
    p.wait(10)


def _live(t: VppTarget) -> tuple[list[str], int]:
    conn = VppConnection(t.socket, t.api_files())
    conn.connect()
    try:
        st = read_lb_state(conn, with_sticky=False)
    finally:
        conn.disconnect()
    return [str(v.prefix) for v in st.vips], len(st.ases)


def _conf(t: VppTarget, set_to: dict[str, object] | None = None) -> LbConf | None:
    """VPP's global lb conf (after setting it to `set_to`, when given)."""
    conn = VppConnection(t.socket, t.api_files())
    conn.connect()
    try:
        if set_to is not None:
            (r,) = conn.pipeline([LbCall("lb_conf", set_to)])
            assert r.ok
        return read_lb_state(conn, with_sticky=False).conf
    finally:
        conn.disconnect()


def _add_vip(t: VppTarget, prefix: str, backend: str | None = None) -> None:
    """An operator's VIP (with one AS when `backend` is given)."""
    conn = VppConnection(t.socket, t.api_files())
    conn.connect()
    key = {"pfx": ipaddress.ip_network(prefix), "protocol": 6, "port": 80}
    calls = [LbCall("lb_add_del_vip_v2", {**key, "encap": 0, "new_flows_table_length": 1024,
                                          "is_del": False})]  # fmt: skip
    if backend is not None:
        calls.append(LbCall("lb_add_del_as_v2", {**key, "weight": 100, "is_del": False,
                                                 "as_address": ipaddress.ip_address(backend)}))  # fmt: skip
    try:
        assert all(r.ok for r in conn.pipeline(calls))
    finally:
        conn.disconnect()


@pytest.mark.integration
def test_peer_pid_is_the_serving_process(users_vpp: tuple[VppTarget, int]) -> None:
    target, pid = users_vpp
    assert peer_pid(target.socket) == pid
    assert target.vpp_pid() == pid


@pytest.mark.integration
def test_an_operator_vip_in_the_range_is_refused_and_kept(
    users_vpp: tuple[VppTarget, int],
) -> None:
    target, _ = users_vpp
    _add_vip(target, "10.9.9.9/32")  # outside the benchmark range: no concern of the suites
    assert prepare(target) is not None
    _add_vip(target, "198.18.0.7/32")
    with pytest.raises(Occupied, match=r"refusing to run: .* already has 1 lb VIP"):
        prepare(target)
    assert sorted(_live(target)[0]) == ["10.9.9.9/32", "198.18.0.7/32"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_program_suite_runs_against_a_vpp_socket_and_cleans_up(
    users_vpp: tuple[VppTarget, int], tmp_path: pathlib.Path
) -> None:
    target, _ = users_vpp
    _add_vip(target, "10.9.9.9/32")  # the operator's own VIP must survive the run
    # The operator's global lb conf, not the suites' usual one: it must be left as it is.
    conf = _conf(target, {"ip4_src_address": ipaddress.IPv4Address("192.0.2.1"),
                          "ip6_src_address": ipaddress.IPv6Address("2001:db8::7"),
                          "sticky_buckets_per_core": 2048, "flow_timeout": 30})  # fmt: skip
    assert conf is not None and conf.flow_timeout == 30
    r = subprocess.run(
        [str(BIN / "maglev-bench"), "program", "--smoke", "--results", str(tmp_path / "r"),
         "--vpp-socket", target.socket, "--api-dir", str(target.api_dir)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run_dir,) = list((tmp_path / "r").iterdir())
    (res,) = json.loads((run_dir / "results.json").read_text())["results"]
    assert f"on the VPP at {target.socket}" in res["setup"]
    assert "CPU maglev (%)" in res["figures"]
    assert any(n.startswith("batched bursts: VPP main thread ") for n in res["notes"])
    assert _live(target) == (["10.9.9.9/32"], 0)  # everything the suite made is gone
    assert _conf(target) == conf
    # A second run finds the VPP as clean as before.
    assert cleanup(target) == 0


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("suite", ["e2e", "reload", "vppsim"])
def test_other_suites_run_against_a_vpp_socket_and_clean_up(
    suite: str, users_vpp: tuple[VppTarget, int], tmp_path: pathlib.Path
) -> None:
    target, _ = users_vpp
    _add_vip(target, "10.9.9.9/32", "10.8.8.8")  # the operator's, outside the range: kept
    conf = _conf(target)
    r = subprocess.run(
        [str(BIN / "maglev-bench"), suite, "--smoke", "--results", str(tmp_path / "r"),
         "--vpp-socket", target.socket, "--api-dir", str(target.api_dir)],
        capture_output=True, text=True, timeout=380,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run_dir,) = list((tmp_path / "r").iterdir())
    (res,) = json.loads((run_dir / "results.json").read_text())["results"]
    assert f"the VPP at {target.socket}" in res["setup"]
    assert any("VPP main thread " in n for n in res["notes"]), res["notes"]
    if suite == "reload":  # the probed backend reached weight 0 through the VPP's dump
        for name in ("alias bomb: backend stopped at the rename -> weight 0 in VPP",
                     "no reload: backend stopped -> weight 0 in VPP (same run)"):  # fmt: skip
            assert res["figures"][name]["n"] == 2, name  # two rounds at smoke size
        # the lateness farm's probes were read through maglevd's metrics, as on the emulator
        assert res["figures"]["no reload: probes recorded in the quiet window"]["median"] > 0
    assert _live(target) == (["10.9.9.9/32"], 1)
    assert _conf(target) == conf
