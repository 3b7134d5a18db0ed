"""The churn preview against what the emulator really does, bucket by bucket.

The reconciler runs turn by turn (injected clock) over vpp-papi against the emulator on its Unix
socket. For random changes (reloads that reweight, add and remove backends, add and remove a
frontend, change a table's length; operator pauses and disables that fail a pool over; weight
overrides) the preview comes first (`config check`'s `Preview`, the dry runs of the operator
requests), then the change is made for real. Each VIP's new-flow table is read from the emulator
before and after (`show lb vip … buckets` through `cli_inband`), and the moves counted from those
tables must be the preview's, frontend by frontend and backend by backend.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pathlib
import queue
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.errors import VppError
from maglev.model import Config
from maglev.reconcile import events
from maglev.reconcile.churn import ChurnReport
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.client import PapiLb
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator
from tests.reconcile.test_reconciler import apply_config
from tests.rigs import Streams

pytestmark = pytest.mark.integration

NAMES = [f"n{i}" for i in range(1, 9)]
VIPS = {"www": "192.0.2.80/32 protocol tcp port 80", "api": "192.0.2.81/32 protocol udp port 53"}
Pools = list[tuple[str, dict[str, int]]]


def config_text(sock: str, www: Pools, length: int, api: dict[str, int] | None) -> str:
    def pools(ps: Pools) -> str:
        return "\n".join(
            f"      - {{name: {p}, backends: {{{', '.join(f'{b}: {{weight: {w}}}' for b, w in m.items())}}}}}"
            for p, m in ps
        )

    text = f"""
vpp:
  api-socket: {sock}
  lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
        counters-interval: 0s}}
backends:
{chr(10).join(f"  {n}: {{address: 10.0.0.{i + 1}}}" for i, n in enumerate(NAMES))}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    flow-table-length: {length}
    pools:
{pools(www)}
"""
    if api is not None:
        text += f"""  api:
    address: 192.0.2.81
    protocol: udp
    port: 53
    encap: gre4
    flow-table-length: 64
    pools:
{pools([("only", api)])}
"""
    return text


def members(draw: Any, names: list[str]) -> dict[str, int]:
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    return {n: draw(st.integers(0, 100)) for n in sorted(chosen)}


def random_config(draw: Any, sock: str) -> Config:
    www = [("primary", members(draw, NAMES[:4])), ("backup", members(draw, NAMES[4:7]))]
    api = members(draw, NAMES[5:]) if draw(st.booleans()) else None
    return load_text(config_text(sock, www, draw(st.sampled_from([64, 256])), api))


def tables(conn: VppConnection) -> dict[str, list[str | None]]:
    """Each live VIP's new-flow table as the emulator prints it (address text, None: drop)."""
    out = {}
    for name, vip in VIPS.items():
        try:
            text = conn.cli(f"show lb vip {vip} buckets")
        except VppError:
            continue  # no such VIP
        rows = [line.split(": ", 1)[1] for line in text.splitlines() if line]
        out[name] = [None if r == "drop" else r for r in rows]
    return out


def moves(
    before: list[str | None] | None, after: list[str | None] | None, names: dict[str, str]
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Buckets moved and (gained, lost) per backend name, from two printed tables. Tables of
    different sizes compare on the larger one, bucket i against bucket i mod size (how VPP
    hashes a flow to a bucket)."""
    old, new = before or [None] * len(after or []), after or [None] * len(before or [])
    size = max(len(old), len(new))
    moved = 0
    per: dict[str, list[int]] = {}
    for i in range(size):
        x, y = old[i % len(old)], new[i % len(new)]
        if x != y:
            moved += 1
            if y is not None:
                per.setdefault(names[y], [0, 0])[0] += 1
            if x is not None:
                per.setdefault(names[x], [0, 0])[1] += 1
    return moved, {n: (g, lost) for n, (g, lost) in per.items()}


def previewed(report: ChurnReport) -> dict[str, tuple[int, dict[str, tuple[int, int]]]]:
    return {
        f.frontend: (f.moved, {b.name: (b.gained, b.lost) for b in f.backends})
        for f in report.frontends
    }


def ask(rec: Reconciler, msg: Any) -> Any:
    rec.turn(msg)
    return msg.reply.result(timeout=0)


class Rig:
    def __init__(self, directory: str, files: list[str]) -> None:
        self.emu = Emulator(str(pathlib.Path(directory) / "api.sock"))
        self.emu.start()
        self.conn = VppConnection(self.emu.socket_path, files, read_timeout=3)
        self.reader = VppConnection(self.emu.socket_path, files, read_timeout=3)
        self.reader.connect()
        self.clock = ManualClock()
        self.names = {f"10.0.0.{i + 1}": n for i, n in enumerate(NAMES)}

    def start(self, config: Config) -> Reconciler:
        rec = Reconciler(config, queue.Queue(), PapiLb(self.conn), Streams(), clock=self.clock)
        rec.turn()
        self.clock.advance(1.0)
        rec.turn()
        assert rec.first_sync_done
        return rec

    def close(self) -> None:
        self.reader.disconnect()
        self.conn.disconnect()
        self.emu.stop()


@pytest.fixture
def rig_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield d


def check_step(rig: Rig, report: ChurnReport, before: dict[str, list[str | None]]) -> None:
    after = tables(rig.reader)
    want = previewed(report)
    for fe in sorted(set(before) | set(after)):
        moved, per = moves(before.get(fe), after.get(fe), rig.names)
        assert want.get(fe, (0, {})) == (moved, per), fe


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_preview_moves_the_buckets_the_emulator_moves(
    data: st.DataObject, files: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        rig = Rig(d, files)
        try:
            sock = rig.emu.socket_path
            rec = rig.start(random_config(data.draw, sock))
            for _ in range(data.draw(st.integers(1, 4))):
                before = tables(rig.reader)
                kind = data.draw(st.sampled_from(["reload", "action", "override"]))
                if kind == "reload":
                    candidate = random_config(data.draw, sock)
                    report = rec.preview(candidate).churn
                    # Forced: the reload interlocks would hold some of these (not this test's)
                    rec.turn(dataclasses.replace(apply_config(candidate), force=True))
                elif kind == "action":
                    name = data.draw(st.sampled_from(NAMES))
                    action = data.draw(st.sampled_from(["pause", "resume", "enable", "disable"]))
                    dry = ask(rec, events.DryRunAction(name, action))
                    real = ask(rec, events.BackendAction(name, action))
                    assert dry.answer == real
                    report = dry.preview.churn
                else:
                    fe = rec.config.frontends["www"]
                    pool = data.draw(st.sampled_from(fe.pools))
                    member = data.draw(st.sampled_from(pool.members)).backend
                    weight = data.draw(st.none() | st.integers(0, 100))
                    dry = ask(rec, events.DryRunOverride("www", pool.name, member, weight))
                    real = ask(rec, events.WeightOverride("www", pool.name, member, weight))
                    assert dry.answer == real
                    report = dry.preview.churn
                event(f"{kind}: {', '.join(f.change for f in report.frontends) or 'no moves'}")
                check_step(rig, report, before)
        finally:
            rig.close()


def test_a_failover_previewed_by_a_dry_run(rig_dir: str, files: list[str]) -> None:
    """Pausing the whole primary pool fails over to the backup: the dry runs change nothing,
    and the last one's preview is what the emulator then does."""
    rig = Rig(rig_dir, files)
    try:
        www = [("primary", {"n1": 100, "n2": 100}), ("backup", {"n5": 100})]
        rec = rig.start(load_text(config_text(rig.emu.socket_path, www, 256, None)))
        start = tables(rig.reader)
        dry = ask(rec, events.DryRunAction("n1", "pause"))
        assert dry.answer == events.ActionResult("n1", "paused", True)
        (f,) = dry.preview.churn.frontends
        assert f.frontend == "www" and f.capacity_before == 100.0 and f.capacity_after == 50.0
        assert tables(rig.reader) == start  # nothing was applied
        assert rec.health["n1"].state.value == "up"
        ask(rec, events.BackendAction("n1", "pause"))
        before = tables(rig.reader)
        dry = ask(rec, events.DryRunAction("n2", "pause"))
        (f,) = dry.preview.churn.frontends
        assert f.share == 1.0 and {b.name for b in f.backends} == {"n2", "n5"}
        assert f.line().startswith("www: 100.0% of buckets move (256/256); n5 +256, n2 -256;")
        ask(rec, events.BackendAction("n2", "pause"))
        check_step(rig, dry.preview.churn, before)
    finally:
        rig.close()


def test_addresses_in_the_printed_table_are_the_backends(rig_dir: str, files: list[str]) -> None:
    """The rig reads what it means to: the printed owners are the configured addresses."""
    rig = Rig(rig_dir, files)
    try:
        www = [("primary", {"n1": 1, "n2": 3}), ("backup", {"n5": 1})]
        rig.start(load_text(config_text(rig.emu.socket_path, www, 64, None)))
        (table,) = tables(rig.reader).values()
        owners = {ipaddress.ip_address(a) for a in table if a is not None}
        assert owners == {ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")}
        assert table.count("10.0.0.2") == 48  # 3/4 of 64 buckets
    finally:
        rig.close()
