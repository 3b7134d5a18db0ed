"""The reconciler's doorbell: what may not wait through a settle rings it.

After a quiet turn (probe results that moved nothing) the reconciler lets results gather
(`reconciler.SETTLE`) by waiting on its inbox's bell. The inbox rings it for every message that
is not a probe result; the check workers ring it after queuing a result that may move a
backend (`workers.news`). The loop itself runs on a thread here with a bell that records its
waits and returns at once, so nothing depends on how long a wait takes.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.health.state import Phase
from maglev.health.workers import news
from maglev.model import ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events, reconciler
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.memory import MemoryLb
from tests.reconcile.test_damping_reconciler import CONFIG
from tests.rigs import NoStreams


def _result(n: int, ok: bool, at: float = 0.0) -> ProbeResult:
    t = ProbeTarget(ipaddress.ip_address(f"10.0.0.{n}"), "hc")
    return ProbeResult(t, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "test", at)


def test_news_is_a_result_that_may_move_its_backend() -> None:
    assert news(Phase.CHANGING, True) and news(Phase.CHANGING, False)
    assert news(Phase.UP, False) and news(Phase.DOWN, True)
    assert not news(Phase.UP, True) and not news(Phase.DOWN, False)


def test_the_inbox_rings_for_every_message_but_a_probe_result() -> None:
    inbox = events.Inbox()
    inbox.put(_result(1, True))
    inbox.put_nowait(_result(2, False))
    assert not inbox.bell.is_set() and inbox.qsize() == 2
    inbox.put_nowait(events.ReadLbState())
    assert inbox.bell.is_set()
    inbox.bell.clear()
    inbox.put(events.Stop())
    assert inbox.bell.is_set() and inbox.qsize() == 4


def test_a_reconciler_on_a_plain_queue_has_a_bell_nobody_rings() -> None:
    import queue

    r = Reconciler(
        load_text(CONFIG.format(damping="")), queue.Queue(), MemoryLb(), NoStreams(),
        clock=ManualClock(0.0),
    )  # fmt: skip
    inbox = events.Inbox()
    r2 = Reconciler(
        load_text(CONFIG.format(damping="")), inbox, MemoryLb(), NoStreams(),
        clock=ManualClock(0.0),
    )  # fmt: skip
    assert r2.bell is inbox.bell and r.bell is not inbox.bell and not r.bell.is_set()


class RecordingBell(threading.Event):
    """Records each settle's timeout and returns at once, as if rung."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []
        self.clears = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return True

    def clear(self) -> None:
        self.clears += 1
        super().clear()


def _until(what: str, cond: Any) -> None:
    give_up = time.monotonic() + 30
    while not cond():
        assert time.monotonic() < give_up, f"not within 30 s: {what}"
        time.sleep(0.005)


def test_the_loop_settles_on_its_bell_after_a_quiet_turn_only() -> None:
    inbox = events.Inbox()
    lb = MemoryLb()
    rec = Reconciler(
        load_text(CONFIG.format(damping="")), inbox, lb, NoStreams(), clock=ManualClock(0.0)
    )
    bell = RecordingBell()
    rec.bell = bell
    inbox.put(_result(1, True))
    inbox.put(_result(2, True))  # transitions: not a quiet turn, no settle
    thread = threading.Thread(target=rec.run, daemon=True)
    thread.start()
    try:
        _until("both up", lambda: rec.snapshot.backends["a2"].last_probe is not None)
        # The first turn moved both backends up: it did not settle. Its timers' turns (nothing
        # came, every second at most) do not settle either.
        assert bell.waits == []
        inbox.put(_result(1, True, at=1.0))  # up stays up: quiet
        _until("a settle", lambda: bell.clears == 1)
        (timeout,) = bell.waits
        assert timeout is not None and 0 < timeout <= reconciler.SETTLE
        assert rec.snapshot.backends["a1"].last_probe.at == 1.0  # type: ignore[union-attr]
    finally:
        rec.stopping.set()
        inbox.put(events.Stop())
        thread.join(30)
    assert not thread.is_alive()
