"""The rise/fall state machine: sequences of results with injected time."""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import replace

import pytest

from maglev.health.state import BackendHealth, Phase
from maglev.model import BackendState, CheckType, HealthCheck, ProbeResult, ProbeTarget, Reason

ADDR = ipaddress.IPv4Address("127.0.0.1")
CHECK = HealthCheck(name="web", type=CheckType.TCP, port=80, rise=2, fall=3)
TARGET = ProbeTarget(ADDR, "web")

UP, DOWN, UNKNOWN = BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN


def res(ok: bool, at: float = 0.0) -> ProbeResult:
    reason = Reason.L4OK if ok else Reason.L4CON
    return ProbeResult(TARGET, ok, reason, 0.001, "connected" if ok else "refused", at)


def feed(h: BackendHealth, pattern: str, start: float = 10.0) -> list[BackendState]:
    """Feed '+'/'-' results one second apart; return the state after each."""
    out = []
    for i, c in enumerate(pattern):
        h.apply(res(c == "+"), start + i)
        out.append(h.state)
    return out


def test_first_probe_decides_from_unknown() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    assert h.state is UNKNOWN and h.phase is Phase.CHANGING
    t = h.apply(res(True), 5.0)
    assert t is not None and (t.old, t.new, t.at, t.reason) == (UNKNOWN, UP, 5.0, Reason.L4OK)
    assert h.phase is Phase.UP
    h2 = BackendHealth("b", ADDR, CHECK)
    t = h2.apply(res(False), 5.0)
    assert t is not None and t.new is DOWN and t.detail == "refused"
    assert h2.phase is Phase.DOWN


def test_fall_needs_consecutive_failures() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(True), 0)
    assert feed(h, "--+--") == [UP] * 5  # a success in between resets the count
    assert h.phase is Phase.CHANGING
    assert feed(h, "-") == [DOWN]
    assert h.phase is Phase.DOWN and h.counter == 0


def test_rise_needs_consecutive_successes() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(False), 0)
    assert feed(h, "+-+") == [DOWN] * 3
    assert h.phase is Phase.CHANGING
    assert feed(h, "+") == [UP]
    assert h.phase is Phase.UP and h.counter == CHECK.rise + CHECK.fall - 1


@pytest.mark.parametrize(("rise", "fall"), [(1, 1), (1, 5), (4, 1), (3, 3)])
def test_rise_fall_counts(rise: int, fall: int) -> None:
    h = BackendHealth("b", ADDR, replace(CHECK, rise=rise, fall=fall))
    h.apply(res(True), 0)
    states = feed(h, "-" * fall)
    assert states == [UP] * (fall - 1) + [DOWN]
    states = feed(h, "+" * rise)
    assert states == [DOWN] * (rise - 1) + [UP]


def test_history_is_bounded_and_ordered() -> None:
    h = BackendHealth("b", ADDR, replace(CHECK, rise=1, fall=1), history=4)
    feed(h, "+-+-+-")
    hist = h.history
    assert len(hist) == 4
    assert [t.at for t in hist] == [12.0, 13.0, 14.0, 15.0]
    assert all(a.new is b.old for a, b in itertools.pairwise(hist))


def test_pause_resume_ignores_results_while_paused() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(True), 0)
    t = h.pause(1)
    assert t is not None and t.new is BackendState.PAUSED and t.reason is None
    assert h.phase is None and not h.probing
    assert h.apply(res(False), 2) is None and h.state is BackendState.PAUSED
    t = h.resume(3)
    assert t is not None and t.new is UNKNOWN
    assert h.phase is Phase.CHANGING
    assert h.resume(4) is None  # not paused any more


def test_disable_enable() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(False), 0)
    assert h.disable(1) is not None and h.state is BackendState.DISABLED
    assert h.apply(res(True), 2) is None
    assert h.pause(3) is None  # nothing to pause
    t = h.enable(4)
    assert t is not None and (t.old, t.new) == (BackendState.DISABLED, UNKNOWN)


def test_config_disabled_backend() -> None:
    h = BackendHealth("b", ADDR, CHECK, enabled=False)
    assert h.state is BackendState.DISABLED and h.phase is None


def test_no_healthcheck_is_up_when_enabled() -> None:
    h = BackendHealth("b", ADDR, None)
    assert h.state is UP and h.phase is None
    assert h.apply(res(False), 1) is None and h.state is UP
    h.disable(2)
    assert h.state is BackendState.DISABLED
    h.enable(3)
    assert h.state is UP


def test_remove_is_terminal() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    t = h.remove(1)
    assert t is not None and t.new is BackendState.REMOVED
    assert h.remove(2) is None and h.enable(3) is None and h.resume(3) is None
    assert h.apply(res(True), 4) is None


# --- reload ---------------------------------------------------------------------------


def test_reload_same_address_and_check_keeps_state_and_counter() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(True), 0)
    h.apply(res(False), 1)
    counter = h.counter
    same = h.reconfigure(ADDR, replace(CHECK), True, 5)
    assert same is h and same.state is UP and same.counter == counter


def test_reload_new_address_starts_fresh() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(False), 0)
    nxt = h.reconfigure(ipaddress.IPv4Address("127.0.0.2"), CHECK, True, 5)
    assert nxt is not h and nxt.state is UNKNOWN
    assert nxt.history == h.history  # history carries over


def test_reload_changed_check_never_revives_a_down_backend() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(False), 0)
    nxt = h.reconfigure(ADDR, replace(CHECK, rise=3), True, 5)
    assert nxt.state is DOWN and nxt.counter == 0
    assert feed(nxt, "++") == [DOWN, DOWN]
    assert feed(nxt, "+") == [UP]


def test_reload_changed_check_on_up_backend_rechecks() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(True), 0)
    nxt = h.reconfigure(ADDR, replace(CHECK, path="/other"), True, 5)
    assert nxt.state is UNKNOWN


def test_reload_enabled_flag() -> None:
    h = BackendHealth("b", ADDR, CHECK)
    h.apply(res(False), 0)
    off = h.reconfigure(ADDR, CHECK, False, 1)
    assert off.state is BackendState.DISABLED
    on = off.reconfigure(ADDR, CHECK, True, 2)
    assert on.state is UNKNOWN  # config re-enabled what config disabled: probe decides
    # An operator's disable survives a reload that says enabled: true.
    on.disable(3)
    again = on.reconfigure(ADDR, CHECK, True, 4)
    assert again.state is BackendState.DISABLED
    # A paused backend stays paused across a reload, even with a changed check.
    p = BackendHealth("p", ADDR, CHECK)
    p.pause(0)
    assert p.reconfigure(ADDR, replace(CHECK, fall=9), True, 1).state is BackendState.PAUSED
