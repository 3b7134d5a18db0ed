"""The mass-failure guard end to end in the reconciler: vpp-papi against the emulator over its
real socket, driven turn by turn with injected time (the harness of `test_reconciler`).

Frontend `www` has a primary pool of four backends and a backup of one; `api` one pool of two.
A guard that acts changes VPP's tables and says so (a WARNING, a `mass-failure` event, the
snapshot); one that does not act leaves everything exactly as before the guard existed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maglev.config import load_text
from maglev.model import Config
from maglev.vppsim import Emulator
from tests.reconcile.test_reconciler import Harness, ops

pytestmark = pytest.mark.integration

CONFIG = """
vpp:
  api-socket: {sock}
  lb: {{ip4-src-address: 198.51.100.1, sync-interval: 30s, startup-min-delay: 5s,
        startup-max-delay: 30s}}
healthchecks:
  hc: {{type: tcp, port: 80, interval: 1s, fast-interval: 500ms, down-interval: 5s, timeout: 500ms,
        rise: 2, fall: 2}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: 10.0.0.2, healthcheck: hc}}
  a3: {{address: 10.0.0.3, healthcheck: hc}}
  a4: {{address: 10.0.0.4, healthcheck: hc}}
  b1: {{address: 10.0.0.5, healthcheck: hc}}
  c1: {{address: 10.0.0.6, healthcheck: hc}}
  c2: {{address: 10.0.0.7, healthcheck: hc}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
{guard}
    pools:
      - {{name: primary, backends: {{a1: {{}}, a2: {{}}, a3: {{}}, a4: {{}}}}}}
      - {{name: backup, backends: {{b1: {{}}}}}}
  api:
    address: 192.0.2.81
    protocol: tcp
    port: 443
    encap: gre4
{guard}
    pools:
      - {{name: only, backends: {{c1: {{weight: 10}}, c2: {{weight: 20}}}}}}
"""
EVERYONE = ("a1", "a2", "a3", "a4", "b1", "c1", "c2")
WWW, API = "192.0.2.80/32", "192.0.2.81/32"


@pytest.fixture
def make(emu: Emulator, files: list[str]) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def f(guard: str = "") -> Harness:
        h = Harness(emu, files, cfg(emu, guard))
        made.append(h)
        return h

    yield f
    for h in made:
        h.close()


def cfg(emu: Emulator, guard: str = "") -> Config:
    lines = "\n".join(f"    {kv}" for kv in guard.split(";") if kv)
    return load_text(CONFIG.format(sock=emu.socket_path, guard=lines))


def warm(h: Harness) -> None:
    for b in EVERYONE:
        h.probe(b, True)
    h.turn()
    h.turn(5.0)
    assert h.weights(WWW) == {
        "10.0.0.1": 100, "10.0.0.2": 100, "10.0.0.3": 100, "10.0.0.4": 100, "10.0.0.5": 0,
    }  # fmt: skip


def fail(h: Harness, *names: str) -> None:
    for _ in range(2):  # fall 2: the second failure takes them all down in one pass
        for n in names:
            h.probe(n, False)
        h.turn(0.5)


def revive(h: Harness, *names: str) -> None:
    for _ in range(2):  # rise 2
        for n in names:
            h.probe(n, True)
        h.turn(0.5)


def set_weights(h: Harness, since: int) -> list[tuple[str, int, bool]]:
    return [
        (str(o["as_address"]), o["weight"], bool(o["is_flush"]))
        for o in ops(h.emu, "lb_as_set_weight")[since:]
    ]


def guard_events(h: Harness) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k != "time"}
        for e in h.published
        if e["type"] == "mass-failure"
    ]


def serving_buckets(h: Harness, vip: str) -> int:
    key = next(k for k in h.vpp() if k[0] == vip)
    return sum(buckets for w, buckets in h.vpp()[key].values() if w > 0)


@pytest.mark.parametrize("guard", ["", "on-mass-failure: drain", "min-healthy: 0"])
def test_one_backend_of_four_dying_is_drained_and_flushed_as_ever(
    make: Callable[[str], Harness], guard: str
) -> None:
    h = make(guard)
    warm(h)
    before = len(ops(h.emu, "lb_as_set_weight"))
    fail(h, "a1")
    assert set_weights(h, before) == [("10.0.0.1", 0, True)]
    assert h.weights(WWW)["10.0.0.1"] == 0
    assert guard_events(h) == [] and h.rec.snapshot.mass_failure == {}


@pytest.mark.parametrize("guard", ["", "on-mass-failure: drain"])
def test_a_dead_primary_fails_over_to_a_healthy_backup_as_ever(
    make: Callable[[str], Harness], guard: str
) -> None:
    h = make(guard)
    warm(h)
    before = len(ops(h.emu, "lb_as_set_weight"))
    fail(h, "a1", "a2", "a3", "a4")
    # The backup is raised first, then the primary drained and flushed: never an empty table.
    assert set_weights(h, before) == [
        ("10.0.0.5", 100, False),
        *((f"10.0.0.{i}", 0, True) for i in range(1, 5)),
    ]
    assert h.rec.snapshot.frontends["www"].active_pool == "backup"
    assert guard_events(h) == [] and h.rec.snapshot.mass_failure == {}


def test_everything_failing_at_once_keeps_every_frontend_serving(
    make: Callable[[str], Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make()
    warm(h)
    before = len(ops(h.emu, "lb_as_set_weight"))
    with caplog.at_level(logging.WARNING, logger="maglev.reconcile.publish"):
        fail(h, *EVERYONE)
    # www serves on from its primary (2 of 4 kept, in address order); api from c1 (1 of 2).
    assert h.weights(WWW) == {
        "10.0.0.1": 100, "10.0.0.2": 100, "10.0.0.3": 0, "10.0.0.4": 0, "10.0.0.5": 0,
    }  # fmt: skip
    assert h.weights(API) == {"10.0.0.6": 10, "10.0.0.7": 0}
    assert set_weights(h, before) == [
        ("10.0.0.3", 0, True), ("10.0.0.4", 0, True), ("10.0.0.7", 0, True),
    ]  # fmt: skip
    assert serving_buckets(h, WWW) == serving_buckets(h, API) == 1024
    fields = {"type": "mass-failure", "active": True, "mode": "fail-static", "healthy": 0}
    assert {e["frontend"]: e for e in guard_events(h)} == {
        "www": {**fields, "frontend": "www", "pool": "primary", "members": 4, "threshold": 2,
                "backends": ["a1", "a2"]},
        "api": {**fields, "frontend": "api", "pool": "only", "members": 2, "threshold": 1,
                "backends": ["c1"]},
    }  # fmt: skip
    assert len(guard_events(h)) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("frontend www: mass-failure guard active (on-mass-failure fail-static): "
                     "0 of 4 members of pool primary healthy, below min-healthy 2")
        for m in warnings
    ), warnings  # fmt: skip
    snap = h.rec.snapshot
    assert set(snap.mass_failure) == {"www", "api"}
    reasons = {b.name: b.reason for b in snap.frontends["www"].backends}
    assert reasons["a1"] == reasons["a2"] == "held: mass-failure guard (fail-static)"
    assert reasons["a3"] == "down"

    # A periodic full sync changes nothing: the kept weights are what VPP has.
    writes = h.emu.write_count
    h.turn(30.0)
    assert h.emu.write_count == writes

    # Recovery: one healthy member of four keeps a1 (the first) and lets a2 go ...
    revive(h, "a3")
    assert h.weights(WWW) == {
        "10.0.0.1": 100, "10.0.0.2": 0, "10.0.0.3": 100, "10.0.0.4": 0, "10.0.0.5": 0,
    }  # fmt: skip
    # ... two are the threshold: the guard clears, loudly.
    h.published.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="maglev.reconcile.publish"):
        revive(h, "a4", "c1")
    assert h.weights(WWW) == {
        "10.0.0.1": 0, "10.0.0.2": 0, "10.0.0.3": 100, "10.0.0.4": 100, "10.0.0.5": 0,
    }  # fmt: skip
    assert h.weights(API) == {"10.0.0.6": 10, "10.0.0.7": 0}
    cleared = {e["frontend"]: e for e in guard_events(h)}
    assert set(cleared) == {"www", "api"} and not any(e["active"] for e in cleared.values())
    assert (cleared["www"]["healthy"], cleared["www"]["threshold"]) == (2, 2)
    assert any("frontend www: mass-failure guard cleared" in r.getMessage() for r in caplog.records)
    assert h.rec.snapshot.mass_failure == {}


def test_panic_serves_every_member(make: Callable[[str], Harness]) -> None:
    h = make("on-mass-failure: panic")
    warm(h)
    writes = h.emu.write_count
    fail(h, *EVERYONE)
    assert h.emu.write_count == writes  # every member keeps its configured weight
    reasons = {b.name: b.reason for b in h.rec.snapshot.frontends["www"].backends}
    assert reasons == {**{f"a{i}": "panic: mass-failure guard" for i in range(1, 5)},
                       "b1": "down"}  # fmt: skip
    assert {e["frontend"]: e["mode"] for e in guard_events(h)} == {"www": "panic", "api": "panic"}


@pytest.mark.parametrize("guard", ["on-mass-failure: drain", "min-healthy: 0"])
def test_drain_and_min_healthy_zero_reproduce_todays_behaviour(
    make: Callable[[str], Harness], guard: str
) -> None:
    h = make(guard)
    warm(h)
    before = len(ops(h.emu, "lb_as_set_weight"))
    fail(h, *EVERYONE)
    assert set_weights(h, before) == [
        *((f"10.0.0.{i}", 0, True) for i in range(1, 5)),
        ("10.0.0.6", 0, True),
        ("10.0.0.7", 0, True),
    ]
    assert set(h.weights(WWW).values()) == set(h.weights(API).values()) == {0}
    assert guard_events(h) == [] and h.rec.snapshot.mass_failure == {}
