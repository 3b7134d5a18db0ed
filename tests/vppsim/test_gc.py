"""Garbage collection of deleted ASes and VIPs, driven by the injected clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.vppsim import Emulator
from tests.vppsim.lbcalls import VIP, add_as, add_vip, del_as, rows

pytestmark = pytest.mark.integration


def test_deleted_as_is_collected_after_timeout(vpp: Any, clock: ManualClock) -> None:
    add_vip(vpp)  # VPP time 0: the VIP's GC timer starts
    add_as(vpp, "10.1.0.1")
    add_as(vpp, "10.1.0.2")
    clock.advance(55)
    del_as(vpp, "10.1.0.1")  # at 55
    clock.advance(6)  # 61: the VIP may GC again, but the AS has lingered only 6 s
    assert add_as(vpp, "10.1.0.3") == 0
    assert [r[0] for r in rows(vpp)] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    clock.advance(10)  # 71: the AS is old enough but the VIP's GC ran at 61
    del_as(vpp, "10.1.0.3")
    assert [r[0] for r in rows(vpp)] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    clock.advance(51)  # 122: the periodic GC at 120 finds the VIP's GC not due (61 + 60)
    assert len(rows(vpp)) == 3
    clock.advance(60)  # 182: the periodic GC at 180 frees both
    assert rows(vpp) == [("10.1.0.2", 100, 1024, 1)]


def test_freed_slots_are_reused_lifo_with_stale_in_use_since(vpp: Any, clock: ManualClock) -> None:
    add_vip(vpp)
    for a in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
        add_as(vpp, a)
    clock.advance(3)
    del_as(vpp, "10.1.0.1")
    clock.advance(1)
    del_as(vpp, "10.1.0.3")
    clock.advance(120)
    assert [r[0] for r in rows(vpp)] == ["10.1.0.2"]
    # the last freed row slot (that of .3) is taken first; the global AS slot keeps last_used
    add_as(vpp, "10.1.0.4")
    add_as(vpp, "10.1.0.5")
    got = vpp.api.lb_as_dump()
    assert [(str(r.app_srv), r.in_use_since) for r in got] == [
        ("10.1.0.5", 3),
        ("10.1.0.2", 0),
        ("10.1.0.4", 4),
    ]


def test_deleted_vip_is_freed_with_its_ases(
    vpp: Any, emulator: Emulator, clock: ManualClock
) -> None:
    add_vip(vpp)
    add_vip(vpp, port=443)
    add_as(vpp, "10.1.0.1")
    clock.advance(5)
    assert vpp.api.lb_add_del_vip_v2(**VIP, is_del=True).retval == 0
    assert "#vips: 3" in vpp.api.cli_inband(cmd="show lb").reply
    clock.advance(60)  # 65: GC process at 60 found the VIP's own GC not yet due
    assert len(rows(vpp)) == 1
    clock.advance(60)  # 125: GC at 120 frees the AS, then the VIP
    assert rows(vpp) == []
    out = vpp.api.cli_inband(cmd="show lb").reply
    assert "#vips: 2" in out and "#ass: 0" in out
    # the freed VIP slot is reused
    assert add_vip(vpp) == 0
    assert "ip4-gre4 [1] 10.0.0.1/32" in vpp.api.cli_inband(cmd="show lb vips verbose").reply


def test_lingering_as_survives_without_time(vpp: Any, clock: ManualClock) -> None:
    add_vip(vpp)
    add_as(vpp, "10.1.0.1")
    del_as(vpp, "10.1.0.1")
    for _ in range(5):
        add_as(vpp, "10.1.0.2", weight=0)
        del_as(vpp, "10.1.0.2")
    assert [r[3] for r in rows(vpp)] == [0, 0]


def test_vip_delete_runs_the_vip_gc_first(vpp: Any, clock: ManualClock) -> None:
    add_vip(vpp)
    add_as(vpp, "10.1.0.1")
    add_as(vpp, "10.1.0.2")
    clock.advance(30)
    del_as(vpp, "10.1.0.1")  # at 30; the VIP's GC is due after 60
    clock.advance(29)  # 59: the periodic GC (at 0) has not run since; nothing freed yet
    assert len(rows(vpp)) == 2
    clock.advance(2)  # 61: the periodic GC at 60 found the VIP's GC not yet due (60 > 60 fails)
    assert vpp.api.lb_add_del_vip_v2(**VIP, is_del=True).retval == 0
    # ...but the VIP delete ran it at 61: .1 is freed, .2 lingers with the VIP
    assert rows(vpp) == [("10.1.0.2", 100, 0, 0)]
    assert vpp.api.lb_as_dump()[0].in_use_since == 61


def test_freed_vip_slot_keeps_stale_encap_args(vpp: Any, clock: ManualClock) -> None:
    assert add_vip(vpp, encap=2, dscp=10) == 0  # L3DSR
    assert vpp.api.lb_add_del_vip_v2(**VIP, is_del=True).retval == 0
    clock.advance(61)  # the periodic GC at 60 frees the VIP (it has no AS)
    assert "#vips: 1" in vpp.api.cli_inband(cmd="show lb").reply
    assert add_vip(vpp, encap=0) == 0  # GRE reuses the slot, whose union still says dscp 10
    (d,) = vpp.api.lb_vip_dump()
    assert (int(d.encap), int(d.dscp), int(d.srv_type)) == (0, 10, 0x0A000000)
