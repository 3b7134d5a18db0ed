"""Per-VIP lb counters, parsed from `show lb vips verbose`.

The lb plugin keeps four simple counters per VIP but does not export them to the stats segment
(only node error counters are there), so the CLI text is the one source. Parsing is tolerant:
unknown lines are skipped, and a counter VPP does not print reads as absent rather than 0.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from maglev.vpp.papi import VppConnection

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


def parse_vip_counters(text: str) -> list[dict[str, Any]]:
    vips: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _VIP.match(line)
        if m:
            try:
                prefix = ipaddress.ip_network(m.group(3), strict=False)
            except ValueError:
                cur = None
                continue
            cur = {
                "prefix": str(prefix),
                "protocol": 255,
                "port": 0,
                "type": m.group(1),
                "removed": bool(m.group(5)),
                "counters": {},
            }
            vips.append(cur)
            continue
        if cur is None:
            continue
        p = _PORT.match(line)
        if p:
            cur["protocol"], cur["port"] = int(p.group(1)), int(p.group(2))
            continue
        c = _COUNTER.match(line)
        if c and c.group(1) in COUNTER_NAMES:
            cur["counters"][COUNTER_NAMES[c.group(1)]] = int(c.group(2))
    return [v for v in vips if not v["removed"]]


def read_vip_counters(conn: VppConnection) -> list[dict[str, Any]]:
    return parse_vip_counters(conn.cli("show lb vips verbose"))
