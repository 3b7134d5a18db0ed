"""The startup gate: which frontends the reconciler may write to VPP yet (restart neutrality).

A freshly started maglevd knows nothing about its backends. Programming VPP from that ignorance
would set healthy backends to weight 0 until their first probe, disturbing traffic a restart
should not touch. So nothing is written for `startup-min-delay`; then each frontend is released
once every backend it names has a known state; at `startup-max-delay` everything is released (a
backend that has still not answered gets weight 0, as any unknown backend does). A frontend that
a reload adds is held the same way, up to `startup-max-delay` after the reload.

Pure state, owned by the reconciler thread; time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from maglev.model import BackendState, Config

log = logging.getLogger(__name__)


class StartupGate:
    def __init__(self, started: float) -> None:
        self.started = started
        self.released: set[str] = set()  # changed only by `reloaded` and `release`
        self._frozen: frozenset[str] | None = frozenset()
        self.hold_until: dict[str, float] = {}  # frontends added by a reload: their deadline
        self.all_released = False

    def frozen(self) -> frozenset[str]:
        """`released` as an immutable copy for snapshots, made again only after it changed."""
        if self._frozen is None:
            self._frozen = frozenset(self.released)
        return self._frozen

    def deadlines(self, config: Config) -> list[float]:
        """Times at which a release may happen without any other event."""
        if self.all_released:
            return []
        lb = config.vpp.lb
        return [
            self.started + lb.startup_min_delay,
            self.started + lb.startup_max_delay,
            *self.hold_until.values(),
        ]

    def reloaded(self, config: Config, now: float) -> None:
        """Frontends present before stay released; new ones are held until known."""
        self.released &= set(config.frontends)
        self._frozen = None
        for name in set(config.frontends) - self.released:
            self.hold_until.setdefault(name, now + config.vpp.lb.startup_max_delay)
        self.hold_until = {n: t for n, t in self.hold_until.items() if n in config.frontends}
        self.all_released = len(self.released) == len(config.frontends)

    def release(
        self, config: Config, state_of: Callable[[str], BackendState], now: float
    ) -> list[str]:
        """Release what may be released now; returns the newly released frontends."""
        if self.all_released:
            return []
        lb = config.vpp.lb
        if now - self.started < lb.startup_min_delay:
            return []
        out = []
        for name, fe in config.frontends.items():
            if name in self.released:
                continue
            deadline = self.hold_until.get(name, self.started + lb.startup_max_delay)
            if all(state_of(b) is not BackendState.UNKNOWN for b in fe.backend_names()):
                log.info("frontend %s released (all backends known)", name)
            elif now >= deadline:
                log.info(
                    "frontend %s released (hold time over; unknown backends get weight 0)", name
                )
            else:
                continue
            self.released.add(name)
            self._frozen = None
            self.hold_until.pop(name, None)
            out.append(name)
        self.all_released = len(self.released) == len(config.frontends)
        return out
