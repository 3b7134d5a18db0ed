"""What the daemon knows about itself, fixed at start: a frozen value the readers share.

The control API and the metrics collector show these next to the reconciler's snapshot; they get
this value and a `maglev.reconcile.port.ReconcilerPort`, never the runtime itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    version: str
    pid: int
    started: float  # wall-clock time maglevd started
    config_path: str
    dry_run: bool
    vpp_socket: str  # the API socket maglevd uses (the embedded emulator's when embedded)
    embedded: bool
    stats_socket: str | None  # VPP's stats segment socket, None when not configured
