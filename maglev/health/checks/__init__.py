"""The probes, one module per check type, behind one interface (`base.ProbeFunc`).

`PROBES` maps each `CheckType` to its probe coroutine function. The check workers drive them on
their reactors; `probe_once` runs one in the calling thread. `base.result` turns a finished probe
into a `ProbeResult`.
"""

from __future__ import annotations

from maglev.health.checks import dns, http, icmp, tcp
from maglev.health.checks import exec as exec_
from maglev.health.checks.base import Outcome, ProbeFunc, Progress, result
from maglev.health.checks.base import probe_once as _probe_once
from maglev.model import CheckType, HealthCheck, ProbeResult, ProbeTarget

PROBES: dict[CheckType, ProbeFunc] = {
    CheckType.TCP: tcp.probe,
    CheckType.HTTP: http.probe,
    CheckType.HTTPS: http.probe,
    CheckType.ICMP: icmp.probe,
    CheckType.DNS: dns.probe,
    CheckType.EXEC: exec_.probe,
}


def probe_once(target: ProbeTarget, check: HealthCheck) -> ProbeResult:
    """Probe `target` once with `check`, in the calling thread."""
    return _probe_once(PROBES[check.type], target, check)


__all__ = ["PROBES", "Outcome", "ProbeFunc", "Progress", "probe_once", "result"]
