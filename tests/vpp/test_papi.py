"""maglev's VPP connection, batches, codec and dumper against the emulator over a real socket."""

from __future__ import annotations

import ipaddress
import pathlib
from collections.abc import Iterator

import pytest

from maglev.errors import VppApiError, VppError
from maglev.vpp import apidefs, codec, showlb
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.papi import LbCall, VppConnection
from maglev.vppsim import Emulator

pytestmark = pytest.mark.integration

VIP = ipaddress.ip_network("192.0.2.80/32")


@pytest.fixture
def emu(tmp_path: pathlib.Path) -> Iterator[Emulator]:
    e = Emulator(str(tmp_path / "api.sock"))
    e.start()
    yield e
    e.stop()


@pytest.fixture
def conn(emu: Emulator, tmp_path: pathlib.Path) -> Iterator[VppConnection]:
    c = VppConnection(emu.socket_path, apidefs.generate(tmp_path / "defs"), read_timeout=3)
    c.connect()
    yield c
    c.disconnect()


def _vip(conn: VppConnection, **kw: object) -> None:
    args = dict(pfx=VIP, protocol=6, port=80, encap=0, new_flows_table_length=1024)
    args.update(kw)
    conn.call("lb_add_del_vip_v2", **args)


def test_connect_version_and_checked_calls(conn: VppConnection) -> None:
    v = conn.show_version()
    assert v.version
    _vip(conn)
    with pytest.raises(VppApiError) as e:
        _vip(conn)  # the same VIP again
    assert e.value.retval == -81
    assert "lb_add_del_vip_v2" in str(e.value) and "VALUE_EXIST" in str(e.value)


def test_connect_failure_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    c = VppConnection(str(tmp_path / "nothing.sock"), apidefs.generate(tmp_path / "d"))
    with pytest.raises(VppError, match=r"cannot connect to VPP API socket .*nothing\.sock"):
        c.connect()
    assert not c.connected


def test_pipeline_batches_and_retvals(conn: VppConnection, emu: Emulator) -> None:
    _vip(conn)
    addrs = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 33)]
    vip = {"pfx": VIP, "protocol": 6, "port": 80}
    adds = [LbCall("lb_add_del_as_v2", {**vip, "as_address": a, "weight": 100}) for a in addrs]
    before = emu.write_count
    res = conn.pipeline(adds)
    assert [r.retval for r in res] == [0] * 32
    assert emu.write_count - before == 32
    sets = [
        LbCall("lb_as_set_weight", {**vip, "as_address": a, "weight": i % 101, "is_flush": False})
        for i, a in enumerate(addrs * 40)  # 1,280 calls: more than one window
    ]
    res = conn.pipeline(sets)
    assert len(res) == len(sets) and all(r.ok for r in res)
    # Errors are reported per call, in order, and do not stop the batch.
    mixed = [
        LbCall("lb_add_del_as_v2", {**vip, "as_address": addrs[0], "weight": 5}),  # exists: -81
        LbCall("lb_as_set_weight", {**vip, "as_address": "10.9.9.9", "weight": 5}),  # -6
        LbCall("lb_add_del_as_v2", {**vip, "as_address": "2001:db8::1", "weight": 5}),  # -97
        LbCall("lb_flush_vip", vip),  # generic packer path
    ]
    assert [r.retval for r in conn.pipeline(mixed)] == [-81, -6, -97, 0]
    state = read_lb_state(conn)
    assert len(state.ases) == 32
    got = {a.address: a.weight for a in state.ases}
    assert got[addrs[0]] == (32 * 39) % 101  # the last weight sent for it
    assert sum(a.num_buckets for a in state.ases) in (0, 1024)


def test_codec_bytes_equal_vpp_papi(conn: VppConnection) -> None:
    api = conn._api().api
    cases = [
        ("10.0.0.1/32", "10.1.1.1", 6, 80),
        ("2001:db8::/64", "2001:db8:1::5", 17, 53),
        ("192.0.2.0/24", "10.0.0.9", 255, 0),
    ]
    for pfx, addr, proto, port in cases:
        net = ipaddress.ip_network(pfx)
        a = ipaddress.ip_address(addr)
        mid = conn._msg_id("lb_as_set_weight")
        ours = codec.pack_as_set_weight(mid, 0, 0, net, proto, port, a, 37, True)
        papi = api.lb_as_set_weight_pack(
            pfx=net, protocol=proto, port=port, as_address=a, weight=37, is_flush=True
        )
        assert ours == bytes(papi)
        mid = conn._msg_id("lb_add_del_as_v2")
        ours = codec.pack_add_del_as_v2(mid, 0, 0, net, proto, port, a, 100, True, False)
        papi = api.lb_add_del_as_v2_pack(
            pfx=net, protocol=proto, port=port, as_address=a, weight=100, is_del=True
        )
        assert ours == bytes(papi)
        mid = conn._msg_id("lb_add_del_vip_v2")
        ours = codec.pack_add_del_vip_v2(mid, 0, 0, net, proto, port, 2, 10, 2048, True, False)
        papi = api.lb_add_del_vip_v2_pack(
            pfx=net, protocol=proto, port=port, encap=2, dscp=10, new_flows_table_length=2048,
            src_ip_sticky=True, is_del=False,
        )  # fmt: skip
        assert ours == bytes(papi)


def test_dumper_hides_deleted_and_reads_sticky(conn: VppConnection) -> None:
    _vip(conn, src_ip_sticky=True)
    _vip(conn, pfx=ipaddress.ip_network("192.0.2.81/32"), port=0, protocol=255)
    vip = {"pfx": VIP, "protocol": 6, "port": 80}
    conn.call("lb_add_del_as_v2", **vip, as_address="10.0.0.1", weight=100)
    conn.call("lb_add_del_as_v2", **vip, as_address="10.0.0.2", weight=100)
    conn.call("lb_add_del_as_v2", **vip, as_address="10.0.0.2", is_del=True)  # lingers, flags 0
    state = read_lb_state(conn)
    keys = {v.key: v for v in state.vips}
    assert keys[(VIP, 6, 80)].src_ip_sticky is True
    assert keys[(ipaddress.ip_network("192.0.2.81/32"), 255, 0)].src_ip_sticky is False
    assert [str(a.address) for a in state.ases] == ["10.0.0.1"]
    assert state.ases[0].num_buckets == 1024


def test_lost_connection_marks_batch(conn: VppConnection, emu: Emulator) -> None:
    _vip(conn)
    emu.stop()
    # Either the loss is already known (VppError) or the batch finds out (every call marked).
    try:
        res = conn.pipeline([LbCall("lb_flush_vip", {"pfx": VIP, "protocol": 6, "port": 80})])
    except VppError as e:
        assert "not connected" in str(e)
    else:
        assert not res[0].ok and res[0].error
    assert not conn.connected


def test_parse_sticky_and_counters_text() -> None:
    text = (
        "ip4-gre4 [1] 192.0.2.80/32 src_ip_sticky\n"
        "  new_size:1024\n"
        "  protocol:6 port:80\n"
        "  counters:\n"
        "    packet from existing sessions: 5\n"
        "    first session packet: 7\n"
        "    untracked packet: 0\n"
        "    no server configured: 2\n"
        "  #as:2\n"
        # AS lines as the emulator and as VPP print them: skipped, whatever they look like.
        "    10.0.0.1 weight:100 buckets:512 flows:0 dpo:3 used\n"
        "    10.0.0.2 512 buckets   0 flows  dpo:4 used\n"
        "ip4-gre4 [2] 192.0.2.81/32 src_ip_sticky removed\n"
        "  new_size:1024\n"
        "ip4-gre4 [3] 192.0.2.82/32 src_ip_sticky\n"
        "  new_size:1024\n"
    )
    shown = showlb.parse(text)
    assert showlb.sticky_keys(shown) == {
        (VIP, 6, 80),
        (ipaddress.ip_network("192.0.2.82/32"), 255, 0),
    }
    assert [str(v.key[0]) for v in shown] == ["192.0.2.80/32", "192.0.2.82/32"]
    assert [v.kind for v in shown] == ["ip4-gre4", "ip4-gre4"]
    assert dict(shown[0].counters) == {
        "existing-session": 5,
        "first-packet": 7,
        "untracked": 0,
        "no-server": 2,
    }
    assert shown[1].counters == ()  # VPP printed none: absent, not 0


def test_raw_dump_decoding_matches_vpp_papi(conn: VppConnection) -> None:
    from maglev.vpp.dumper import _raw_ases, _raw_vips

    v6 = ipaddress.ip_network("2001:db8:5::/64")
    _vip(conn, dscp=0)
    _vip(conn, pfx=v6, protocol=17, port=53, encap=1, new_flows_table_length=65536)
    _vip(conn, pfx=ipaddress.ip_network("192.0.2.90/32"), protocol=6, port=443, encap=2, dscp=12)
    conn.call("lb_add_del_as_v2", pfx=VIP, protocol=6, port=80, as_address="10.0.0.1", weight=7)
    conn.call("lb_add_del_as_v2", pfx=VIP, protocol=6, port=80, as_address="10.0.0.2", weight=9)
    conn.call("lb_add_del_as_v2", pfx=VIP, protocol=6, port=80, as_address="10.0.0.2", is_del=True)
    conn.call(
        "lb_add_del_as_v2", pfx=v6, protocol=17, port=53, as_address="2001:db8::7", weight=100
    )
    raw_v = _raw_vips(conn)
    raw_a = _raw_ases(conn)
    assert raw_v is not None and raw_a is not None
    papi_v = [
        (r.vip.pfx.network, int(r.vip.protocol), int(r.vip.port), int(r.encap), int(r.dscp),
         int(r.flow_table_length))
        for r in conn.dump("lb_vip_dump")
    ]  # fmt: skip
    assert raw_v == papi_v and len(raw_v) == 3
    papi_a = [
        (str(r.app_srv), int(r.flags), int(r.in_use_since), int(r.weight), int(r.num_buckets))
        for r in conn.dump("lb_as_v2_dump")
    ]
    assert [(str(a), f, s, w, b) for _, a, f, s, w, b in raw_a] == papi_a
    assert {(str(k[0]), k[1], k[2]) for k, *_ in raw_a} == {
        ("192.0.2.80/32", 6, 80),
        ("2001:db8:5::/64", 17, 53),
    }


def test_pipeline_takes_contexts_from_vpp_papis_counter(conn: VppConnection, emu: Emulator) -> None:
    """A batch reserves its contexts in one step: unique, and never reused by later calls."""
    _vip(conn)
    api = conn._api()
    before = int(api.get_context())
    calls = [
        LbCall("lb_add_del_as_v2", {"pfx": VIP, "protocol": 6, "port": 80,
                                    "as_address": f"10.0.1.{i}", "weight": 1})
        for i in range(1, 41)
    ]  # fmt: skip
    start = len(emu.operations())
    assert all(r.ok for r in conn.pipeline(calls))
    sent = [o.fields()["context"] for o in emu.operations()[start:]]
    assert len(sent) == 40 and len(set(sent)) == 40
    assert min(sent) > before
    assert int(api.get_context()) > max(sent)
    assert conn.last_reply_at > 0


def test_a_request_that_cannot_be_encoded_abandons_the_batch_cleanly(
    conn: VppConnection, emu: Emulator
) -> None:
    """Windows are encoded as they go out: a bad request in a later window (after earlier ones
    were sent) ends the batch with a VppError and a dropped connection, never half silently."""
    _vip(conn)
    vip = {"pfx": VIP, "protocol": 6, "port": 80}
    calls = [
        LbCall("lb_add_del_as_v2", {**vip, "as_address": f"10.0.{i // 250}.{i % 250 + 1}"})
        for i in range(1100)
    ]
    calls.append(LbCall("lb_as_set_weight", {**vip, "as_address": "10.0.0.1", "weight": 300}))
    with pytest.raises(VppError, match="abandoned"):
        conn.pipeline(calls)
    assert not conn.connected
    conn.connect()  # and the next attempt starts afresh
    assert conn.call("show_version").retval == 0
