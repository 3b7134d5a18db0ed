"""Flap damping wired end to end: maglevd as a subprocess against the emulator, with a real
loopback backend stopped and started until its healthcheck's flap damping suppresses it.

Waits are on states, with generous deadlines; the damping is set so that a suppression lasts
far longer than a backend takes to come back up (half-life 8s, reuse 400: some 17s after the
second flap), and nothing asserts how long anything took.
"""

from __future__ import annotations

import os
import pathlib
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.daemon.test_e2e import ADDRS, Daemon, backend_state, json_of, rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAMPING = "flap-damping: {penalty: 1000, half-life: 8s, suppress: 1200, reuse: 400}"


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        text = d.cfg.read_text()
        assert "jitter: 0}" in text
        d.cfg.write_text(text.replace("jitter: 0}", f"jitter: 0, {DAMPING}}}"))
        d.start()
        yield d
    finally:
        d.close()
        if os.environ.get("MAGLEV_TEST_SHOW_LOG"):
            print(d.logtext())


def damping(daemon: Daemon) -> dict[str, Any]:
    doc = json_of(daemon, "show", "backend", "b1")
    return {"state": doc["state"], **doc["damping"]}


def metric(daemon: Daemon, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f'{name}{{backend="b1"}} '):
                return float(line.split()[-1])
    return None


def test_a_flapping_backend_is_held_out_then_returns(daemon: Daemon) -> None:
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "programmed")
    assert damping(daemon) == {"state": "up", "penalty": 0.0, "suppressed": False, "until": None}
    assert metric(daemon, "maglev_backend_suppressed") == 0.0
    b1 = daemon.backends[0]
    # Flap 1 (penalty 1000, below suppress), then flap 2 (above it): suppressed while down.
    b1.stop()
    wait_for(lambda: backend_state(daemon, "b1") == "down", 30, "b1 down (1)")
    b1.start()
    wait_for(lambda: backend_state(daemon, "b1") == "up", 30, "b1 up (1)")
    assert not damping(daemon)["suppressed"]
    b1.stop()
    wait_for(lambda: damping(daemon)["suppressed"], 30, "b1 suppressed")
    b1.start()
    # Back up and passing, still suppressed: weight 0 in VPP, and every reader says why.
    seen = wait_for(lambda: (d := damping(daemon))["state"] == "up" and d, 30, "b1 up (2)")
    assert seen["suppressed"] and seen["until"] is not None and seen["penalty"] > 400, seen
    assert daemon.vpp()[ADDRS[0]] == 0
    fe = json_of(daemon, "show", "frontend", "web")
    assert [(b["state"], b["effective_weight"], b["reason"]) for b in fe["backends"]
            if b["name"] == "b1"] == [("up", 0, "suppressed: flap damping")]  # fmt: skip
    assert metric(daemon, "maglev_backend_suppressed") == 1.0
    assert (metric(daemon, "maglev_backend_damping_penalty") or 0) > 400
    text = daemon.maglevc("show", "backend", "b1").stdout
    assert "flap damping:" in text and "suppressed" in text, text
    status = daemon.maglevc("show", "status").stdout
    assert "flap damping  backend b1: suppressed (penalty" in status, status
    table = rows(daemon.maglevc("show", "backends").stdout)
    assert ["b1", ADDRS[0], "tcp", "up (suppressed)"] == table[1][:4], table
    # The penalty decays below reuse: b1 returns on the reconciler's own wake-up.
    wait_for(lambda: not damping(daemon)["suppressed"], 90, "b1 reused")
    wait_for(lambda: daemon.vpp()[ADDRS[0]] == 100, 30, "b1 weight 100")
    log = daemon.logtext()
    assert "backend b1: suppressed by flap damping (penalty" in log
    assert "backend b1: flap damping reuses it (penalty" in log
