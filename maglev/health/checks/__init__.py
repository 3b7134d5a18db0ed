"""The probes, one module per check type, behind one interface (`base.ProbeFunc`).

`PROBES` maps each `CheckType` to its probe coroutine; `base.run` runs one within its deadline.
Called on the check worker threads' event loops.
"""

from __future__ import annotations

from maglev.health.checks import dns, http, icmp, tcp
from maglev.health.checks import exec as exec_
from maglev.health.checks.base import Outcome, ProbeFunc, Progress, run
from maglev.model import CheckType

PROBES: dict[CheckType, ProbeFunc] = {
    CheckType.TCP: tcp.probe,
    CheckType.HTTP: http.probe,
    CheckType.HTTPS: http.probe,
    CheckType.ICMP: icmp.probe,
    CheckType.DNS: dns.probe,
    CheckType.EXEC: exec_.probe,
}

__all__ = ["PROBES", "Outcome", "ProbeFunc", "Progress", "run"]
