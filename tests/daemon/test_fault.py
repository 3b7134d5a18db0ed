"""The fault run at smoke size: restarts, crashes, a VPP restart, malformed requests, bad configs.

`benchmarks.fault` does the work (and `maglev-bench fault` runs it at a larger size); this test
asserts what it found: zero VPP writes across restarts, VPP re-programmed after its restart, no
5xx, non-JSON answer or hang for any malformed request, every invalid config rejected without a
VPP write, and no traceback in the daemon's log. The seed is printed so a failure reproduces.
"""

from __future__ import annotations

import pytest

from benchmarks.fault import SMOKE, run_faults

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_fault_run_at_smoke_size() -> None:
    report = run_faults(SMOKE)
    print(f"fault run seed {report.seed}: answers {report.statuses}")
    assert report.restarts == SMOKE.restarts + SMOKE.crashes
    assert report.requests == SMOKE.requests
    assert report.configs == SMOKE.configs
    assert report.installs == SMOKE.installs, "too few invalid configs to install"
    assert report.problems() == [], f"seed {report.seed}"
    # the run really exercised the error paths: most malformed requests got a 4xx
    four = sum(n for code, n in report.statuses.items() if code.startswith("4"))
    assert four > SMOKE.requests // 2, report.statuses
