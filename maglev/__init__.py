"""maglev: health-checking control plane for the Maglev load balancer in VPP's lb plugin."""

from __future__ import annotations

__version__ = "0.1.0"
