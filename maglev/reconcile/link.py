"""The reconciler's hold on VPP: connect with backoff, notice and announce a lost connection.

`VppLink` owns when to try next, the current backoff and since when VPP has been connected; the
reconciler decides what (re)connecting means for its view of VPP (it reads everything again).
Reconciler thread only (vpp_papi is not safe to share).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from maglev.clock import Clock
from maglev.errors import VppError
from maglev.vpp.client import LbClient

log = logging.getLogger(__name__)

RECONNECT_MIN, RECONNECT_MAX = 0.5, 30.0


class VppLink:
    def __init__(
        self,
        lb: LbClient,
        clock: Clock,
        publish: Callable[[dict[str, Any]], None],
        now: float,
    ) -> None:
        self.lb = lb
        self.clock = clock
        self.publish = publish
        self.reconnect_at = now
        self.backoff = RECONNECT_MIN
        self.since: float | None = None  # wall-clock time VPP was connected; None while not

    @property
    def dropped(self) -> bool:
        """Connected by us, yet the connection has closed (VPP went away)."""
        return self.since is not None and not self.lb.connected

    def connect(self, now: float) -> bool:
        """Try to connect (not connected yet) unless backing off; True if connected now."""
        if now < self.reconnect_at:
            return False
        try:
            v = self.lb.connect()
        except VppError as e:
            self.reconnect_at = now + self.backoff
            log.warning("VPP not reachable (%s); retrying in %.1fs", e, self.backoff)
            self.backoff = min(self.backoff * 2, RECONNECT_MAX)
            return False
        self.backoff = RECONNECT_MIN
        self.since = self.clock.wall()
        log.info("connected to VPP %s (%s)", v.version, v.build_date or "build date unknown")
        self.publish({"type": "vpp", "connected": True, "version": v.version})
        return True

    def lost(self, why: str, now: float) -> None:
        """Close what is left of the connection; try again after the current backoff."""
        log.warning("lost VPP: %s", why)
        self.lb.disconnect()
        self.since = None
        self.reconnect_at = now + self.backoff
        self.publish({"type": "vpp", "connected": False, "reason": why})
