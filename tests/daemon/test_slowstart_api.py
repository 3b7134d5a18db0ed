"""Slow start as readers see it: the frontend and backend docs of the control API and the
metric, read from the reconciler's snapshot while a backend ramps (in-memory lb, manual clock)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from maglev.daemon.api import DaemonApi
from maglev.daemon.metrics import MaglevCollector
from tests.reconcile.test_slowstart import Rig


def _step_metric(rig: Rig) -> dict[tuple[str, str], float]:
    port: Any = SimpleNamespace(snapshot=rig.rec.snapshot)
    collector = MaglevCollector(port, None, lambda: None)  # type: ignore[arg-type,return-value]
    for family in collector.collect():
        if family.name == "maglev_backend_slow_start_step":
            return {(s.labels["frontend"], s.labels["backend"]): s.value for s in family.samples}
    raise AssertionError("no maglev_backend_slow_start_step")


def test_docs_and_metric_show_the_ramp() -> None:
    r = Rig()
    r.warm()
    r.turns("a1", False)
    r.turns("a1", True)
    r.turn(10.0)
    port: Any = SimpleNamespace(snapshot=r.rec.snapshot)
    api = DaemonApi(port, None, None, None)  # type: ignore[arg-type]
    rows = {row["name"]: row for row in api.frontend("www")["backends"]}
    ramp = rows["a1"]["slow_start"]
    assert {k: ramp[k] for k in ("step", "steps", "weight")} == {
        "step": 2, "steps": 4, "weight": 50,
    }  # fmt: skip
    assert ramp["until"] == round(r.clock.wall() + 20.0, 3)
    assert rows["a1"]["effective_weight"] == 50
    assert rows["a1"]["reason"] == "slow start: active pool primary"
    assert rows["a2"]["slow_start"] is None
    assert api.backend("a1")["slow_start"] == {"www": ramp}
    assert _step_metric(r) == {("www", "a1"): 2.0, ("www", "a2"): 0.0, ("www", "a3"): 0.0}
    r.turn(20.0)
    assert _step_metric(r)[("www", "a1")] == 0.0
