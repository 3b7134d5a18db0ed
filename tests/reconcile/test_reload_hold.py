"""The reload interlocks on the reconciler (`reloadhold`), turn by turn on `MemoryLb`: a held
reload changes nothing in VPP nor the running config and is loud; `force` applies the held
candidate; a newer file replaces the hold; VPP's counters feed the traffic rule."""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from types import MappingProxyType
from typing import Any

from maglev.model import Config
from maglev.reconcile import events
from maglev.vpp.lb import VipCounters
from tests.reconcile.test_requests import WWW, Rig, config

API = """  api:
    address: 192.0.2.81
    protocol: tcp
    port: 443
    encap: gre4
    pools:
      - {name: main, backends: {b1: {weight: 40}}}
"""
APIKEY = (ipaddress.ip_network("192.0.2.81/32"), 6, 443)


def two(counters: str = "5s") -> Config:
    return config(counters, API)


def without_frontends(base: Config) -> Config:
    return dataclasses.replace(base, frontends=MappingProxyType({}))


def reload(cfg: Config, force: bool = False) -> events.ApplyConfig:
    return events.ApplyConfig(cfg, "test", time.time(), time.perf_counter(), 0.0, force=force)


class Loud(Rig):
    def __init__(self, cfg: Config | None = None) -> None:
        super().__init__(cfg or two())
        self.events: list[dict[str, Any]] = []
        self.rec.publish = self.events.append
        self.probe("a1", True)
        self.probe("b1", True)
        self.turn()
        assert set(self.lb.tables) == {WWW, APIKEY}

    def holds(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "reload-hold"]


def test_an_empty_frontends_map_is_held_and_changes_nothing() -> None:
    r = Loud()
    running, ops = r.rec.config, len(r.lb.applied)
    status = r.ask(reload(without_frontends(running)))
    assert not status.ok and status.held
    assert status.problems == (
        "deletes 2 frontend(s), more than max-deleted-frontends 1: api, www",
    )
    r.turn(31.0)  # a full sync later: still nothing deleted
    assert r.rec.config is running and set(r.lb.tables) == {WWW, APIKEY}
    assert len(r.lb.applied) == ops
    snap = r.rec.snapshot
    assert snap.reload_hold is not None and snap.reload_hold.source == "test"
    assert snap.reload_hold.reasons == status.problems and snap.reloads_held == 1
    assert snap.last_reload == status
    assert [e["held"] for e in r.holds()] == [True]


def test_force_applies_the_held_candidate() -> None:
    r = Loud()
    empty = without_frontends(r.rec.config)
    r.ask(reload(empty))
    status = r.ask(reload(empty, force=True))
    assert status.ok and status.forced and not status.held
    r.turn()
    assert r.lb.tables == {} and r.rec.config is empty  # maglev made both VIPs: deleted
    assert r.rec.snapshot.reload_hold is None
    assert [e["held"] for e in r.holds()] == [True, False]
    assert r.holds()[-1]["why"] == "applied with --force"


def test_force_does_not_apply_a_file_that_changed_since_the_hold() -> None:
    r = Loud()
    r.ask(reload(without_frontends(r.rec.config)))
    # The file now keeps both frontends but gives www's members weight 0: all its capacity.
    newer_empty_www = _with_weight(two(), "www", 0)
    status = r.ask(reload(newer_empty_www, force=True))
    assert status.held and not status.forced
    assert status.notes[0].startswith("--force not applied: the file changed since")
    assert any("frontend www: capacity 100 -> 0" in p for p in status.problems), status.problems
    hold = r.rec.snapshot.reload_hold
    assert hold is not None and hold.config is newer_empty_www  # the newer file is what is held
    assert set(r.lb.tables) == {WWW, APIKEY} and r.lb.tables[WWW].weights


def _with_weight(cfg: Config, frontend: str, weight: int) -> Config:
    """`cfg` with every member of `frontend` at `weight`."""
    fe = cfg.frontends[frontend]
    pools = tuple(
        dataclasses.replace(
            p,
            members=tuple(dataclasses.replace(m, weight=weight) for m in p.members),
        )
        for p in fe.pools
    )
    fes = dict(cfg.frontends)
    fes[frontend] = dataclasses.replace(fe, pools=pools)
    return dataclasses.replace(cfg, frontends=MappingProxyType(fes))


def test_a_newer_good_file_replaces_the_hold_and_is_applied() -> None:
    r = Loud()
    r.ask(reload(without_frontends(r.rec.config)))
    first = r.rec.snapshot.reload_hold
    assert first is not None
    r.clock.advance(1.0)
    again = r.ask(reload(without_frontends(r.rec.config)))  # the same file read again
    hold = r.rec.snapshot.reload_hold
    assert again.held and hold is not None and hold.since == first.since
    good = config()  # api removed: one delete, within the limit
    status = r.ask(reload(good))
    assert status.ok and not status.forced
    assert r.rec.snapshot.reload_hold is None and r.rec.config is good
    r.turn()
    assert set(r.lb.tables) == {WWW}
    assert r.holds()[-1] == {
        "type": "reload-hold", "held": False, "source": "test",
        "why": "a reload passed the interlocks",
    }  # fmt: skip


def test_going_back_to_the_running_file_clears_the_hold() -> None:
    r = Loud()
    running = r.rec.config
    r.ask(reload(without_frontends(running)))
    status = r.ask(reload(two()))
    assert status.ok and status.changes == "none"
    assert r.rec.snapshot.reload_hold is None


def test_a_frontend_carrying_traffic_is_not_deleted() -> None:
    r = Loud()
    counts = (("first session packet", 5),)
    r.lb.counters = (VipCounters(APIKEY, "ip4-gre4", counts),)
    r.turn(5.0)  # the counters timer: a first read after the dump's
    r.lb.counters = (VipCounters(APIKEY, "ip4-gre4", (("first session packet", 9),)),)
    r.turn(5.0)
    status = r.ask(reload(config()))  # deletes api only: one delete is within the limit
    assert status.held and status.problems == ("deletes frontend(s) carrying traffic: api",)
    assert APIKEY in r.lb.tables
    # Once its counters stand still, the same file passes.
    r.turn(5.0)
    assert r.ask(reload(config())).ok
    r.turn()
    assert APIKEY not in r.lb.tables


def test_counters_off_the_traffic_rule_cannot_judge_and_says_so() -> None:
    r = Loud(two(counters="0s"))
    status = r.ask(reload(config(counters="0s")))
    assert status.ok
    assert status.notes == (
        "protect-busy-frontends could not judge the deleted frontend(s) api: VPP's counters "
        "have not been read twice yet",
    )


def test_preview_says_what_the_interlocks_would_do_and_holds_nothing() -> None:
    r = Loud()
    res = r.ask(events.Preview(without_frontends(r.rec.config)))
    assert res.held_by == ("deletes 2 frontend(s), more than max-deleted-frontends 1: api, www",)
    assert r.rec.snapshot.reload_hold is None and r.holds() == []
    assert r.ask(events.Preview(config())).held_by == ()


def test_a_re_pointed_backend_starts_unknown_and_its_capacity_is_judged_so() -> None:
    r = Loud()
    base = r.rec.config
    a1 = dataclasses.replace(base.backends["a1"], address=ipaddress.ip_address("10.0.0.9"))
    moved = dataclasses.replace(base, backends=MappingProxyType({**base.backends, "a1": a1}))
    # a1 starts unknown: www fails over to its backup b1 (weight 40) until a1 is probed up.
    status = r.ask(reload(moved))
    assert status.held
    assert any("frontend www: capacity 100 -> 40 (-60%)" in p for p in status.problems)
    assert r.lb.tables[WWW].weights == {ipaddress.ip_address("10.0.0.1"): 100,
                                        ipaddress.ip_address("10.0.0.2"): 0}  # fmt: skip
