"""Flap damping (`healthchecks.NAME.flap-damping`), after BGP route-flap damping (RFC 2439).

Safety rule: a backend that keeps failing and recovering hurts more than one that stays down,
since every return brings new flows to a host that will drop them again. Each down transition
adds `penalty` to the backend's figure of merit, which decays exponentially:

    penalty(t) = p0 * 2 ** (-(t - t0) / half_life)

Above `suppress` the backend is held out (the engine's ST_SUPPRESSED: weight 0, never flushed,
counted as missing by the mass-failure guard) even while its checks pass; it returns once the
penalty has decayed below `reuse`, or after `max_suppress` seconds of suppression at most (the
penalty is kept then: one more flap suppresses it again).

Two layers: `Damped` and the functions over it are the arithmetic, pure and clock-injected
(every call takes `now`); `Damping` is the reconciler's per-backend state over them (its thread
only): it is told of transitions and reloads, and says when the next suppression ends so the
reconciler can wake up for it without polling.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from maglev.health.state import Transition
from maglev.model import BackendState, Config, FlapDamping

log = logging.getLogger(__name__)

FORGET = 1.0  # a penalty decayed below this is forgotten (the backend has no damping entry)


@dataclass(frozen=True, slots=True)
class Damped:
    """One backend's figure of merit: `value` at time `at`; `since`: when its suppression
    began, None when it is not suppressed."""

    value: float
    at: float
    since: float | None = None


def decayed(d: Damped, s: FlapDamping, now: float) -> float:
    """The penalty at `now` (never more than it was at `d.at`)."""
    dt = now - d.at
    if dt <= 0:
        return d.value
    return float(d.value * 2.0 ** (-dt / s.half_life))


def flap(d: Damped | None, s: FlapDamping, now: float) -> Damped:
    """`d` after one more down transition at `now`: the penalty added, suppressed above
    `suppress` (a suppression under way keeps its start)."""
    value = (0.0 if d is None else decayed(d, s, now)) + s.penalty
    since = None if d is None else d.since
    if since is None and value > s.suppress:
        since = now
    return Damped(value, now, since)


def below_reuse_at(d: Damped, s: FlapDamping) -> float:
    """When the penalty falls to `reuse` (now or in the past when it already has)."""
    if d.value <= s.reuse:
        return d.at
    return d.at + s.half_life * math.log2(d.value / s.reuse)


def reuse_at(d: Damped, s: FlapDamping) -> float | None:
    """When a suppressed backend returns: its penalty below `reuse`, or `max_suppress` after
    its suppression began, whichever is first; None when it is not suppressed."""
    if d.since is None:
        return None
    return min(below_reuse_at(d, s), d.since + s.max_suppress)


def settle(d: Damped, s: FlapDamping, now: float) -> Damped:
    """`d` at `now`: no longer suppressed once its reuse time has come."""
    until = reuse_at(d, s)
    if until is not None and now >= until:
        return Damped(decayed(d, s, now), now, None)
    return d


@dataclass(frozen=True, slots=True)
class DampingStatus:
    """What readers see of one damped backend (`until`: wall-clock time it returns)."""

    penalty: float
    suppressed: bool
    until: float | None


@dataclass(frozen=True, slots=True)
class DampingChange:
    """A backend suppressed (`suppressed` True) or returned to service (False)."""

    backend: str
    suppressed: bool
    penalty: float
    at: float
    until: float | None  # monotonic time it is to return (suppressed only)

    def event(self, wall_offset: float) -> dict[str, Any]:
        return {
            "type": "damping",
            "backend": self.backend,
            "suppressed": self.suppressed,
            "penalty": round(self.penalty, 1),
            "until": None if self.until is None else round(self.until + wall_offset, 3),
        }


class Damping:
    """Flap damping of every backend whose healthcheck has `flap-damping` (reconciler thread).

    `suppressed` is a live set the engine's state encoding reads through.
    """

    def __init__(self) -> None:
        self.settings: dict[str, FlapDamping] = {}  # backend -> its healthcheck's damping
        self._check: dict[str, str] = {}  # backend -> the name of that healthcheck
        self.entries: dict[str, Damped] = {}
        self.suppressed: set[str] = set()
        self._next: float | None = None  # the earliest reuse time of a suppressed backend

    def configure(self, config: Config, now: float) -> list[DampingChange]:
        """Take `config`'s settings. A backend keeps its penalty (and suppression) while it
        keeps its healthcheck and that check keeps flap damping; the others' are dropped, and
        a suppression dropped so is returned as a change (the backend returns)."""
        settings: dict[str, FlapDamping] = {}
        checks: dict[str, str] = {}
        for name, b in config.backends.items():
            hc = config.healthchecks.get(b.healthcheck) if b.healthcheck else None
            if hc is not None and hc.flap_damping is not None and b.healthcheck is not None:
                settings[name] = hc.flap_damping
                checks[name] = b.healthcheck
        out: list[DampingChange] = []
        for name in list(self.entries):
            if name not in settings or checks[name] != self._check.get(name):
                d = self.entries.pop(name)
                if name in self.suppressed:
                    self.suppressed.discard(name)
                    out.append(DampingChange(name, False, d.value, now, None))
        self.settings, self._check = settings, checks
        out.extend(self.expire(now, force=True))  # new settings may end a suppression
        return out

    def note(self, t: Transition) -> DampingChange | None:
        """Count a transition: a down transition from up is a flap. The change when it starts
        a suppression."""
        s = self.settings.get(t.backend)
        if s is None or t.old is not BackendState.UP or t.new is not BackendState.DOWN:
            return None
        old = self.entries.get(t.backend)
        d = self.entries[t.backend] = flap(old, s, t.at)
        if d.since is None or t.backend in self.suppressed:
            return None
        self.suppressed.add(t.backend)
        until = reuse_at(d, s)
        self._next = until if self._next is None or until is None else min(self._next, until)
        return DampingChange(t.backend, True, d.value, t.at, until)

    def deadline(self) -> float | None:
        """When the next suppressed backend returns (the reconciler wakes up for it)."""
        return self._next

    def expire(self, now: float, force: bool = False) -> list[DampingChange]:
        """The suppressions over by `now` (each backend returns); penalties decayed to nothing
        are forgotten. Cheap until the next deadline unless `force`d."""
        if not force and (self._next is None or now < self._next):
            return []
        out: list[DampingChange] = []
        nxt: float | None = None
        for name, d in list(self.entries.items()):
            s = self.settings[name]
            was = d.since is not None
            d = settle(d, s, now)
            if was and d.since is None:
                self.suppressed.discard(name)
                out.append(DampingChange(name, False, d.value, now, None))
            if d.since is None and decayed(d, s, now) < FORGET:
                del self.entries[name]
                continue
            self.entries[name] = d
            until = reuse_at(d, s)
            if until is not None and (nxt is None or until < nxt):
                nxt = until
        self._next = nxt
        return out

    def status(self, now: float, wall: float) -> Mapping[str, DampingStatus]:
        """What readers see: each damped backend with a penalty (`wall`: the wall clock at
        `now`, for `until`)."""
        return MappingProxyType(
            {
                name: DampingStatus(
                    penalty=round(decayed(d, self.settings[name], now), 1),
                    suppressed=d.since is not None,
                    until=None
                    if (u := reuse_at(d, self.settings[name])) is None
                    else round(wall + (u - now), 3),
                )
                for name, d in self.entries.items()
            }
        )


def tell(
    changes: Iterable[DampingChange],
    publish: Callable[[dict[str, Any]], None],
    wall_offset: float,
) -> None:
    """Log (WARNING when suppressed, INFO when returned) and publish each change; `wall_offset`
    turns the reconciler's monotonic times into wall-clock ones."""
    for c in changes:
        if c.suppressed:
            log.warning(
                "backend %s: suppressed by flap damping (penalty %.0f above suppress): held out"
                " at weight 0 until %s, even while its checks pass",
                c.backend, c.penalty,
                "-" if c.until is None else time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(c.until + wall_offset)
                ),
            )  # fmt: skip
        else:
            log.info(
                "backend %s: flap damping reuses it (penalty %.0f): back in service when up",
                c.backend, c.penalty,
            )  # fmt: skip
        publish(c.event(wall_offset))
