"""Per-backend health state machine: rise/fall hysteresis, operator states, transition history.

Pure code, no I/O and no clock: the caller passes `now`. One `BackendHealth` per backend, owned
and driven by the reconciler thread (it feeds `ProbeResult`s in and reads `phase` back out to tell
the check scheduler which interval applies).

The counter follows HAProxy: it runs from 0 to `rise + fall - 1`. A backend that is down sits at
0 and needs `rise` consecutive successes to go up; then the counter jumps to the top, and `fall`
consecutive failures take it down again (back to 0). A success while up or a failure while down
resets the counter to its extreme, so only *consecutive* results count. From `unknown` (new,
resumed, re-enabled) the first probe decides on its own: we know nothing, so one observation beats
waiting `rise` or `fall` intervals with the backend in limbo.

A backend without a healthcheck is `up` whenever it is enabled (nothing can prove it down: the
operator asked us not to look), and `disabled` when it is not.

Operator states: `paused` stops probing and freezes the backend as it is (the reconciler decides
what that means for traffic); `disabled` stops probing and takes the backend out; `removed` is
terminal (the backend left the config). Resuming or enabling goes back to `unknown`, so a fresh
probe decides.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from maglev.model import BackendState, HealthCheck, IPAddress, ProbeResult, Reason

HISTORY = 32
"""Transitions kept per backend (oldest dropped first)."""


class Phase(enum.Enum):
    """Which probe interval applies to a backend (what the scheduler needs to know)."""

    UP = "up"  # fully up: `interval`
    CHANGING = "changing"  # unknown, or the counter is between its extremes: `fast_interval`
    DOWN = "down"  # fully down: `down_interval`


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one backend."""

    backend: str
    at: float
    old: BackendState
    new: BackendState
    reason: Reason | None  # None: an operator or config action, not a probe
    detail: str
    # Probe timing, for the convergence metrics (monotonic; None: not caused by a probe).
    # `onset`: when the first probe of the run that made it finished (the first failure of a
    # fall, the first success of a rise); `probed`: when the deciding probe finished.
    onset: float | None = None
    probed: float | None = None


_PROBING = (BackendState.UNKNOWN, BackendState.UP, BackendState.DOWN)


def _same_probe(a: HealthCheck | None, b: HealthCheck | None) -> bool:
    """Whether two checks probe alike (their `flap_damping` aside: the reconciler's rule)."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    return dataclasses.replace(a, flap_damping=None) == dataclasses.replace(b, flap_damping=None)


class BackendHealth:
    """The health of one backend. Mutable; owned by the reconciler thread."""

    __slots__ = (
        "_by_config",
        "_counter",
        "_history",
        "_keep",
        "_onset",
        "_state",
        "address",
        "check",
        "name",
    )

    def __init__(
        self,
        name: str,
        address: IPAddress,
        check: HealthCheck | None,
        enabled: bool = True,
        history: int = HISTORY,
    ) -> None:
        self.name = name
        self.address = address
        self.check = check
        # A tuple, replaced on each (rare) transition: the snapshot reads it after every probe.
        self._history: tuple[Transition, ...] = ()
        self._keep = history
        self._counter = 0
        self._onset = 0.0  # when the current run of results against the state began
        # True when `disabled` came from the config (enabled: false) rather than an operator:
        # a reload that sets enabled: true again may undo only what a reload did.
        self._by_config = not enabled
        if not enabled:
            self._state = BackendState.DISABLED
        elif check is None:
            self._state = BackendState.UP
        else:
            self._state = BackendState.UNKNOWN

    # --- reading ------------------------------------------------------------------------

    @property
    def state(self) -> BackendState:
        return self._state

    @property
    def counter(self) -> int:
        return self._counter

    @property
    def history(self) -> tuple[Transition, ...]:
        return self._history

    @property
    def probing(self) -> bool:
        """Whether a probe stream should run for this backend."""
        return self.check is not None and self._state in _PROBING

    @property
    def phase(self) -> Phase | None:
        """The scheduler's phase, or None when this backend is not probed."""
        if not self.probing:
            return None
        if self._state is BackendState.UP and self._counter == self._top:
            return Phase.UP
        if self._state is BackendState.DOWN and self._counter == 0:
            return Phase.DOWN
        return Phase.CHANGING

    @property
    def _top(self) -> int:
        assert self.check is not None
        return self.check.rise + self.check.fall - 1

    # --- probes -------------------------------------------------------------------------

    def apply(self, result: ProbeResult, now: float) -> Transition | None:
        """Feed one probe result; returns the transition it caused, if any.

        Results for a backend that is not being probed (paused, disabled, removed, or without a
        check) are ignored: they were in flight when probing stopped.
        """
        check = self.check
        if check is None or self._state not in _PROBING:
            return None
        top = check.rise + check.fall - 1
        state = self._state
        if state is BackendState.UNKNOWN:
            self._counter = top if result.ok else 0
            self._onset = result.at  # one probe decides: it is its own run
            return self._move(BackendState.UP if result.ok else BackendState.DOWN, now, result)
        if state is BackendState.UP:
            if result.ok:
                self._counter = top
                return None
            if self._counter == top:  # the run's first failure: off the steady path
                self._onset = result.at
            self._counter -= 1
            if self._counter < check.rise:
                self._counter = 0
                return self._move(BackendState.DOWN, now, result)
            return None
        # DOWN
        if not result.ok:
            self._counter = 0
            return None
        if self._counter == 0:  # the run's first success
            self._onset = result.at
        self._counter += 1
        if self._counter >= check.rise:
            self._counter = top
            return self._move(BackendState.UP, now, result)
        return None

    # --- operator -----------------------------------------------------------------------

    def pause(self, now: float) -> Transition | None:
        if self._state not in _PROBING:
            return None
        return self._move(BackendState.PAUSED, now, None, "paused")

    def resume(self, now: float) -> Transition | None:
        if self._state is not BackendState.PAUSED:
            return None
        return self._restart(now, "resumed")

    def disable(self, now: float, by_config: bool = False) -> Transition | None:
        if self._state in (BackendState.DISABLED, BackendState.REMOVED):
            if self._state is BackendState.DISABLED and not by_config:
                self._by_config = False  # an operator now owns this disable
            return None
        self._by_config = by_config
        return self._move(BackendState.DISABLED, now, None, "disabled")

    def enable(self, now: float) -> Transition | None:
        if self._state is not BackendState.DISABLED:
            return None
        self._by_config = False
        return self._restart(now, "enabled")

    def remove(self, now: float) -> Transition | None:
        if self._state is BackendState.REMOVED:
            return None
        return self._move(BackendState.REMOVED, now, None, "removed")

    # --- reload -------------------------------------------------------------------------

    def reconfigure(
        self, address: IPAddress, check: HealthCheck | None, enabled: bool, now: float
    ) -> BackendHealth:
        """The machine for this backend under a new config (self or a successor).

        Same address and same healthcheck (equal values, flap damping aside): this very machine,
        state and counter kept. Another address is another host: a fresh machine. Same address with another check:
        a fresh machine, except that a backend that was down starts down (counter 0, so it needs
        `rise` successes): a reload must never bring a failed backend back into service. Operator
        states (paused, disabled by an operator) survive either way, as does the history.
        """
        same_host = address == self.address
        if same_host and _same_probe(check, self.check):
            nxt = self
            nxt.check = check  # flap damping may differ: it is not the machine's concern
        else:
            nxt = BackendHealth(self.name, address, check, True, self._keep)
            nxt._history = self._history
            if same_host and self._state is not BackendState.REMOVED:
                if self._state in (BackendState.PAUSED, BackendState.DISABLED):
                    nxt._state = self._state
                    nxt._by_config = self._by_config
                elif self._state is BackendState.DOWN and check is not None:
                    nxt._state = BackendState.DOWN
        if not enabled:
            nxt.disable(now, by_config=True)
        elif nxt._state is BackendState.DISABLED and nxt._by_config:
            nxt.enable(now)
        return nxt

    # --- internals ----------------------------------------------------------------------

    def _restart(self, now: float, detail: str) -> Transition:
        if self.check is None:
            return self._move(BackendState.UP, now, None, detail + " (no healthcheck)")
        self._counter = 0
        return self._move(BackendState.UNKNOWN, now, None, detail)

    def _move(
        self,
        new: BackendState,
        now: float,
        result: ProbeResult | None,
        detail: str = "",
    ) -> Transition:
        if result is None:
            t = Transition(self.name, now, self._state, new, None, detail)
        else:
            t = Transition(
                self.name, now, self._state, new, result.reason, result.detail,
                self._onset, result.at,
            )  # fmt: skip
        self._state = new
        self._history = (*self._history[max(0, len(self._history) + 1 - self._keep) :], t)
        return t

    def __repr__(self) -> str:
        return (
            f"BackendHealth({self.name!r}, {self.address}, {self._state.value},"
            f" counter={self._counter})"
        )
