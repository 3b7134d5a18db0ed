"""Probing and programming go on while a reload is rejected: maglevd as a real subprocess (the
harness of `test_e2e`: the emulator in its own process, real loopback backends), an alias bomb
renamed over its config and a backend's listener stopped right after. The backend must reach
weight 0 in VPP, the reload must be reported rejected, and the running config must stay in force.

The bomb has ten levels (3.5 billion items expanded). The loader as it was took 20 s to reject one
of 10^8 items, holding the GIL throughout, so probes and VPP writes waited for it: with this one
they would wait far past the deadlines here. Waits are on states, with generous deadlines; nothing
asserts how long something took.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from maglev.config.limits import MAX_NODES
from tests.config.test_limits import bomb
from tests.daemon.test_e2e import ADDRS, Daemon, json_of, wait_for, weights
from tests.daemon.test_e2e import daemon as daemon  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROGRAMMED = {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}
B1_DOWN = {ADDRS[0]: 0, ADDRS[1]: 50, ADDRS[2]: 0}


def test_a_backend_stopped_during_a_rejected_bomb_reaches_weight_zero(
    daemon: Daemon, tmp_path: pathlib.Path
) -> None:
    conn = daemon.vpp_connect()  # one connection: a poll costs a dump, not a handshake
    try:
        wait_for(lambda: weights(conn) == PROGRAMMED, 30, "programmed")
        since = daemon.status()["config"]["last_reload"].get("at")
        new = tmp_path / ".maglev.yaml.new"
        new.write_text(bomb(10))
        os.rename(new, daemon.cfg)
        daemon.backends[0].stop()
        wait_for(lambda: weights(conn) == B1_DOWN, 60, "b1 at weight 0 in VPP")
        last = wait_for(
            lambda: (r := daemon.status()["config"]["last_reload"]).get("at") != since and r,
            60,
            "the reload's result",
        )
        assert last["ok"] is False, last
        (problem,) = last["problems"]
        assert problem.startswith(f"{daemon.cfg}:")
        assert f"with its aliases expanded the document has more than {MAX_NODES:,}" in problem
        # The running config stays in force, and health keeps driving VPP under it.
        assert json_of(daemon, "show", "backend", "b1")["state"] == "down"
        assert [b["name"] for b in json_of(daemon, "show", "frontend", "web")["backends"]] == [
            "b1",
            "b2",
            "b3",
        ]
        daemon.backends[0].start()
        wait_for(lambda: weights(conn) == PROGRAMMED, 60, "b1 back at its weight")
    finally:
        conn.disconnect()
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert "rejected" in daemon.logtext()
