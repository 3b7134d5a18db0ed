"""VPP's lb node error counters (`/err/lb*/...`), read from the stats segment with vpp-papi.

`LbErrorReader` is called on the `maglev-metrics` thread during a scrape. It opens vpp-papi's
`VPPStats` on the configured stats socket for each read (cheap: one socket round trip and an
mmap) so a restarted VPP, whose segment is a new memory file, is seen at the next scrape; any
failure is logged at debug level and yields no counters, never an exception. The lb plugin does
not export its per-VIP counters to the stats segment; those still come from the CLI text.
"""

from __future__ import annotations

import logging
import threading

from vpp_papi.vpp_stats import VPPStats

log = logging.getLogger(__name__)

PATTERN = "^/err/lb[46]?-"  # lb4-*, lb6-* and lb-nat4-in2out, lb-nat6-in2out


class LbErrorReader:
    """Reads `{(node, counter): value}` for every `/err/lb*` entry of the stats segment."""

    def __init__(self, socket_path: str, timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._lock = threading.Lock()

    def read(self) -> dict[tuple[str, str], int]:
        """The lb node error counters summed over threads; empty when the segment is away."""
        with self._lock:
            stats = VPPStats(self.socket_path, self.timeout)
            try:
                stats.connect()
                names = stats.ls([PATTERN])
                out: dict[tuple[str, str], int] = {}
                for name in names:
                    _, _, node, counter = name.split("/", 3)
                    out[(node, counter)] = int(stats[name].sum())
                return out
            except Exception as exc:
                log.debug("VPP stats segment %s unreadable: %s", self.socket_path, exc)
                return {}
            finally:
                stats.disconnect()
