"""Send VPP no call whose effect is already in place, and no two calls where one does.

A real VPP rebuilds a VIP's new-flow table on every AS call in its main thread (~2,700
`lb_as_set_weight`/s at 1,000 VIPs x 32 ASes), so each redundant call costs real dataplane CPU.
The reconciler drives the emulator over vpp-papi through representative changes; every mutating
request the emulator received is replayed against a model of VPP's tables, and each turn's calls
are counted per kind. A call is redundant when:
- it creates what exists, deletes what is gone, or sets the weight an AS already has;
- within one turn, a second call touches the same AS of the same VIP (an add followed by a
  set_weight could have been one add with the weight; a set_weight to 0 with flush followed by a
  delete with flush could have been the delete alone; two set_weights, the last alone).
Deleting a VIP's ASes (with flush) before the VIP is not redundant: VPP's VIP delete marks its
ASes unused without a flush, so their sticky flows would survive. A VIP deleted and created in
one turn (an attribute changed) is one incarnation ending and the next beginning.
"""

from __future__ import annotations

import ipaddress
import pathlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maglev.reconcile import events
from maglev.vpp import apidefs
from maglev.vpp.papi import LbCall, VppConnection
from maglev.vppsim import Emulator
from maglev.vppsim.handlers import Operation
from tests.reconcile.test_reconciler import BASE, Harness, apply_config, cfg, warm

pytestmark = pytest.mark.integration


@pytest.fixture
def emu(tmp_path: pathlib.Path) -> Iterator[Emulator]:
    e = Emulator(str(tmp_path / "api.sock"))
    e.start()
    yield e
    e.stop()


@pytest.fixture
def files(tmp_path: pathlib.Path) -> list[str]:
    return apidefs.generate(tmp_path / "defs")


@pytest.fixture
def make(emu: Emulator, files: list[str]) -> Iterator[Callable[[], Harness]]:
    made: list[Harness] = []

    def f() -> Harness:
        made.append(Harness(emu, files, cfg(emu)))
        return made[-1]

    yield f
    for h in made:
        h.close()


KIND = {
    ("lb_add_del_vip_v2", False): "create_vip",
    ("lb_add_del_vip_v2", True): "delete_vip",
    ("lb_add_del_as_v2", False): "add_as",
    ("lb_add_del_as_v2", True): "delete_as",
    ("lb_as_set_weight", False): "set_weight",
}


def _addr(f: dict[str, Any], prefix: str) -> str:
    raw = f[f"{prefix}.un"]
    return str(ipaddress.ip_address(raw[:4] if f[f"{prefix}.af"] == 0 else raw))


class VppModel:
    """VPP's live VIPs and AS weights, as the calls so far left them."""

    def __init__(self) -> None:
        self.vips: dict[tuple[str, int, int], dict[str, int]] = {}
        self.seen = 0
        self.conf: dict[str, Any] | None = None

    def turn(self, emu: Emulator) -> Counter[str]:
        """Replay the calls since the last turn; their counts per kind. Fails on a redundant one."""
        new = [o for o in emu.operations() if o.seq > self.seen]
        if new:
            self.seen = new[-1].seq
        counts: Counter[str] = Counter()
        touched: set[tuple[tuple[str, int, int], str]] = set()
        for op in new:
            counts[self._one(op, touched)] += 1
        return counts

    def _one(self, op: Operation, touched: set[tuple[tuple[str, int, int], str]]) -> str:
        f = op.fields()
        assert op.retval == 0, f"{op.name} failed ({op.retval}): {f}"
        if op.name == "lb_conf":
            assert f != self.conf, f"lb_conf to the conf VPP has: {f}"
            self.conf = f
            return "lb_conf"
        kind = KIND.get((op.name, bool(f.get("is_del", False))))
        assert kind is not None, f"unexpected call {op.name}"
        vip = (f"{_addr(f, 'pfx.address')}/{f['pfx.len']}", f["protocol"], f["port"])
        if kind == "create_vip":
            assert vip not in self.vips, f"create of existing VIP {vip}"
            self.vips[vip] = {}
            return kind
        if kind == "delete_vip":
            assert vip in self.vips, f"delete of missing VIP {vip}"
            del self.vips[vip]
            # The next incarnation of this VIP starts clean.
            for t in [t for t in touched if t[0] == vip]:
                touched.discard(t)
            return kind
        ases = self.vips[vip]
        a = _addr(f, "as_address")
        assert (vip, a) not in touched, f"second call on {a} of {vip} in one turn ({kind})"
        touched.add((vip, a))
        if kind == "add_as":
            assert a not in ases, f"add of existing AS {a} of {vip}"
            ases[a] = f["weight"]
        elif kind == "delete_as":
            assert a in ases, f"delete of missing AS {a} of {vip}"
            del ases[a]
        else:
            assert a in ases, f"set_weight of missing AS {a} of {vip}"
            assert ases[a] != f["weight"], f"set_weight of {a} of {vip} to its weight {f['weight']}"
            ases[a] = f["weight"]
        return kind


def test_no_call_is_redundant(make: Callable[[], Harness], emu: Emulator) -> None:
    h = make()
    vpp = VppModel()
    warm(h)
    # Initial programming: the weights travel in the adds (no set_weight after an add).
    # (and the global conf, once: VPP's differs from the config's).
    assert vpp.turn(emu) == {"lb_conf": 1, "create_vip": 2, "add_as": 4}

    # Failover to the backup: backup raised, both primaries to 0 (flush): one call each.
    for _ in range(2):
        h.probe("a1", False)
        h.probe("a2", False)
        h.turn(0.5)
    assert vpp.turn(emu) == {"set_weight": 3}
    # The same results again change nothing.
    h.probe("a1", False)
    h.probe("a2", False)
    h.turn(0.5)
    assert vpp.turn(emu) == {}
    for _ in range(2):
        h.probe("a1", True)
        h.turn(0.5)
    assert vpp.turn(emu) == {"set_weight": 2}  # a1 back to 100, the backup to 0

    # A full sync of a VPP that matches sends nothing.
    h.inbox.put(events.SyncRequest())
    h.turn()
    assert vpp.turn(emu) == {}

    # Reload: a2 reweighted, a new backend, b1 removed, the static frontend removed.
    text = BASE.replace("a2: {{weight: 50}}", "a2: {{weight: 70}}, s2: {{weight: 30}}")
    text = text.replace("  s1: {{address: 10.0.0.4}}\n", "  s1: {{address: 10.0.0.4}}\n"
                        "  s2: {{address: 10.0.0.5}}\n")  # fmt: skip
    text = text.replace("      - {{name: backup, backends: {{b1: {{}}}}}}\n", "")
    text = text[: text.index("  static:")]
    msg = apply_config(cfg(emu, text=text))
    h.inbox.put(msg)
    h.turn()
    assert msg.reply.result(1).ok
    # a2 is down (weight 0 stays), s2 added with its weight; b1 deleted; static: its AS then it.
    assert vpp.turn(emu) == {"add_as": 1, "delete_as": 2, "delete_vip": 1}

    # An attribute change recreates the VIP: delete its ASes (flushed) and it, create, add.
    msg = apply_config(cfg(emu, encap="l3dsr\n    dscp: 10", text=text))
    h.inbox.put(msg)
    h.turn()
    assert msg.reply.result(1).ok
    assert vpp.turn(emu) == {"delete_as": 3, "delete_vip": 1, "create_vip": 1, "add_as": 3}
    assert vpp.vips == {("192.0.2.80/32", 6, 80): {"10.0.0.1": 100, "10.0.0.2": 0,
                                                    "10.0.0.5": 30}}  # fmt: skip


def test_the_model_catches_each_kind_of_redundant_call(emu: Emulator, files: list[str]) -> None:
    """The checker above would pass a silent replay: here it must refuse each redundant shape."""
    conn = VppConnection(emu.socket_path, files)
    conn.connect()
    key = {"pfx": ipaddress.ip_network("192.0.2.90/32"), "protocol": 6, "port": 80}
    a = {**key, "as_address": ipaddress.ip_address("10.0.0.9")}
    try:
        vpp = VppModel()
        conn.pipeline([LbCall("lb_add_del_vip_v2", {**key, "encap": 0, "is_del": False,
                                                    "new_flows_table_length": 1024})])  # fmt: skip
        conn.pipeline([LbCall("lb_add_del_as_v2", {**a, "weight": 10, "is_del": False})])
        assert vpp.turn(emu) == {"create_vip": 1, "add_as": 1}
        # (calls, the complaint, the AS's weight in VPP after them)
        cases = [
            ([LbCall("lb_as_set_weight", {**a, "weight": 10})], "to its weight 10", 10),
            ([LbCall("lb_as_set_weight", {**a, "weight": 20}),
              LbCall("lb_as_set_weight", {**a, "weight": 30})], "second call", 30),
            ([LbCall("lb_as_set_weight", {**a, "weight": 0, "is_flush": True}),
              LbCall("lb_add_del_as_v2", {**a, "is_del": True, "is_flush": True})], "second call",
             None),
        ]  # fmt: skip
        for calls, why, after in cases:
            assert all(r.ok for r in conn.pipeline(calls))
            with pytest.raises(AssertionError, match=why):
                vpp.turn(emu)
            # The model as VPP now is, for the next case.
            vpp = VppModel()
            vpp.seen = emu.operations()[-1].seq
            vpp.vips = {("192.0.2.90/32", 6, 80): {} if after is None else {"10.0.0.9": after}}
    finally:
        conn.disconnect()
