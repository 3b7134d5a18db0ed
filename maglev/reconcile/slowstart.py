"""Slow start: the ramp arithmetic (pure, clock-injected) and the reconciler's ramps.

A backend that comes up after being down (down, paused, disabled, or unknown after having been
known), or that a reload adds to a frontend already serving, enters VPP at 1/steps of its weight
and is raised in `steps` equal steps, the last one reaching its full weight exactly at
`start + duration`: step k (1..steps) holds from `step_time(k)` = start + duration*(k-1)/(steps-1)
and caps the weight at max(1, w * permille(k) // PERMILLE) (the cap itself is the engine's,
`maglev.diff`). Never started when maglevd (re)starts (the frontend has not been programmed yet),
nor for the first programming of a frontend, nor when VPP already gives the backend a weight
(the mass-failure guard held it): restart neutrality. A backend leaving `up` ends its ramp; a
later recovery starts a new one.

`Ramps` is owned and called by the reconciler thread; it tells it the next step's time, so the
reconciler sleeps until then instead of polling.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from maglev import diff
from maglev.health.state import BackendHealth, Transition
from maglev.model import BackendState, Config, SlowStart
from maglev.reconcile.desired import Layout, encode_ramps
from maglev.vpp.lb import Actual, frontend_key

__all__ = ["Ramp", "Ramps", "permille", "position", "ramp_weight", "step_time", "step_weights"]

log = logging.getLogger(__name__)

PERMILLE = diff.PERMILLE
# Coming back from these is a recovery (startup's unknown -> up is not).
_DRAINED = (BackendState.DOWN, BackendState.PAUSED, BackendState.DISABLED)


def permille(step: int, steps: int) -> int:
    """The share of its weight a backend has at `step` of `steps`, per mille (floor)."""
    return step * PERMILLE // steps


def ramp_weight(weight: int, share: int) -> int:
    """The capped weight, as the engine computes it (for views and tests)."""
    if weight <= 0 or share >= PERMILLE:
        return weight
    return max(1, weight * share // PERMILLE)


def step_weights(weight: int, ramp: SlowStart) -> list[int]:
    """The weight at each step 1..steps: monotone, each >= 1 (for weight > 0), last = weight."""
    return [ramp_weight(weight, permille(k, ramp.steps)) for k in range(1, ramp.steps + 1)]


def step_time(start: float, ramp: SlowStart, step: int) -> float:
    """When step `step` (1..steps) begins: step 1 at `start`, the last at `start + duration`."""
    if step >= ramp.steps:  # exactly: duration * (n-1) / (n-1) may round past duration
        return start + ramp.duration
    return start + ramp.duration * (step - 1) / (ramp.steps - 1)


def position(start: float, ramp: SlowStart, now: float) -> tuple[int, float | None]:
    """(current step, time of the next step or None once at full weight)."""
    n = ramp.steps
    k = 1 if now <= start else min(n, 1 + int((now - start) * (n - 1) // ramp.duration))
    # Float care: the step is exactly the last one whose `step_time` has come.
    while k < n and step_time(start, ramp, k + 1) <= now:
        k += 1
    while k > 1 and step_time(start, ramp, k) > now:
        k -= 1
    return k, (step_time(start, ramp, k + 1) if k < n else None)


@dataclass(slots=True)
class Ramp:
    start: float
    ramp: SlowStart
    step: int = 1

    def doc(self, weight: int) -> dict[str, Any]:
        """The API's `slow_start` (weight: the configured/overridden one; until: monotonic)."""
        return {
            "step": self.step,
            "steps": self.ramp.steps,
            "weight": ramp_weight(weight, permille(self.step, self.ramp.steps)),
            "until": self.start + self.ramp.duration,
        }


Key = tuple[str, str]  # (frontend, backend)


class Ramps:
    """The ramps in progress per (frontend, backend), and reload-added members waiting to come
    up. Owned by the reconciler thread."""

    def __init__(self, publish: Callable[[dict[str, Any]], None]) -> None:
        self.publish = publish
        self.active: dict[Key, Ramp] = {}
        self.pending: set[Key] = set()  # added by a reload to a serving frontend, not up yet
        self.known: set[str] = set()  # backends that have been up or down

    # --- starting and ending ----------------------------------------------------------------

    def begin(self, key: Key, ramp: SlowStart, now: float) -> None:
        self.pending.discard(key)
        self.active[key] = Ramp(now, ramp)
        fe, be = key
        log.info(
            "slow start of backend %s in frontend %s: %d steps over %gs",
            be, fe, ramp.steps, ramp.duration,
        )  # fmt: skip
        self._event("start", key, self.active[key])

    def _end(self, key: Key, why: str) -> None:
        r = self.active.pop(key, None)
        if r is None:
            return
        fe, be = key
        log.info("slow start of backend %s in frontend %s %s", be, fe, why)
        self._event(why, key, r)

    def _event(self, what: str, key: Key, r: Ramp) -> None:
        self.publish(
            {
                "type": "slow_start",
                "event": what,  # start, step, done, interrupted, removed
                "frontend": key[0],
                "backend": key[1],
                "step": r.step,
                "steps": r.ramp.steps,
            }
        )

    def on_transition(
        self,
        t: Transition,
        config: Config,
        frontends: Collection[str],
        serving: Callable[[str], bool],
        actual: Actual | None,
        now: float,
    ) -> set[str]:
        """A backend's transition: maybe start its ramps (up) or end them (not up); the
        frontends whose engine input changed."""
        changed: set[str] = set()
        was_known = t.backend in self.known
        if t.new in (BackendState.UP, BackendState.DOWN):
            self.known.add(t.backend)
        if t.new is not BackendState.UP:
            for fe in frontends:
                if (fe, t.backend) in self.active:
                    self._end((fe, t.backend), "interrupted")
                    changed.add(fe)
            return changed
        back = t.old in _DRAINED or (t.old is BackendState.UNKNOWN and was_known)
        for fe in frontends:
            key = (fe, t.backend)
            f = config.frontends.get(fe)
            ramp = None if f is None else f.slow_start_of(t.backend)
            if ramp is None or not (back or key in self.pending) or not serving(fe):
                continue
            if self._in_vpp(config, key, actual):
                self.pending.discard(key)
                continue
            self.begin(key, ramp, now)
            changed.add(fe)
        return changed

    @staticmethod
    def _in_vpp(config: Config, key: Key, actual: Actual | None) -> bool:
        """Whether VPP already gives the backend a weight here (the guard held it)."""
        if actual is None:
            return False
        vip = actual.get(frontend_key(config.frontends[key[0]]))
        return vip is not None and vip.weights.get(config.backends[key[1]].address, 0) > 0

    def reloaded(
        self,
        old: Config,
        new: Config,
        serving: Callable[[str], bool],
        health: Mapping[str, BackendHealth],
        actual: Actual | None,
        now: float,
    ) -> None:
        """A reload: members added to serving frontends ramp (now if up, else once up); ramps
        and waits of members that are gone end."""
        for key in [k for k in self.active if not _member(new, k)]:
            self._end(key, "removed")
        self.pending = {k for k in self.pending if _member(new, k)}
        for name, fe in new.frontends.items():
            before = old.frontends.get(name)
            if before is None or before is fe or not serving(name):  # the same: no member added
                continue
            had = set(before.backend_names())
            for be in fe.backend_names():
                ramp = fe.slow_start_of(be)
                if be in had or ramp is None:
                    continue
                h = health.get(be)
                if h is not None and h.state is BackendState.UP:
                    if not self._in_vpp(new, (name, be), actual):
                        self.begin((name, be), ramp, now)
                else:
                    self.pending.add((name, be))

    # --- stepping ---------------------------------------------------------------------------

    def tick(self, now: float) -> set[str]:
        """Advance every ramp to its step at `now`; the frontends whose input changed."""
        changed: set[str] = set()
        for key, r in list(self.active.items()):
            step, _ = position(r.start, r.ramp, now)
            if step == r.step:
                continue
            r.step = step
            changed.add(key[0])
            if step >= r.ramp.steps:
                self._end(key, "done")
            else:
                self._event("step", key, r)
        return changed

    def next_at(self) -> float | None:
        """When the next step of any ramp is due (None: no ramp)."""
        times = [step_time(r.start, r.ramp, r.step + 1) for r in self.active.values()]
        return min(times) if times else None

    def docs(
        self, config: Config, overrides: Mapping[Key, int], now: float, wall: float
    ) -> dict[Key, dict[str, Any]]:
        """Each ramp as the API shows it (`until`: wall-clock time of full weight)."""
        out: dict[Key, dict[str, Any]] = {}
        for key, r in self.active.items():
            fe = config.frontends.get(key[0])
            if fe is None:
                continue
            weight = overrides.get(key)
            if weight is None:
                weight = next(
                    (m.weight for p in fe.pools for m in p.members if m.backend == key[1]), 0
                )
            doc = r.doc(weight)
            doc["until"] = wall + (doc["until"] - now)
            out[key] = doc
        return out

    def encode(self, layout: Layout) -> array[int] | None:
        """The engine's per-slot ramp (None: no slot ramps)."""
        if not self.active:
            return None
        return encode_ramps(
            layout, {k: permille(r.step, r.ramp.steps) for k, r in self.active.items()}
        )


def _member(config: Config, key: Key) -> bool:
    fe = config.frontends.get(key[0])
    return fe is not None and key[1] in fe.backend_names()
