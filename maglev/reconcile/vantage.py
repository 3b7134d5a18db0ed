"""The vantage guard (`health.vantage`): when maglev itself cannot see, drains are frozen.

When the fault is on maglev's side (its probe namespace gone, its source address removed, its
uplink cut) every backend looks dead at once, and draining them would turn maglev's blindness
into an outage. This module owns the guard's state machine and its canaries; the reconciler
feeds it backend transitions and canary probe results, asks it which state each backend is to
have in the engine's input, and applies the changes it returns. The guard never touches the
engine: a held backend is simply presented to it as up.

Trip (state `holding`), checked once per turn:
- a canary is down: a target probed like a backend (its healthcheck's rise/fall, netns and
  source address) that serves no frontend; or
- with `max-down-fraction` set: more than that fraction of the backends that can go down
  (enabled, with a healthcheck, not paused) went from up to down within `window`.

Hold: transitions are still applied to the health machines, logged, published and shown (status
shows real health), but a *held* backend is given to the engine as up. A backend is held when it
goes from up to down while the guard holds, and also when it did so within `window` before the
trip and is still down: those drains are part of the same event (with the fraction rule, the
drains that made the fraction), so the trip rewinds them. Going up is applied at once, and so are
operator actions and reloads; a backend that was not up (already down before the window, unknown,
paused) is not held: there is no last good state to keep.

Release, after which the held drains apply in one pass:
- automatically, once no canary is down and, with `max-down-fraction`, at most half of that
  fraction of the backends is still held. That is the hysteresis: tripping needs more than the
  fraction going down within the window, releasing needs the held ones back under half of it
  (they come back up as the vantage heals, each after its `rise`), and a canary must come back
  up through its own `rise`. With 30% and 100 backends: 31 drains within the window trip it,
  and it holds until at most 15 of the held ones are still down;
- by an operator (`maglevc guard release`, a `ReleaseGuard` request), whatever the rules say;
- when a reload removes `health.vantage`.
A release forgets the drains counted so far (only fresh ones within a window trip it again), and a
canary still down at a manual release trips it again only after it has been up.

Owned by the reconciler thread. Pure: time comes in as `now` (monotonic, as the reconciler
passes it); the injected clock gives only the wall-clock time shown as `since`.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from maglev.clock import Clock
from maglev.config.fields import format_duration
from maglev.health.state import BackendHealth, Phase, Transition
from maglev.model import BackendState, Config, ProbeResult, ProbeTarget, VantageSettings
from maglev.reconcile.backends import phase_rank, probe_streams

log = logging.getLogger(__name__)

UP, DOWN = BackendState.UP, BackendState.DOWN
_PROBING = frozenset({BackendState.UNKNOWN, BackendState.UP, BackendState.DOWN})


class GuardState(enum.Enum):
    OFF = "off"  # health.vantage is not configured
    ARMED = "armed"  # watching; nothing held
    HOLDING = "holding"  # tripped: health-driven drains are frozen


@dataclass(frozen=True, slots=True)
class VantageStatus:
    """The guard as readers see it (part of the reconciler's snapshot)."""

    state: GuardState = GuardState.OFF
    since: float | None = None  # wall-clock time of the last change of state
    why: str | None = None  # why it holds; after a release, what released it
    held: frozenset[str] = frozenset()  # backends down whose drain is held
    canaries: tuple[tuple[str, BackendState], ...] = ()
    trips: int = 0


@dataclass(frozen=True, slots=True)
class GuardChange:
    """A trip or a release: the backends whose engine input it changed (rewound to up by a
    trip, set to their real state by a release): their frontends need a pass."""

    state: GuardState
    why: str
    backends: tuple[str, ...]

    def event(self) -> dict[str, Any]:
        key = "held_backends" if self.state is GuardState.HOLDING else "applied_drains"
        return {
            "type": "vantage",
            "state": self.state.value,
            "why": self.why,
            key: len(self.backends),
        }


class HeldView(Mapping[str, BackendState]):
    """Backend states with the held ones shown as up (what the engine is given)."""

    __slots__ = ("_held", "_states")

    def __init__(self, states: Mapping[str, BackendState], held: set[str]) -> None:
        self._states = states
        self._held = held

    def __getitem__(self, name: str) -> BackendState:
        return UP if name in self._held else self._states[name]

    def get(self, name: str, default: Any = None) -> Any:
        return UP if name in self._held else self._states.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)


class VantageGuard:
    """The guard and its canaries' health machines. Mutable; the reconciler thread's own."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._off()

    def _off(self) -> None:
        """Not configured: nothing held, nothing kept."""
        self.settings: VantageSettings | None = None
        self.state = GuardState.OFF
        self.since: float | None = None
        self.why: str | None = None
        self.trips = 0
        self.held: set[str] = set()
        self.canaries: dict[str, BackendHealth] = {}
        self.canary_targets: dict[ProbeTarget, tuple[str, ...]] = {}  # target -> canary names
        self._target_of: dict[str, ProbeTarget] = {}
        self._excused: set[str] = set()  # down at a manual release: no trip until up again
        self._drains: deque[tuple[float, str]] = deque()  # (at, backend): up -> down, in window
        self._probing = 0  # backends that can go down: the fraction's denominator
        self._recount = False
        self._changed = False  # something a trip or a release depends on moved
        self._newly_held = 0
        self._status: VantageStatus | None = VantageStatus()

    @property
    def on(self) -> bool:
        return self.settings is not None

    # --- config -----------------------------------------------------------------------------

    def configure(
        self, config: Config, health: Mapping[str, BackendHealth], now: float
    ) -> GuardChange | None:
        """Take `config`'s `health.vantage` (on every config install); canaries keep their
        health across it. A reload that removes the guard while it holds releases it."""
        settings = config.health.vantage
        change = None
        if settings is None:
            if self.state is GuardState.HOLDING:
                change = self._release("by a reload (health.vantage removed)", now)
            if self.on:
                log.info("vantage guard off (health.vantage is not configured)")
            self._off()
            return change
        canaries: dict[str, BackendHealth] = {}
        by_target: dict[ProbeTarget, list[str]] = {}
        for c in settings.canaries:
            check = config.healthchecks[c.healthcheck]
            prev = self.canaries.get(c.name)
            canaries[c.name] = (
                BackendHealth(c.name, c.address, check)
                if prev is None
                else prev.reconfigure(c.address, check, True, now)
            )
            by_target.setdefault(ProbeTarget(c.address, c.healthcheck), []).append(c.name)
        self.canaries = canaries
        self.canary_targets = {t: tuple(n) for t, n in by_target.items()}
        self._target_of = {n: t for t, names in by_target.items() for n in names}
        self._excused &= set(canaries)
        self.held = {n for n in self.held if (h := health.get(n)) is not None and h.state is DOWN}
        self._probing = _count_probing(health)
        if self.settings is None:
            self.state, self.since = GuardState.ARMED, self.clock.wall()
            log.info("vantage guard armed: %s", _rules(settings))
        self.settings = settings
        self._changed = True
        self._status = None
        return change

    def add_streams(
        self, targets: dict[ProbeTarget, Any], phases: dict[ProbeTarget, Phase]
    ) -> None:
        """Add the canaries' probe streams to the backends' (`probe_streams`' output)."""
        more, more_phases = probe_streams(self.canaries, self._target_of)
        for t, check in more.items():
            targets.setdefault(t, check)
        for t, p in more_phases.items():
            if t not in phases or phase_rank(p) < phase_rank(phases[t]):
                phases[t] = p

    # --- inputs -----------------------------------------------------------------------------

    def canary_result(self, result: ProbeResult, now: float) -> None:
        """Feed a probe result of a canary target to its canaries."""
        for name in self.canary_targets.get(result.target, ()):
            t = self.canaries[name].apply(result, now)
            if t is None:
                continue
            self._changed = True
            self._status = None
            if t.new is not DOWN:
                self._excused.discard(name)
            log.log(
                logging.WARNING if t.new is DOWN else logging.INFO,
                "vantage canary %s: %s -> %s (%s: %s)",
                name, t.old.value, t.new.value, t.reason.value if t.reason else "-",
                t.detail or "-",
            )  # fmt: skip

    def canary_phases(self, target: ProbeTarget) -> list[Phase]:
        return [p for n in self.canary_targets.get(target, ()) if (p := self.canaries[n].phase)]

    def note(self, t: Transition) -> BackendState:
        """Record a backend's transition; returns the state the engine is to see for it."""
        old, new = t.old, t.new
        if (old in _PROBING) != (new in _PROBING):
            self._recount = True  # paused, resumed, disabled, enabled, removed
        if old is UP and new is DOWN:
            self._drains.append((t.at, t.backend))
            self._changed = True
            if self.state is GuardState.HOLDING:
                self.held.add(t.backend)
                self._newly_held += 1
                self._status = None
                return UP
            return DOWN
        if t.backend in self.held:  # up again, or an operator's or a reload's doing
            self.held.discard(t.backend)
            self._changed = True
            self._status = None
        return new

    def present(self, name: str, state: BackendState) -> BackendState:
        """The state the engine is to see for backend `name`, whose real state is `state`."""
        return UP if name in self.held else state

    def view(self, states: Mapping[str, BackendState]) -> Mapping[str, BackendState]:
        """`states` as the engine is to see them."""
        return HeldView(states, self.held) if self.held else states

    # --- the rules --------------------------------------------------------------------------

    def evaluate(self, now: float, health: Mapping[str, BackendHealth]) -> GuardChange | None:
        """Trip or release if the rules say so (once per turn, before writing to VPP)."""
        settings = self.settings
        if settings is None:
            return None
        horizon = now - settings.window
        drains = self._drains
        while drains and drains[0][0] <= horizon:
            drains.popleft()
        if self._newly_held:
            log.warning(
                "vantage guard: holding the drains of %d more backend(s), %d in all",
                self._newly_held, len(self.held),
            )  # fmt: skip
            self._newly_held = 0
        if not self._changed:
            return None
        self._changed = False
        if self._recount:
            self._probing = _count_probing(health)
            self._recount = False
        if self.state is GuardState.ARMED:
            why = self.canary_down() or self.fraction_exceeded()
            return self._trip(why, health) if why else None
        if self.state is GuardState.HOLDING and self.may_release():
            parts = ["no canary down"] if self.canaries else []
            if settings.max_down_fraction is not None:
                parts.append(f"{len(self.held)} of {self._probing} backends still down")
            return self._release(f"as the vantage recovered ({', '.join(parts)})", now)
        return None

    def canary_down(self) -> str | None:
        """Rule 1: a canary is down. A fault on maglev's side fails the canaries too; a canary
        that fails alone is the one case this gets wrong, and then nothing is drained until an
        operator releases (safe: traffic is not moved on a doubt)."""
        for c in self.settings.canaries if self.settings else ():
            h = self.canaries[c.name]
            if h.state is DOWN and c.name not in self._excused:
                last = h.history[-1].detail if h.history else ""
                return (
                    f"canary {c.name} ({c.address}, healthcheck {c.healthcheck}) is down"
                    + (f": {last}" if last else "")
                )  # fmt: skip
        return None

    def fraction_exceeded(self) -> str | None:
        """Rule 2: more than `max-down-fraction` of the backends that can go down went down
        within `window`. Backends fail one by one; a whole farm failing within seconds is far
        likelier to be maglev's view breaking (or a fault no drain can help) than many hosts
        dying at once, and draining them all would leave nothing to serve."""
        s = self.settings
        if s is None or s.max_down_fraction is None or self._probing <= 0:
            return None
        n = len({b for _, b in self._drains})
        if n <= s.max_down_fraction * self._probing:
            return None
        return (
            f"{n} of {self._probing} backends went down within {format_duration(s.window)} "
            f"(more than max-down-fraction {_percent(s.max_down_fraction)})"
        )

    def may_release(self) -> bool:
        """No canary down (each came back through its `rise`) and, with the fraction rule, at
        most half of `max-down-fraction` still held: hysteresis, so that a vantage flapping at
        the threshold does not flap the weights with it."""
        if any(h.state is DOWN and n not in self._excused for n, h in self.canaries.items()):
            return False
        s = self.settings
        if s is not None and s.max_down_fraction is not None:
            return len(self.held) <= s.max_down_fraction / 2 * self._probing
        return True

    # --- changes ----------------------------------------------------------------------------

    def release(self, by: str, now: float) -> GuardChange | None:
        """An operator's release (None when the guard does not hold)."""
        if self.state is not GuardState.HOLDING:
            return None
        return self._release(f"by {by}", now)

    def _trip(self, why: str, health: Mapping[str, BackendHealth]) -> GuardChange:
        rewound = sorted(
            {b for _, b in self._drains if (h := health.get(b)) is not None and h.state is DOWN}
        )
        self.held = set(rewound)
        self.state, self.since, self.why = GuardState.HOLDING, self.clock.wall(), why
        self.trips += 1
        self._status = None
        window = format_duration(self.settings.window) if self.settings else "-"
        log.error(
            "vantage guard tripped: %s; health-driven drains are frozen (%d drain(s) of the last "
            "%s rewound) until it releases, or an operator runs `maglevc guard release`",
            why, len(rewound), window,
        )  # fmt: skip
        return GuardChange(GuardState.HOLDING, why, tuple(rewound))

    def _release(self, how: str, now: float) -> GuardChange:
        """Release; `how` completes "released ...": "by operator (uid 0 ...)"."""
        why = f"released {how}"
        names = tuple(sorted(self.held))
        self.held = set()
        self._drains.clear()
        self._excused = {n for n, h in self.canaries.items() if h.state is DOWN}
        self.state, self.since, self.why = GuardState.ARMED, self.clock.wall(), why
        self._changed = True
        self._status = None
        log.info("vantage guard %s: applying the held drains of %d backend(s)", why, len(names))
        return GuardChange(GuardState.ARMED, why, names)

    # --- reading ----------------------------------------------------------------------------

    def status(self) -> VantageStatus:
        """An immutable copy for the snapshot (rebuilt only after something changed)."""
        if self._status is None:
            self._status = VantageStatus(
                state=self.state,
                since=self.since,
                why=self.why,
                held=frozenset(self.held),
                canaries=tuple((n, h.state) for n, h in self.canaries.items()),
                trips=self.trips,
            )
        return self._status


def _count_probing(health: Mapping[str, BackendHealth]) -> int:
    return sum(1 for h in health.values() if h.probing)


def _rules(s: VantageSettings) -> str:
    rules = [f"canary {c.name} ({c.address}, healthcheck {c.healthcheck})" for c in s.canaries]
    if s.max_down_fraction is not None:
        rules.append(
            f"more than {_percent(s.max_down_fraction)} of the backends down within "
            f"{format_duration(s.window)}"
        )
    return "trips on " + ", or ".join(rules)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"
