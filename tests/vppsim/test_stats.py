"""The emulator's stats segment, read by vpp-papi's real `VPPStats` client over its socket."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from vpp_papi.vpp_stats import VPPStats

from maglev.vppsim.server import Emulator
from maglev.vppsim.stats import LB_ERRORS, LB_NODES


@pytest.fixture
def sim(tmp_path: pathlib.Path) -> Iterator[Emulator]:
    emulator = Emulator(str(tmp_path / "api.sock"), stats_socket=str(tmp_path / "stats.sock"))
    emulator.start()
    yield emulator
    emulator.stop()


def _client(path: pathlib.Path) -> VPPStats:
    stats = VPPStats(str(path), timeout=2)
    stats.connect()
    return stats


def test_ls_lists_every_lb_node_error(sim: Emulator, tmp_path: pathlib.Path) -> None:
    stats = _client(tmp_path / "stats.sock")
    try:
        names = stats.ls(["^/err/lb"])
        assert len(names) == len(LB_NODES) * len(LB_ERRORS)
        assert "/err/lb4-gre4/no error" in names
        assert "/err/lb6-gre6/protocol not supported" in names
        assert stats.ls(["^/sys/heartbeat$"]) == ["/sys/heartbeat"]
    finally:
        stats.disconnect()


def test_dump_follows_counter_changes(sim: Emulator, tmp_path: pathlib.Path) -> None:
    assert sim.stats is not None
    stats = _client(tmp_path / "stats.sock")
    try:
        name = "/err/lb6-gre6/protocol not supported"
        assert stats.dump([name])[name] == [0]
        sim.stats.set_error("lb6-gre6", "protocol not supported", 42)
        assert stats.dump([name])[name] == [42]
        assert stats.get_err_counter(name) == 42
        assert stats.set_errors() == {name: 42}
        sim.stats.beat(3)
        assert stats["/sys/heartbeat"] == 3
    finally:
        stats.disconnect()


def test_unknown_counter_is_refused(sim: Emulator) -> None:
    assert sim.stats is not None
    with pytest.raises(KeyError):
        sim.stats.set_error("lb4-gre4", "no such error", 1)


def test_reconnect_after_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "stats.sock"
    first = Emulator(str(tmp_path / "api.sock"), stats_socket=str(path))
    first.start()
    assert first.stats is not None
    first.stats.set_error("lb4-gre4", "no error", 9)
    stats = _client(path)
    assert stats.get_err_counter("/err/lb4-gre4/no error") == 9
    first.stop()
    stats.disconnect()
    with pytest.raises(OSError):
        stats.connect()
    second = Emulator(str(tmp_path / "api.sock"), stats_socket=str(path))
    second.start()
    try:
        stats.connect()
        # A restarted VPP starts from zero.
        assert stats.get_err_counter("/err/lb4-gre4/no error") == 0
    finally:
        stats.disconnect()
        second.stop()


def test_cli_serves_stats_socket(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "stats.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maglev.vppsim",
            "--socket",
            str(tmp_path / "api.sock"),
            "--stats-socket",
            str(path),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while not path.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            proc.stderr.readline()
        stats = _client(path)
        try:
            assert "/err/lb4-gre4/no error" in stats.ls(["^/err/"])
        finally:
            stats.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
