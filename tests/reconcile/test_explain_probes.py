"""`explain`'s health step shows the last few probe results with their reason codes."""

from __future__ import annotations

from maglev.daemon.api import DaemonApi
from maglev.daemon.bus import EventBus
from maglev.daemon.info import DaemonInfo
from maglev.reconcile import events
from maglev.reconcile.explain import explain
from maglev.reconcile.publish import RECENT_PROBES
from maglev.reconcile.snapshot import Snapshot
from tests.reconcile.test_damping_reconciler import Rig


class Port:
    """The one thing `DaemonApi.backend` reads of the reconciler's port: its snapshot."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    @property
    def snapshot(self) -> Snapshot:
        return self.rig.rec.snapshot


def test_the_health_step_lists_recent_probe_results() -> None:
    r = Rig(damping="")
    outcomes = [True, False, True, False, False, True, True]
    for ok in outcomes:
        r.probe("a1", ok)
        r.probe("a2", True)
        r.turn(1.0)
    st = r.rec.snapshot.backends["a1"]
    assert [p.ok for p in st.recent] == outcomes[-RECENT_PROBES:]
    (a1,) = explain(r.rec.snapshot, "www", "a1")
    (health,) = [s for s in a1.steps if s.rule == "health"]
    assert "recent L4CON L4OK L4CON L4CON L4OK L4OK" not in health.detail  # only the last five
    assert "recent L4OK L4CON L4CON L4OK L4OK" in health.detail, health.detail
    assert a1.consistent and a1.weight == 100
    info = DaemonInfo("test", 1, 0.0, "/etc/maglev.yaml", False, "/nonexistent", False, None)
    api = DaemonApi(Port(r), EventBus(), info, lambda why: events.ReloadStatus(ok=True))  # type: ignore[arg-type]
    doc = api.backend("a1")
    assert [(p["ok"], p["reason"]) for p in doc["recent_probes"]] == [
        (ok, "L4OK" if ok else "L4CON") for ok in outcomes[-RECENT_PROBES:]
    ]
