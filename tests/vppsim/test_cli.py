"""cli_inband through vpp-papi, the bucket table exposure, and the standalone command."""

from __future__ import annotations

import collections
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import pytest
from vpp_papi import VPPApiClient

from maglev.vppsim import Emulator
from tests.vppsim.lbcalls import VIP, add_as, add_vip, del_as

pytestmark = pytest.mark.integration


def test_show_lb(vpp: Any) -> None:
    vpp.api.lb_conf(ip4_src_address="192.0.2.1", ip6_src_address="2001:db8::1")
    add_vip(vpp)
    add_as(vpp, "10.1.0.1")
    r = vpp.api.cli_inband(cmd="show lb")
    assert r.retval == 0
    # the placeholder VIP counts in #vips, the placeholder AS does not in #ass
    assert r.reply == (
        "lb_main ip4-src-address: 192.0.2.1 \n ip6-src-address: 2001:db8::1 \n #vips: 2\n #ass: 1\n"
    )


def test_show_lb_vips(vpp: Any) -> None:
    add_vip(vpp)
    add_vip(vpp, pfx="2001:db8::1/128", encap=1, port=0)
    add_vip(vpp, pfx="10.0.0.3/32", encap=2, dscp=10)
    add_vip(vpp, pfx="10.0.0.4/32", encap=3, port=8080, target_port=80)
    add_as(vpp, "10.1.0.1", weight=100)
    add_as(vpp, "10.1.0.2", weight=1)
    del_as(vpp, "10.1.0.2")
    out = vpp.api.cli_inband(cmd="show lb vips").reply
    assert out.split("\n") == [
        "ip4-gre4 10.0.0.1/32 new_size:1024 #as:2  protocol:6 port:80 ",
        "ip6-gre6 2001:db8::1/128 new_size:1024 #as:0",
        "ip4-l3dsr 10.0.0.3/32 new_size:1024 #as:0  protocol:6 port:80   dscp:10",
        # the VIP port goes through ntohs() although it is kept in host order
        "ip4-nat4 10.0.0.4/32 new_size:1024 #as:0  protocol:6 port:8080  "
        "type:clusterip port:36895 target_port:80",
        "",
    ]
    verbose = vpp.api.cli_inband(cmd="show lb vips verbose").reply
    assert verbose.startswith(
        " ip4-gre4 [1] 10.0.0.1/32\n"
        "  new_size:1024\n"
        "  protocol:6 port:80\n"
        "  counters:\n"
        "    packet from existing sessions: 0\n"
        "    first session packet: 0\n"
        "    untracked packet: 0\n"
        "    no server configured: 0\n"
        "  #as:2\n"
        "    10.1.0.1 weight:100 buckets:1024 flows:0 dpo:1 used\n"
        "    10.1.0.2 weight:1 buckets:0 flows:0 dpo:2  removed\n"
        "\n"
        " ip6-gre6 [2] 2001:db8::1/128\n"
    )
    assert "  dscp:10\n" in verbose
    assert "  type:clusterip port:36895 target_port:80  counters:\n" in verbose
    vpp.api.lb_add_del_vip_v2(**VIP, is_del=True)
    out = vpp.api.cli_inband(cmd="show lb vips").reply
    assert "10.0.0.1/32 new_size:1024 #as:2 removed" in out


def test_unknown_command(vpp: Any) -> None:
    r = vpp.api.cli_inband(cmd="show frobnicator")
    assert r.retval != 0 and "unknown input" in r.reply


def test_bucket_table_exposure(vpp: Any, emulator: Emulator) -> None:
    add_vip(vpp, new_flows_table_length=64)
    add_as(vpp, "10.1.0.1", weight=100)
    add_as(vpp, "10.1.0.2", weight=7)
    add_as(vpp, "10.1.0.3", weight=0)
    table = emulator.bucket_table("10.0.0.1/32", 6, 80)
    assert table is not None and len(table) == 64
    counts = collections.Counter(str(a) for a in table)
    dumped = {str(r.app_srv): r.num_buckets for r in vpp.api.lb_as_v2_dump()}
    assert dict(counts) == {a: n for a, n in dumped.items() if n}
    assert emulator.bucket_table("10.0.0.2/32", 6, 80) is None
    out = vpp.api.cli_inband(cmd="show lb vip 10.0.0.1/32 protocol tcp port 80 buckets")
    assert out.retval == 0
    lines = out.reply.splitlines()
    assert lines == [f"{i}: {a}" for i, a in enumerate(table)]
    assert vpp.api.cli_inband(cmd="show lb vip 10.0.0.9/32 buckets").retval == -6
    del_as(vpp, "10.1.0.1")
    del_as(vpp, "10.1.0.2")
    assert emulator.bucket_table("10.0.0.1/32", 6, 80) == [None] * 64
    assert (
        "0: drop"
        in vpp.api.cli_inband(cmd="show lb vip 10.0.0.1/32 protocol 6 port 80 buckets").reply
    )


@pytest.mark.slow
def test_standalone_command(tmp_path: pathlib.Path, api_files: list[str]) -> None:
    sock = tmp_path / "api.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maglev.vppsim", "--socket", str(sock), "--log-level", "debug"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the command announces itself once it serves
            seen.append(line)
            if "serving on" in line:
                break
        assert sock.exists(), "".join(seen)
        vpp = VPPApiClient(apifiles=api_files, server_address=str(sock))
        vpp.connect("standalone")
        assert vpp.api.lb_add_del_vip(**VIP).retval == 0
        assert vpp.api.control_ping().retval == 0
        vpp.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "lb_add_del_vip" in err  # each API call is logged at debug
    assert not sock.exists()
