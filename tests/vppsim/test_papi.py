"""Real vpp-papi against the emulator over a real Unix socket: connect, program, dump, reconnect."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from maglev.vppsim import Emulator

pytestmark = pytest.mark.integration

VIP = {"pfx": "10.0.0.1/32", "protocol": 6, "port": 80}


def test_handshake_and_basics(vpp: Any, emulator: Emulator) -> None:
    assert vpp.transport.socket_index == 0x80000001
    table = vpp.dump_message_table()
    assert table["control_ping_51077d14"] == 23
    assert table["sockclnt_create_reply_35166268"] == 16
    assert table["lb_conf_56cd3261"] == emulator.lb_base
    assert emulator.lb_base > 28
    assert vpp.api.show_version().version.startswith("26.10")
    ping = vpp.api.control_ping()
    assert ping.retval == 0 and ping.client_index == 0x80000001
    r = vpp.api.get_first_msg_id(name="lb_487dee0a")
    assert (r.retval, r.first_msg_id) == (0, emulator.lb_base)
    r = vpp.api.get_first_msg_id(name="lb_ac602d7b")
    assert r.retval == -7


def test_program_dump_disconnect_reconnect(connect: Callable[..., Any], emulator: Emulator) -> None:
    vpp = connect()
    assert vpp.api.lb_add_del_vip_v2(**VIP, encap=0, new_flows_table_length=1024).retval == 0
    assert vpp.api.lb_add_del_as_v2(**VIP, as_address="10.1.1.1", weight=100).retval == 0
    assert vpp.api.lb_add_del_as_v2(**VIP, as_address="10.1.1.2", weight=1).retval == 0
    vips = vpp.api.lb_vip_dump()
    assert len(vips) == 1
    assert vips[0].vip.pfx == ipaddress.ip_interface("10.0.0.1/32")
    assert (vips[0].vip.protocol, vips[0].vip.port, vips[0].flow_table_length) == (6, 80, 1024)
    rows = vpp.api.lb_as_v2_dump()
    assert [(str(r.app_srv), r.weight, r.num_buckets, r.flags) for r in rows] == [
        ("10.1.1.1", 100, 1013, 1),
        ("10.1.1.2", 1, 11, 1),
    ]
    assert len(vpp.api.lb_as_dump()) == 2
    assert emulator.write_count == 3
    assert vpp.disconnect().response == 1
    vpp.connect("again")
    assert vpp.transport.socket_index == 0x80000001  # the freed slot is reused
    assert len(vpp.api.lb_as_v2_dump()) == 2
    assert vpp.disconnect().response == 1


def test_lb_conf_roundtrip(vpp: Any) -> None:
    r = vpp.api.lb_conf(ip4_src_address="192.0.2.1", ip6_src_address="2001:db8::1")
    assert r.retval == 0
    got = vpp.api.lb_conf_get()
    assert str(got.ip4_src_address) == "192.0.2.1"
    assert str(got.ip6_src_address) == "2001:db8::1"
    assert (got.sticky_buckets_per_core, got.flow_timeout) == (1024, 40)
    assert vpp.api.lb_conf(sticky_buckets_per_core=1000).retval == -70
    assert vpp.api.lb_conf(sticky_buckets_per_core=0, flow_timeout=5).retval == 0
    got = vpp.api.lb_conf_get()
    # src addresses are always overwritten, even when omitted
    assert str(got.ip4_src_address) == "0.0.0.0"
    assert (got.sticky_buckets_per_core, got.flow_timeout) == (0, 5)


def test_keepalive_gets_no_reply(vpp: Any) -> None:
    with pytest.raises(Exception, match="read failed"):
        vpp.api.memclnt_keepalive(_timeout=0.3)
    assert vpp.api.control_ping().retval == 0


def test_intf_nat_unknown_interface(vpp: Any) -> None:
    assert vpp.api.lb_add_del_intf_nat4(is_add=True, sw_if_index=5).retval == -2
    assert vpp.api.lb_add_del_intf_nat6(is_add=True, sw_if_index=5).retval == -2


def test_reads_are_not_writes(vpp: Any, emulator: Emulator) -> None:
    assert vpp.api.lb_add_del_vip(**VIP).retval == 0
    assert vpp.api.lb_add_del_as_v2(**VIP, as_address="10.1.1.1", weight=0).retval == 0
    assert vpp.api.lb_add_del_as_v2(**VIP, as_address="10.1.1.1").retval == -81
    before = emulator.write_count
    vpp.api.lb_vip_dump()
    vpp.api.lb_as_v2_dump()
    vpp.api.lb_conf_get()
    vpp.api.cli_inband(cmd="show lb vips verbose")
    vpp.api.control_ping()
    assert emulator.write_count == before == 3
    ops = emulator.operations()
    assert [(o.name, o.retval) for o in ops] == [
        ("lb_add_del_vip", 0),
        ("lb_add_del_as_v2", 0),
        ("lb_add_del_as_v2", -81),
    ]
    assert ops[1].fields()["weight"] == 0
    assert ops[2].fields()["as_address.un"][:4] == bytes([10, 1, 1, 1])


def test_bootstrap_from_get_api_json(emulator: Emulator) -> None:
    from vpp_papi import VPPApiClient

    vpp = VPPApiClient(bootstrapapi=True, server_address=emulator.socket_path)
    vpp.connect("bootstrap")
    try:
        assert vpp.api.lb_add_del_vip(**VIP).retval == 0
        assert len(vpp.api.lb_vip_dump()) == 1
    finally:
        vpp.disconnect()


def test_stop_and_restart_keeps_state(connect: Callable[..., Any], emulator: Emulator) -> None:
    vpp = connect()
    assert vpp.api.lb_add_del_vip(**VIP).retval == 0
    vpp.disconnect()
    emulator.stop()
    assert not emulator.running
    emulator.start()
    assert emulator.running
    vpp.connect("again")
    assert len(vpp.api.lb_vip_dump()) == 1


def test_stopping_a_replaced_emulator_keeps_the_new_socket(
    emulator: Emulator, connect: Callable[..., Any]
) -> None:
    import os

    newer = Emulator(emulator.socket_path)
    newer.start()  # binds the path anew, as a restarted VPP would
    try:
        emulator.stop()
        assert os.path.exists(emulator.socket_path)
        vpp = connect("newer")
        assert vpp.api.control_ping().retval == 0
        vpp.disconnect()
    finally:
        newer.stop()
    assert not os.path.exists(emulator.socket_path)
