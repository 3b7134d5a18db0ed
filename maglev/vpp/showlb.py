"""The text of `show lb vips verbose`, parsed once for everything maglev reads from it.

Two things VPP reports only there: which VIPs are `src_ip_sticky` (`lb_vip_details` lacks it)
and the four per-VIP packet counters (the lb plugin does not export them to the stats segment).
Parsing is tolerant: unknown lines are skipped, a VIP line whose prefix does not parse is
ignored with its detail lines, a counter VPP does not print is absent rather than 0, and VIPs
marked `removed` are left out. Pure; called by the reconciler thread.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from maglev.model import IPNetwork
from maglev.vpp.lb import PROTO_ANY, VipCounters, VipKey

COMMAND = "show lb vips verbose"

# VPP's counter names -> the names maglev reports (metrics labels, maglevc columns).
COUNTER_NAMES = {
    "packet from existing sessions": "existing-session",
    "first session packet": "first-packet",
    "untracked packet": "untracked",
    "no server configured": "no-server",
}

_VIP = re.compile(r"^\s*(\S+) \[(\d+)\] (\S+)((?: src_ip_sticky)?)((?: removed)?)\s*$")
_PORT = re.compile(r"^\s*protocol:(\d+) port:(\d+)")
_COUNTER = re.compile(r"^\s*([a-z][a-z ]+[a-z]):\s+(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class ShownVip:
    """One live VIP as `show lb vips verbose` prints it."""

    key: VipKey
    kind: str  # "ip4-gre4", ...
    sticky: bool
    counters: tuple[tuple[str, int], ...]

    def counts(self) -> VipCounters:
        return VipCounters(self.key, self.kind, self.counters)


class _Vip:
    __slots__ = ("counters", "kind", "port", "prefix", "protocol", "removed", "sticky")

    def __init__(self, prefix: IPNetwork, kind: str, sticky: bool, removed: bool) -> None:
        self.prefix = prefix
        self.protocol = PROTO_ANY  # an all-port VIP prints no port line
        self.port = 0
        self.kind = kind
        self.sticky = sticky
        self.removed = removed
        self.counters: dict[str, int] = {}

    def shown(self) -> ShownVip:
        key = (self.prefix, self.protocol, self.port)
        return ShownVip(key, self.kind, self.sticky, tuple(self.counters.items()))


def parse(text: str) -> list[ShownVip]:
    """The live VIPs of the text, in the order VPP printed them."""
    vips: list[_Vip] = []
    cur: _Vip | None = None
    for line in text.splitlines():
        if "buckets" in line:  # an AS (most of the text): nothing is read from those lines
            continue
        m = _VIP.match(line)
        if m:
            try:
                prefix = ipaddress.ip_network(m.group(3), strict=False)
            except ValueError:
                cur = None
                continue
            cur = _Vip(prefix, m.group(1), bool(m.group(4)), bool(m.group(5)))
            vips.append(cur)
            continue
        if cur is None:
            continue
        p = _PORT.match(line)
        if p:
            cur.protocol, cur.port = int(p.group(1)), int(p.group(2))
            continue
        c = _COUNTER.match(line)
        if c and c.group(1) in COUNTER_NAMES:
            cur.counters[COUNTER_NAMES[c.group(1)]] = int(c.group(2))
    return [v.shown() for v in vips if not v.removed]


def sticky_keys(shown: list[ShownVip]) -> set[VipKey]:
    """Keys of the VIPs marked src_ip_sticky."""
    return {v.key for v in shown if v.sticky}
