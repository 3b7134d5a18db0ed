"""The in-memory lb client answers as the lb plugin does: the same ops, the same outcome.

Both `LbClient`s get the same sequence of plan ops (including refused ones); the emulator is
spoken to over vpp-papi, as maglevd does.
"""

from __future__ import annotations

import ipaddress
import pathlib
from collections.abc import Iterator

import pytest

from maglev.model import Encap
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
from maglev.vpp.memory import MemoryLb
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, DeleteVip, Op, SetWeight
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator

pytestmark = pytest.mark.integration

NET = ipaddress.ip_network("192.0.2.10/32")
L3 = ipaddress.ip_network("192.0.2.11/32")
A, B = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")

OPS: list[Op] = [
    CreateVip(NET, 6, 80, Encap.GRE4, 0, False, 1024),
    CreateVip(NET, 6, 80, Encap.GRE4, 0, False, 1024),  # exists
    AddAs(NET, 6, 80, A, 100),
    AddAs(NET, 6, 80, A, 50),  # exists
    AddAs(NET, 6, 80, B, 0),
    SetWeight(NET, 6, 80, B, 30),
    SetWeight(NET, 6, 443, B, 30),  # no such VIP
    SetWeight(NET, 6, 80, ipaddress.ip_address("10.0.0.9"), 1),  # no such AS
    DeleteAs(NET, 6, 80, A, True),
    DeleteAs(NET, 6, 80, A, True),  # lingers: deleting it again is fine
    SetWeight(NET, 6, 80, A, 5),  # but it has no weight to set
    AddAs(NET, 6, 80, A, 60),  # and it may come back
    AddAs(NET, 6, 80, ipaddress.ip_address("2001:db8::1"), 1),  # wrong family for gre4
    DeleteAs(NET, 6, 80, ipaddress.ip_address("10.0.0.8"), True),  # never there
    CreateVip(L3, 17, 53, Encap.L3DSR, 46, True, 2048),
    AddAs(L3, 17, 53, A, 7),
    DeleteVip(L3, 17, 53),
    DeleteVip(L3, 17, 53),  # gone
    CreateVip(L3, 17, 53, Encap.L3DSR, 10, False, 512),
]


@pytest.fixture
def papi(tmp_path: pathlib.Path) -> Iterator[PapiLb]:
    emu = Emulator(str(tmp_path / "api.sock"))
    emu.start()
    lb = PapiLb(VppConnection(emu.socket_path, apidefs.generate(tmp_path / "defs")))
    lb.connect()
    yield lb
    lb.disconnect()
    emu.stop()


def test_memory_client_answers_as_vpp(papi: PapiLb) -> None:
    mem = MemoryLb()
    mem.connect()
    for i, op in enumerate(OPS):  # one at a time: each op's own outcome
        got_papi = papi.apply([op], {})
        got_mem = mem.apply([op], {})
        assert (len(got_papi.done), got_papi.failed) == (len(got_mem.done), got_mem.failed), (
            i,
            op,
        )
    want = papi.read()
    have = mem.read()
    assert have.actual == want.actual
    assert {v.key: v.attrs for v in have.state.vips} == {v.key: v.attrs for v in want.state.vips}
    assert [rv for _, rv in mem.refused] == [-81, -81, -6, -6, -6, -97, -6, -6]


def test_apply_records_only_what_succeeded(papi: PapiLb) -> None:
    actual = papi.read().actual
    got = papi.apply(OPS[:8], actual)
    assert got.failed == 4 and len(got.done) == 4
    assert actual == papi.read().actual
