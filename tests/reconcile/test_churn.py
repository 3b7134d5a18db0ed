"""The churn report of a plan: its text, its API shape, and what it computes (pure units)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from maglev.config import load_text
from maglev.model import Config
from maglev.reconcile import churn as churn_mod
from maglev.reconcile.churn import (
    BackendMoves,
    ChurnReport,
    FrontendChurn,
    FrontendIndex,
    between,
    plan_churn,
)
from maglev.table import maglev_table
from maglev.vpp.lb import Actual, ActualVip, VipAttrs, frontend_key
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, DeleteVip, Plan, SetWeight

CONFIG = """
vpp: {{api-socket: /nonexistent, lb: {{ip4-src-address: 198.51.100.1}}}}
backends:
  web1: {{address: 10.0.0.1}}
  web2: {{address: 10.0.0.2}}
  web3: {{address: 10.0.0.3}}
  web4: {{address: 10.0.0.4}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    flow-table-length: {length}
    pools:
      - {{name: primary, backends: {{web1: {{weight: 100}}, web2: {{weight: 100}}}}}}
      - {{name: backup, backends: {{web3: {{weight: 100}}, web4: {{weight: 100}}}}}}
"""
IP = {f"web{i}": ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 5)}


def config(length: int = 1024) -> Config:
    return load_text(CONFIG.format(length=length))


def actual_of(cfg: Config, weights: dict[str, int]) -> Actual:
    fe = cfg.frontends["www"]
    attrs = VipAttrs.of(0, 0, False, fe.flow_table_length)
    return {frontend_key(fe): ActualVip(attrs, {IP[n]: w for n, w in weights.items()})}


def test_the_line_names_share_moves_and_capacity() -> None:
    f = FrontendChurn(
        "www", "update", 1024, 128,
        (BackendMoves("web3", 128, 0), BackendMoves("web1", 0, 64), BackendMoves("web2", 0, 64)),
        100.0, 75.0,
    )  # fmt: skip
    assert f.line() == (
        "www: 12.5% of buckets move (128/1024); web3 +128, web1 -64, web2 -64; capacity 100% -> 75%"
    )
    assert f.brief() == "www: 12.5% of buckets move; web3 +128, web1 -64, web2 -64"
    more = FrontendChurn("www", "create", 8, 8, (*f.backends, BackendMoves("web4", 3, 1)), None, 1)
    assert (
        more.brief() == "www (new): 100.0% of buckets move; web3 +128, web1 -64, web2 -64 (+1 more)"
    )
    assert more.line().endswith("web4 +3/-1")  # no capacity when it is not known
    assert FrontendChurn("x", "update", 65536, 1, (), 1, 1).line().startswith("x: <0.1% of")


def test_the_report_summary_and_docs() -> None:
    assert ChurnReport().summary() == "churn: no frontend's buckets move"
    f = FrontendChurn("www", "update", 1024, 128, (BackendMoves("web3", 128, 0),), 200 / 3, 75.0)
    g = FrontendChurn("api", "delete", 1024, 64, (BackendMoves("a", 0, 64),), 50.0, 0.0)
    r = ChurnReport((g, f))
    assert r.summary() == "churn: 2 frontends, 192 of 2048 buckets move (9.4%)"
    assert r.lines() == [g.line(), f.line()]
    assert r.docs()[1] == {
        "frontend": "www",
        "text": f.line(),
        "change": "update",
        "buckets": 1024,
        "moved": 128,
        "share": 0.125,
        "backends": [{"name": "web3", "gained": 128, "lost": 0}],
        "capacity": {"before": 66.667, "after": 75.0},
    }


def test_a_failover_previews_its_moves_without_touching_the_view() -> None:
    cfg = config()
    actual = actual_of(cfg, {"web1": 100, "web2": 100, "web3": 0, "web4": 0})
    key = frontend_key(cfg.frontends["www"])
    net, proto, port = key
    plan = Plan(
        (
            SetWeight(net, proto, port, IP["web3"], 100),
            SetWeight(net, proto, port, IP["web4"], 100),
            SetWeight(net, proto, port, IP["web1"], 0, True),
            SetWeight(net, proto, port, IP["web2"], 0, True),
        )
    )
    (f,) = plan_churn(plan, actual, FrontendIndex(cfg)).frontends
    assert (f.frontend, f.change, f.size, f.moved) == ("www", "update", 1024, 1024)
    assert {b.name: (b.gained, b.lost) for b in f.backends} == {
        "web3": (512, 0), "web4": (512, 0), "web1": (0, 512), "web2": (0, 512),
    }  # fmt: skip
    assert (f.capacity_before, f.capacity_after) == (100.0, 100.0)
    assert actual[key].weights[IP["web1"]] == 100  # the view is untouched


def test_only_frontends_whose_weights_change_pay_for_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = config()
    actual = actual_of(cfg, {"web1": 100, "web2": 0})
    net, proto, port = frontend_key(cfg.frontends["www"])
    calls: list[Any] = []
    monkeypatch.setattr(churn_mod, "churn", lambda *a: calls.append(a))
    # A flush of a backend already at 0 and an AS added at weight 0 move nothing.
    plan = Plan(
        (SetWeight(net, proto, port, IP["web2"], 0, True), AddAs(net, proto, port, IP["web3"], 0))
    )
    assert plan_churn(plan, actual, FrontendIndex(cfg)) == ChurnReport()
    assert calls == []


def test_created_deleted_and_resized_vips() -> None:
    small, big = config(64), config(256)
    key = frontend_key(big.frontends["www"])
    net, proto, port = key
    index = FrontendIndex(big, small)
    create = CreateVip(net, proto, port, big.frontends["www"].encap, 0, False, 256)
    plan = Plan((create, AddAs(net, proto, port, IP["web1"], 100)))
    (f,) = plan_churn(plan, {}, index).frontends
    assert (f.change, f.moved, f.backends) == ("create", 256, (BackendMoves("web1", 256, 0),))
    before = actual_of(small, {"web1": 100, "web2": 100})
    (f,) = plan_churn(Plan((DeleteVip(net, proto, port),)), before, index).frontends
    assert (f.change, f.size, f.moved, f.capacity_after) == ("delete", 64, 64, 0.0)
    # Re-created at 256 buckets: bucket i of the new table against bucket i mod 64 of the old.
    plan = Plan(
        (
            DeleteAs(net, proto, port, IP["web1"]),
            DeleteAs(net, proto, port, IP["web2"]),
            DeleteVip(net, proto, port),
            create,
            AddAs(net, proto, port, IP["web1"], 100),
            AddAs(net, proto, port, IP["web3"], 100),
        )
    )
    (f,) = plan_churn(plan, before, index).frontends
    old = maglev_table([(IP["web1"], 100), (IP["web2"], 100)], 64)
    new = maglev_table([(IP["web1"], 100), (IP["web3"], 100)], 256)
    assert (f.change, f.size) == ("re-create", 256)
    assert f.moved == sum(1 for i in range(256) if old[i % 64] != new[i])
    moves = {b.name: (b.gained, b.lost) for b in f.backends}
    assert moves["web2"] == (0, 4 * old.count(IP["web2"]))


def test_an_unmanaged_vip_is_named_by_its_key_without_capacity() -> None:
    cfg = config()
    other = (ipaddress.ip_network("203.0.113.1/32"), 6, 443)
    before: Actual = {other: ActualVip(VipAttrs.of(0, 0, False, 64), {IP["web1"]: 1})}
    report = between([other], before, {}, FrontendIndex(cfg))
    (f,) = report.frontends
    assert f.frontend == "203.0.113.1/32 tcp:443" and f.capacity_before is None
    assert f.backends == (BackendMoves("10.0.0.1", 0, 64),)  # not maglev's VIP: not its backends


def test_a_spent_budget_counts_the_rest_without_tables() -> None:
    cfg = config()
    actual = actual_of(cfg, {"web1": 100, "web2": 100})
    net, proto, port = frontend_key(cfg.frontends["www"])
    plan = Plan((SetWeight(net, proto, port, IP["web2"], 0),))
    vips, recreated = churn_mod.touched(plan.ops)
    after = churn_mod.side(actual, vips)
    after[(net, proto, port)].weights[IP["web2"]] = 0
    report = between(vips, actual, after, FrontendIndex(cfg), recreated, budget=0.0)
    assert (report.frontends, report.skipped) == ((), 1)
    assert report.summary() == (
        "churn: no frontend's buckets move; 1 more not computed (over the time budget)"
    )
    assert between(vips, actual, after, FrontendIndex(cfg), budget=10.0).frontends[0].moved == 512
