"""Operator state across restarts: maglevd as a subprocess against the emulator (its own process,
so VPP outlives maglevd as it does in production) and real loopback backends.

A paused backend and a weight override stay in force in VPP after SIGTERM + restart and after
kill -9 + restart; a `--for 2s` pause ends by itself; an unreadable state file stops the start
with one line naming it, and `--discard-state` starts anyway with the file set aside. Waits are
on weights, states and log lines with generous deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon.test_e2e import BIN, Daemon, json_of, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

B1, B2, B3 = "127.0.0.21", "127.0.0.22", "127.0.0.23"
SERVING = {B1: 100, B2: 50, B3: 0}  # b3 is the backup pool's
HELD = {B1: 0, B2: 30, B3: 0}  # b1 paused, b2 overridden to 30


@pytest.fixture
def d(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    dm = Daemon(tmp_path)
    try:
        yield dm
    finally:
        dm.close()


def start(d: Daemon, *extra: str) -> None:
    """Daemon.start with more maglevd options."""
    d.logf = open(d.log, "ab")  # noqa: SIM115 - closed by d.stop()
    d.proc = subprocess.Popen(
        [str(BIN / "maglevd"), "run", "--config", str(d.cfg), "--log-level", "debug", *extra],
        stdout=d.logf,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: d.status().get("vpp", {}).get("last_sync_ok"), 30, "first sync")


def released(d: Daemon) -> bool:
    """Every frontend released by the startup gate: what VPP has now is what maglevd decided."""
    fe = d.status().get("frontends", {})
    return bool(fe) and fe.get("released") == fe.get("total")


def settled(d: Daemon, want: dict[str, int], what: str) -> None:
    wait_for(lambda: released(d) and d.vpp() == want, 30, what)


def overrides(d: Daemon) -> list[dict[str, Any]]:
    return list(json_of(d, "show", "overrides")["overrides"])


def test_pause_and_override_survive_sigterm_and_kill_9(
    d: Daemon, own_state_file: pathlib.Path
) -> None:
    d.start()
    settled(d, SERVING, "all serving")
    r = d.maglevc("set", "backend", "b1", "pause", "--comment", "ticket 123")
    assert r.returncode == 0, r.stderr
    r = d.maglevc("set", "frontend", "web", "pool", "primary", "backend", "b2", "weight", "30")
    assert r.returncode == 0, r.stderr
    settled(d, HELD, "b1 paused, b2 at 30")
    saved = json.loads(own_state_file.read_text())
    assert saved["version"] == 1 and len(saved["holds"]) == 2
    assert "uid" in saved["holds"][0]["by"]  # who asked, from SO_PEERCRED
    for how in ("SIGTERM", "kill -9"):
        assert d.proc is not None
        if how == "SIGTERM":
            assert d.stop() == 0
        else:
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(20)
            d.logf.close()
        assert d.vpp() == HELD  # VPP (the emulator) outlives maglevd, untouched
        start(d)
        settled(d, HELD, f"still held after {how} and restart")
        assert json_of(d, "show", "backend", "b1")["state"] == "paused"
        held = {(o["kind"], o["backend"]): o for o in overrides(d)}
        assert held[("backend", "b1")]["value"] == "paused"
        assert held[("backend", "b1")]["comment"] == "ticket 123"
        assert held[("weight", "b2")]["value"] == 30
    table = rows(d.maglevc("show", "overrides").stdout)
    assert table[0][:2] == ["WHAT", "VALUE"] and table[1][:2] == ["backend b1", "paused"]
    assert "operator state  2 in force" in d.maglevc("show", "status").stdout
    # Undone by the operator: gone from VPP and from the file.
    assert d.maglevc("set", "backend", "b1", "resume").returncode == 0
    r = d.maglevc("set", "frontend", "web", "pool", "primary", "backend", "b2", "weight", "default")
    assert r.returncode == 0
    settled(d, SERVING, "serving again")
    assert json.loads(own_state_file.read_text())["holds"] == []
    assert "Traceback" not in d.logtext()


def test_a_short_pause_ends_by_itself(d: Daemon, own_state_file: pathlib.Path) -> None:
    d.start()
    settled(d, SERVING, "all serving")
    res = json_of(d, "set", "backend", "b1", "pause", "--for", "2s", "--comment", "quick look")
    assert res["state"] == "paused" and res["expires_at"]
    wait_for(lambda: "backend b1 paused expired" in d.logtext(), 60, "the expiry")
    settled(d, SERVING, "b1 back in service")
    assert overrides(d) == []
    assert json.loads(own_state_file.read_text())["holds"] == []


def test_bad_time_boxes_get_a_clear_error(d: Daemon) -> None:
    d.start()
    for args, msg in [
        (("set", "backend", "b1", "pause", "--for", "0s"), "for: '0s' is not a positive duration"),
        (("set", "backend", "b1", "pause", "--for", "soon"), "for: expected a duration"),
        (("set", "backend", "b1", "pause", "--until", "2001-01-01T00:00Z"), "in the past"),
        (("set", "backend", "b1", "resume", "--for", "1m"), "for: only pause and disable"),
        (("set", "backend", "b1", "pause", "--comment", "x" * 300), "comment: 300 characters"),
        (("set", "frontend", "web", "pool", "primary", "backend", "b2", "weight", "5",
          "--until", "noon"), "until: 'noon' is not a time"),
    ]:  # fmt: skip
        r = d.maglevc(*args)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
    assert overrides(d) == []
    assert json_of(d, "show", "backend", "b1")["state"] != "paused"


def test_a_corrupt_state_file_stops_the_start_unless_discarded(
    d: Daemon, own_state_file: pathlib.Path
) -> None:
    own_state_file.write_text('{"version": 1, "holds": [{"kind": "backend"')
    r = subprocess.run(
        [str(BIN / "maglevd"), "run", "--config", str(d.cfg)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert f"refuses to start: state file {own_state_file}: not valid JSON" in r.stderr
    assert "--discard-state" in r.stderr and "Traceback" not in r.stderr
    own_state_file.write_text('{"version": 7, "holds": []}')
    r = subprocess.run(
        [str(BIN / "maglevd"), "run", "--config", str(d.cfg)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "version 7 is not one this maglevd reads" in r.stderr
    start(d, "--discard-state")
    settled(d, SERVING, "started without the state")
    (aside,) = own_state_file.parent.glob("state.json.discarded-*")
    assert aside.read_text() == '{"version": 7, "holds": []}'
    assert "--discard-state: its operator state" in d.logtext()


def test_a_dry_run_reads_the_state_file_but_never_writes_it(
    d: Daemon, own_state_file: pathlib.Path
) -> None:
    d.start()
    settled(d, SERVING, "all serving")
    json_of(d, "set", "backend", "b1", "pause", "--comment", "kept")
    d.stop()
    saved = own_state_file.read_bytes()
    start(d, "--dry-run")
    assert [o["comment"] for o in overrides(d)] == ["kept"]  # read: planned as a real run would
    json_of(d, "set", "backend", "b2", "pause")
    json_of(d, "set", "backend", "b1", "resume")
    assert own_state_file.read_bytes() == saved  # a dry run's actions are not kept
