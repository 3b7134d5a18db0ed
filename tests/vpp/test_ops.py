"""Plan ops and the plan as text: what the log and `maglevc plan` show before VPP is touched."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from maglev.model import Encap
from maglev.vpp.lb import ENCAP_CODE, ENCAP_OF_CODE, vip_text
from maglev.vpp.ops import (
    AddAs,
    CreateVip,
    DeleteAs,
    DeleteVip,
    Plan,
    SetWeight,
)

NET = ipaddress.ip_network("192.0.2.1/32")
NET6 = ipaddress.ip_network("2001:db8::/64")
A = ipaddress.ip_address("10.0.0.1")

OPS = (
    CreateVip(NET, 6, 80, Encap.GRE4, 0, True, 1024),
    AddAs(NET, 6, 80, A, 100),
    SetWeight(NET, 6, 80, A, 0, True),
    SetWeight(NET, 6, 80, A, 50),
    DeleteAs(NET, 6, 80, A),
    DeleteVip(NET, 6, 80),
)


def test_ops_print_as_one_line_each() -> None:
    assert [str(op) for op in OPS] == [
        "create vip 192.0.2.1/32 tcp:80 encap gre4 dscp 0 src-ip-sticky yes flow-table 1024",
        "add as 192.0.2.1/32 tcp:80 10.0.0.1 weight 100",
        "set weight 192.0.2.1/32 tcp:80 10.0.0.1 weight 0 flush",
        "set weight 192.0.2.1/32 tcp:80 10.0.0.1 weight 50",
        "delete as 192.0.2.1/32 tcp:80 10.0.0.1 flush",
        "delete vip 192.0.2.1/32 tcp:80",
    ]


def test_vip_text_protocols() -> None:
    assert vip_text(NET6, 17, 53) == "2001:db8::/64 udp:53"
    assert vip_text(NET, 255, 0) == "192.0.2.1/32 any"
    assert vip_text(NET, 47, 0) == "192.0.2.1/32 47:0"


def test_ops_are_frozen_values_keyed_by_vip() -> None:
    op = AddAs(NET, 6, 80, A, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.weight = 1  # type: ignore[misc]
    assert op.vip == (NET, 6, 80)
    assert op == AddAs(NET, 6, 80, A, 100) and hash(op) == hash(AddAs(NET, 6, 80, A, 100))
    assert {o.vip for o in OPS} == {(NET, 6, 80)}


def test_plan_counts_summary_and_lines() -> None:
    plan = Plan(OPS, ((NET6, 6, 443),))
    assert len(plan) == 6 and plan
    assert plan.counts == {
        "create_vip": 1,
        "add_as": 1,
        "set_weight": 2,
        "delete_as": 1,
        "delete_vip": 1,
        "unmanaged": 1,
    }
    assert plan.summary() == (
        "plan: 6 ops (create_vip 1, add_as 1, set_weight 2, delete_as 1, delete_vip 1); 1 unmanaged"
    )
    lines = plan.lines()
    assert lines[:6] == [str(op) for op in OPS]
    assert lines[6] == "unmanaged vip 2001:db8::/64 tcp:443 (left alone)"


def test_empty_plan() -> None:
    plan = Plan()
    assert not plan and plan.summary() == "plan: 0 ops" and plan.lines() == []
    assert set(plan.counts.values()) == {0}


def test_encap_codes_match_vpp_lb_encap_type() -> None:
    # lb_types.api: GRE4 0, GRE6 1, L3DSR 2, NAT4 3, NAT6 4.
    assert [
        ENCAP_CODE[e] for e in (Encap.GRE4, Encap.GRE6, Encap.L3DSR, Encap.NAT4, Encap.NAT6)
    ] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert all(ENCAP_OF_CODE[c] is e for e, c in ENCAP_CODE.items())
