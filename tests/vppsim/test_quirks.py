"""The lb plugin's observable quirks, as a real VPP 26.10 shows them, through vpp-papi."""

from __future__ import annotations

from typing import Any

import pytest

from maglev.vppsim import Emulator
from tests.vppsim.lbcalls import V4_FILTER, VIP, add_as, add_vip, del_as, rows

pytestmark = pytest.mark.integration


def test_duplicate_and_missing(vpp: Any) -> None:
    assert add_vip(vpp) == 0
    assert add_vip(vpp) == -81
    assert add_vip(vpp, encap=1) == -81
    assert vpp.api.lb_add_del_vip(pfx="10.0.0.9/32", protocol=6, port=80, is_del=True).retval == -6
    assert add_as(vpp, "10.1.0.1") == 0
    assert add_as(vpp, "10.1.0.1", weight=50) == -81  # weight is not updated either
    assert rows(vpp) == [("10.1.0.1", 100, 1024, 1)]
    assert add_as(vpp, "10.1.0.2", pfx="10.0.0.9/32") == -6
    assert del_as(vpp, "10.1.0.99") == -6
    r = vpp.api.lb_as_set_weight(**VIP, as_address="10.1.0.99", weight=5)
    assert r.retval == -6


def test_weight_above_100_is_accepted(vpp: Any) -> None:
    add_vip(vpp)
    assert add_as(vpp, "10.1.0.1", weight=101) == 0
    assert vpp.api.lb_as_set_weight(**VIP, as_address="10.1.0.1", weight=200).retval == 0
    assert rows(vpp) == [("10.1.0.1", 200, 1024, 1)]


def test_port_zero_means_all_ports(vpp: Any) -> None:
    assert add_vip(vpp, pfx="10.0.0.5/32", protocol=6, port=0) == 0
    (d,) = vpp.api.lb_vip_dump()
    assert (d.vip.protocol, d.vip.port) == (255, 0)
    # any protocol with port 0 finds it
    assert add_as(vpp, "10.1.0.1", pfx="10.0.0.5/32", protocol=17, port=0) == 0
    # a port VIP under an all-port VIP, and the reverse
    assert add_vip(vpp, pfx="10.0.0.5/32", protocol=6, port=443) == -81
    assert add_vip(vpp) == 0
    assert add_vip(vpp, port=0) == -81
    # the all-port VIP is only matched by a dump filter of protocol 255, port 0
    assert rows(vpp, pfx="::10.0.0.5/128", protocol=17, port=0) == []
    assert len(rows(vpp, pfx="::10.0.0.5/128", protocol=255, port=0)) == 1


def test_port_vips_of_one_prefix_must_share_type(vpp: Any) -> None:
    assert add_vip(vpp) == 0
    assert add_vip(vpp, port=443, encap=1) == -73
    assert add_vip(vpp, port=443, encap=0) == 0


def test_prefix_normalisation(vpp: Any) -> None:
    assert add_vip(vpp, pfx="10.9.1.7/24") == 0
    (d,) = vpp.api.lb_vip_dump()
    assert str(d.vip.pfx) == "10.9.1.0/24"
    assert add_as(vpp, "10.1.0.1", pfx="10.9.1.99/24") == 0


def test_ipv4_compatible_form_is_the_ipv4_vip(vpp: Any) -> None:
    assert add_vip(vpp) == 0
    assert add_vip(vpp, pfx="::10.0.0.1/128") == -81
    assert add_as(vpp, "10.1.0.1", pfx="::10.0.0.1/128") == 0
    assert rows(vpp, **V4_FILTER) == [("10.1.0.1", 100, 1024, 1)]


def test_ipv4_dump_filter_returns_nothing(vpp: Any) -> None:
    add_vip(vpp)
    add_as(vpp, "10.1.0.1")
    assert rows(vpp, **VIP) == []
    assert len(rows(vpp, **V4_FILTER)) == 1
    assert len(rows(vpp)) == 1
    assert len(vpp.api.lb_as_dump(**VIP)) == 0
    v6 = {"pfx": "2001:db8::1/128", "protocol": 17, "port": 53}
    assert vpp.api.lb_add_del_vip(**v6, encap=1).retval == 0
    assert vpp.api.lb_add_del_as_v2(**v6, as_address="2001:db8:1::1").retval == 0
    assert len(rows(vpp, **v6)) == 1
    assert len(rows(vpp, **{**v6, "protocol": 6})) == 0


def test_address_family_checks(vpp: Any) -> None:
    # IPv4 VIP with an IPv6-only encap
    assert add_vip(vpp, encap=4) == -97
    assert add_vip(vpp, encap=7) == -97
    # the AS family must match the encap family, not the VIP family
    v6 = {"pfx": "2001:db8::1/128", "protocol": 17, "port": 53}
    assert vpp.api.lb_add_del_vip(**v6, encap=0).retval == 0  # ip6-gre4
    assert vpp.api.lb_add_del_as_v2(**v6, as_address="2001:db8:1::1").retval == -97
    assert vpp.api.lb_add_del_as_v2(**v6, as_address="10.1.0.1").retval == 0
    # IPv6 VIP with an IPv4-only encap is silently accepted as ip6-gre6
    v6b = {**v6, "pfx": "2001:db8::2/128"}
    assert vpp.api.lb_add_del_vip(**v6b, encap=3).retval == 0
    encaps = {str(d.vip.pfx): int(d.encap) for d in vpp.api.lb_vip_dump()}
    assert encaps == {"2001:db8::1/128": 0, "2001:db8::2/128": 1}


def test_table_length_checks(vpp: Any, emulator: Emulator) -> None:
    assert add_vip(vpp, new_flows_table_length=1000) == -70
    # 0 crashes a real VPP; the emulator refuses it and keeps serving
    assert add_vip(vpp, new_flows_table_length=0) == -70
    assert vpp.api.control_ping().retval == 0
    assert add_vip(vpp, new_flows_table_length=1) == 0
    assert add_as(vpp, "10.1.0.1") == 0
    assert add_as(vpp, "10.1.0.2") == 0
    assert sorted(r[2] for r in rows(vpp)) == [0, 1]
    # flow_table_length is a u16 in lb_vip_details
    assert add_vip(vpp, port=443, new_flows_table_length=65536) == 0
    lengths = sorted(d.flow_table_length for d in vpp.api.lb_vip_dump())
    assert lengths == [0, 1]


def test_l3dsr_dscp_and_srv_type_share_a_byte(vpp: Any) -> None:
    assert add_vip(vpp, encap=2, dscp=10) == 0
    (d,) = vpp.api.lb_vip_dump()
    assert (int(d.encap), int(d.dscp), int(d.srv_type)) == (2, 10, 0x0A000000)


def test_nat_vip_fields(vpp: Any) -> None:
    assert add_vip(vpp, encap=3, type=1, target_port=8080) == 0
    (d,) = vpp.api.lb_vip_dump()
    # NODEPORT arrives byte-swapped as CLUSTERIP; target_port comes back byte-swapped
    assert (int(d.encap), int(d.srv_type), d.target_port) == (3, 0, 0x901F)


def test_flush_vip_on_missing_vip_returns_0(vpp: Any) -> None:
    assert vpp.api.lb_flush_vip(pfx="10.0.0.99/32", protocol=6, port=80).retval == 0


def test_lingering_as_and_readd(vpp: Any, emulator: Emulator, clock: Any) -> None:
    add_vip(vpp)
    for a in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
        assert add_as(vpp, a) == 0
    clock.advance(5)
    assert del_as(vpp, "10.1.0.2") == 0
    assert rows(vpp) == [
        ("10.1.0.1", 100, 512, 1),
        ("10.1.0.2", 100, 0, 0),
        ("10.1.0.3", 100, 512, 1),
    ]
    assert {r.app_srv.compressed: r.in_use_since for r in vpp.api.lb_as_dump()}["10.1.0.2"] == 5
    # set_weight on a lingering AS fails; deleting it again succeeds
    assert vpp.api.lb_as_set_weight(**VIP, as_address="10.1.0.2", weight=5).retval == -6
    assert del_as(vpp, "10.1.0.2") == 0
    # re-adding reuses the lingering row (position and in_use_since) with the new weight
    assert add_as(vpp, "10.1.0.2", weight=50) == 0
    got = vpp.api.lb_as_v2_dump()
    assert [(str(r.app_srv), r.weight, r.flags) for r in got] == [
        ("10.1.0.1", 100, 1),
        ("10.1.0.2", 50, 1),
        ("10.1.0.3", 100, 1),
    ]
    assert got[1].in_use_since == 5


def test_weight_zero_keeps_as_with_no_buckets(vpp: Any) -> None:
    add_vip(vpp)
    assert add_as(vpp, "10.1.0.1", weight=0) == 0
    assert rows(vpp) == [("10.1.0.1", 0, 0, 1)]
    assert add_as(vpp, "10.1.0.2", weight=7) == 0
    assert vpp.api.lb_as_set_weight(**VIP, as_address="10.1.0.1", weight=100).retval == 0
    assert rows(vpp) == [("10.1.0.1", 100, 954, 1), ("10.1.0.2", 7, 70, 1)]


def test_deleted_vip_hidden_but_its_ases_linger(vpp: Any) -> None:
    add_vip(vpp)
    add_as(vpp, "10.1.0.1")
    assert vpp.api.lb_add_del_vip_v2(**VIP, is_del=True).retval == 0  # with ASes: succeeds
    assert vpp.api.lb_vip_dump() == []
    assert rows(vpp) == [("10.1.0.1", 100, 0, 0)]
    assert add_as(vpp, "10.1.0.2") == -6
    assert vpp.api.lb_add_del_vip_v2(**VIP, is_del=True).retval == -6
    # re-adding the VIP before GC: old lingering rows and new rows under the same key
    assert add_vip(vpp) == 0
    assert add_as(vpp, "10.1.0.1") == 0
    assert rows(vpp, **V4_FILTER) == [("10.1.0.1", 100, 0, 0), ("10.1.0.1", 100, 1024, 1)]


def test_v1_add_as_uses_weight_100(vpp: Any) -> None:
    add_vip(vpp)
    assert vpp.api.lb_add_del_as(**VIP, as_address="10.1.0.1").retval == 0
    assert rows(vpp) == [("10.1.0.1", 100, 1024, 1)]
    assert vpp.api.lb_add_del_as(**VIP, as_address="10.1.0.1", is_del=True).retval == 0
    assert rows(vpp) == [("10.1.0.1", 100, 0, 0)]


def test_src_ip_sticky_only_in_cli(vpp: Any) -> None:
    assert add_vip(vpp, src_ip_sticky=True) == 0
    (d,) = vpp.api.lb_vip_dump()
    assert not hasattr(d, "src_ip_sticky")
    out = vpp.api.cli_inband(cmd="show lb vips verbose").reply
    assert "10.0.0.1/32 src_ip_sticky" in out


def test_unknown_address_family_decodes_as_zero(vpp: Any, emulator: Emulator) -> None:
    from tests.vppsim.wire import RawClient

    raw = RawClient(emulator.socket_path)
    raw.handshake()
    # af 2 is neither IPv4 nor IPv6: the address stays zero and len gets no +96, so /128 of
    # zeros passes the IPv4 test (plen >= 96, twelve zero bytes) and becomes 0.0.0.0/32
    raw.send(raw.pack("lb_add_del_vip", 9, 2, b"\xaa" * 16, 128, 6, 80, 1, 0, 0, 0, 0, 1024, 0))
    body = raw.recv()
    assert body is not None
    assert raw.unpack("lb_add_del_vip_reply", body)[1:] == (9, 0)
    (d,) = vpp.api.lb_vip_dump()
    assert (str(d.vip.pfx), int(d.encap)) == ("0.0.0.0/32", 1)
    raw.close()
