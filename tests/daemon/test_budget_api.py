"""The disruption budget as readers see it: the frontend doc and status of the control API, the
`show status` line and the metrics, read from the reconciler's snapshot mid-sequence."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from maglev.cli.tables import budget_text, status_text
from maglev.daemon.api import DaemonApi
from maglev.daemon.metrics import MaglevCollector
from tests.reconcile.test_budget_reconciler import Rig


def _metrics(rig: Rig) -> dict[str, dict[str, float]]:
    port: Any = SimpleNamespace(snapshot=rig.rec.snapshot)
    collector = MaglevCollector(port, None, lambda: None)  # type: ignore[arg-type,return-value]
    return {
        f.name: {s.labels["frontend"]: s.value for s in f.samples}
        for f in collector._budget(rig.rec.snapshot)  # the budget's families alone
    }


def _api(rig: Rig) -> DaemonApi:
    port: Any = SimpleNamespace(snapshot=rig.rec.snapshot)
    info: Any = SimpleNamespace(
        pid=1, started=time.time(), dry_run=False, vpp_socket="-", embedded=False,
        config_path="-",
    )  # fmt: skip
    return DaemonApi(port, None, info, None)  # type: ignore[arg-type]


def test_docs_status_and_metrics_show_a_held_change() -> None:
    r = Rig()
    assert _api(r).frontend("www")["budget"] == {
        "max_churn": 0.05, "churn_interval": 30.0, "held": False,
    }  # fmt: skip
    assert _metrics(r)["maglev_frontend_budget_step"] == {"www": 0.0}
    r.reload(10)
    doc = _api(r).frontend("www")["budget"]
    assert (doc["held"], doc["step"], doc["target"]["a1"]) == (True, 1, 10)
    assert 0 < doc["share"] <= 0.05 and doc["next_step"]
    status = _api(r).status()
    assert [b["frontend"] for b in status["budgets"]] == ["www"]
    line = status_text(status).splitlines()[0]
    assert line.startswith(
        "disruption budget  frontend www: change held by max-churn 5%: step 1/8+, "
    )
    assert "% of buckets; next step " in line
    assert _metrics(r)["maglev_frontend_budget_step"] == {"www": 1.0}
    assert budget_text(doc).startswith("change held by max-churn 5%: step 1/8+, ")
    r.settle()
    assert _api(r).status()["budgets"] == []
    idle = _api(r).frontend("www")["budget"]
    assert budget_text(idle) == "max-churn 5% every 30s: no change held"
    assert _metrics(r)["maglev_frontend_budget_step"] == {"www": 0.0}
