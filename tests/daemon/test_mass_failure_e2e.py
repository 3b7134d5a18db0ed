"""The mass-failure guard with maglevd as a real subprocess, the emulator in its own process and
real loopback backends (the harness of `test_e2e`): every backend of every frontend dies at once.

With the default (fail-static at 50%) every VIP keeps serving buckets, and the guard shows in
`maglevc show status` / `show frontends` / `show frontend` / `explain frontend`, in the event
stream, in the log and in /metrics; it clears when the backends come back. With
`on-mass-failure: drain` the same failure empties every VIP, as maglev did before the guard.
Waits are on states and events, with generous deadlines.

Where the guard does not act -- one backend of a four-backend pool dies, or a primary pool dies
while its backup is healthy -- the real checks of real listeners end in exactly the VPP writes
`on-mass-failure: drain` makes: the dead drained to 0 and flushed, the rest serving.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import subprocess
import threading
import urllib.request
from typing import Any

import pytest

from maglev.vpp.dumper import read_lb_state
from tests.daemon.test_e2e import ADDRS, BIN, Backend, Daemon, json_of, text_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXTRA = """  api:
    address: 192.0.2.12
    protocol: tcp
    port: 443
    encap: gre4
{guard}    pools:
      - {{name: main, backends: {{b2: {{}}, b3: {{}}}}}}
"""
WEB, API = "192.0.2.10/32", "192.0.2.12/32"
HELD = "held: mass-failure guard (fail-static)"


def start(tmp: pathlib.Path, guard: str = "") -> Daemon:
    """maglevd with frontends web and api, `guard` (a YAML line) set on both."""
    d = Daemon(tmp)
    line = f"    {guard}\n" if guard else ""
    d.write_config(EXTRA.format(guard=line))
    # web's pools follow its encap directly; api's follow the guard line.
    d.cfg.write_text(d.cfg.read_text().replace("    encap: gre4\n    pools:",
                                               f"    encap: gre4\n{line}    pools:", 1))  # fmt: skip
    d.start()
    return d


def tables(d: Daemon) -> dict[str, dict[str, tuple[int, int]]]:
    """VIP prefix -> {backend address: (weight, buckets)}."""
    conn = d.vpp_connect()
    try:
        st = read_lb_state(conn)
    finally:
        conn.disconnect()
    out: dict[str, dict[str, tuple[int, int]]] = {str(v.prefix): {} for v in st.vips}
    for a in st.ases:
        out[str(a.vip[0])][str(a.address)] = (a.weight, a.num_buckets)
    return out


def weights(d: Daemon) -> dict[str, dict[str, int]]:
    return {vip: {a: w for a, (w, _) in ases.items()} for vip, ases in tables(d).items()}


ALL_UP = {WEB: {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, API: {ADDRS[1]: 100, ADDRS[2]: 100}}


class Watcher:
    """`maglevc --json watch events`, its events collected as they come."""

    def __init__(self, d: Daemon) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "maglevc"), "--socket", d.ctl, "--json", "watch", "events"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each event as it comes, not buffered
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # Subscribed once it reports events we cause (b3 paused and resumed), then b3 is back.
        verbs = iter(["pause", "resume"] * 100)
        wait_for(lambda: d.maglevc("set", "backend", "b3", next(verbs)) and self.next(
            "backend", 0.3), 60, "the watcher to subscribe")  # fmt: skip
        d.maglevc("set", "backend", "b3", "resume")
        wait_for(lambda: weights(d) == ALL_UP, 30, "b3 back")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, kind: str, timeout: float) -> dict[str, Any] | None:
        try:
            while True:
                ev = self.events.get(timeout=timeout)
                if ev["type"] == kind:
                    return ev
        except queue.Empty:
            return None

    def guard_events(self, n: int) -> dict[str, dict[str, Any]]:
        """The next `n` mass-failure events, by frontend."""
        got: dict[str, dict[str, Any]] = {}
        for _ in range(n):
            ev = self.next("mass-failure", 60)
            assert ev is not None, f"no mass-failure event after {got}"
            got[ev["frontend"]] = ev
        return got

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def guard_metric(d: Daemon) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{d.metrics}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    return {
        (s.labels["frontend"], s.labels["mode"]): s.value
        for s in fams["maglev_frontend_mass_failure_guard"].samples
    }


def test_everything_dying_at_once_leaves_every_vip_serving(tmp_path: pathlib.Path) -> None:
    d = start(tmp_path)
    watcher = None
    try:
        wait_for(lambda: weights(d) == ALL_UP, 30, "programmed")
        assert guard_metric(d) == {("web", "fail-static"): 0.0, ("api", "fail-static"): 0.0}
        watcher = Watcher(d)
        for b in d.backends:
            b.stop()
        on = watcher.guard_events(2)
        assert set(on) == {"web", "api"} and all(e["active"] for e in on.values())
        # web serves from its primary, or from its backup if that took over before it died too
        # (a healthy backup is not a mass failure): either way the last one standing is kept.
        pool, members = on["web"]["pool"], {"primary": 2, "backup": 1}[on["web"]["pool"]]
        assert (on["web"]["mode"], on["web"]["members"], on["web"]["threshold"]) == (
            "fail-static", members, 1,
        )  # fmt: skip
        assert (on["api"]["pool"], on["api"]["members"], on["api"]["threshold"]) == ("main", 2, 1)
        wait_for(lambda: json_of(d, "show", "status")["backends"].get("down") == 3, 60, "all down")
        # Every VIP keeps serving buckets: the last member standing of each pool is kept.
        for vip, ases in tables(d).items():
            assert sum(b for w, b in ases.values() if w > 0) == 1024, (vip, ases)
            assert sum(w > 0 for w, _ in ases.values()) == 1, (vip, ases)
        web = json_of(d, "show", "frontend", "web")
        assert web["guard"] == {
            "active": True, "mode": "fail-static", "min_healthy": "50%", "pool": pool,
            "healthy": 0, "members": members, "threshold": 1,
        }  # fmt: skip
        assert [b["reason"] for b in web["backends"]].count(HELD) == 1
        # `explain` names the guard as the rule that kept each held backend, the others health.
        for fe in ("web", "api"):
            held = {b["name"] for b in json_of(d, "show", "frontend", fe)["backends"]
                    if b["reason"] == HELD}  # fmt: skip
            assert len(held) == 1, (fe, held)
            ex = json_of(d, "explain", "frontend", fe)
            assert ex["frontend"] == fe and all(b["consistent"] for b in ex["backends"]), ex
            rules = {b["backend"]: b["rule"] for b in ex["backends"]}
            assert {n for n, rule in rules.items() if rule == "mass-failure"} == held, rules
            for b in ex["backends"]:
                if b["backend"] in held:
                    guard, effective = b["steps"][-2:]
                    assert guard["rule"] == "mass-failure", b
                    assert guard["detail"].startswith("held at its weight in VPP"), b
                    assert effective["detail"].endswith("[rule: mass-failure]"), b
        doc = json_of(d, "show", "status")
        assert [g["frontend"] for g in doc["mass_failure_guard"]] == ["api", "web"]
        lines = text_of(d, "show", "status")
        said = f"fail-static, ACTIVE: 0 of {members} members of pool {pool} healthy, min-healthy 50% (1)"
        assert ["mass-failure guard", f"frontend web: {said}"] in lines, lines
        table = text_of(d, "show", "frontends")
        assert table[0][-1] == "GUARD" and [r[-1] for r in table[1:]] == ["fail-static"] * 2
        assert ["guard", said] in text_of(d, "show", "frontend", "web")
        assert guard_metric(d) == {("web", "fail-static"): 1.0, ("api", "fail-static"): 1.0}
        assert "frontend web: mass-failure guard active (on-mass-failure fail-static)" in (
            d.logtext()
        )

        # The backends come back: the guard clears, loudly, and the weights are as configured.
        for b in d.backends:
            b.start()
        off = watcher.guard_events(2)
        assert set(off) == {"web", "api"} and not any(e["active"] for e in off.values())
        wait_for(lambda: weights(d) == ALL_UP, 60, "weights back")
        assert json_of(d, "show", "status")["mass_failure_guard"] == []
        assert guard_metric(d) == {("web", "fail-static"): 0.0, ("api", "fail-static"): 0.0}
        assert "frontend web: mass-failure guard cleared" in d.logtext()
    finally:
        if watcher is not None:
            watcher.close()
        d.close()


def test_on_mass_failure_drain_empties_every_vip_as_before(tmp_path: pathlib.Path) -> None:
    d = start(tmp_path, "on-mass-failure: drain")
    try:
        wait_for(lambda: weights(d) == ALL_UP, 30, "programmed")
        for b in d.backends:
            b.stop()
        drained = {WEB: dict.fromkeys(ADDRS, 0), API: dict.fromkeys(ADDRS[1:], 0)}
        wait_for(lambda: weights(d) == drained, 60, "every weight at 0")
        assert json_of(d, "show", "frontend", "web")["guard"]["active"] is False
        assert json_of(d, "show", "status")["mass_failure_guard"] == []
        assert guard_metric(d) == {("web", "drain"): 0.0, ("api", "drain"): 0.0}
        assert "mass-failure guard" not in d.logtext()
    finally:
        d.close()


WIDE = """  wide:
    address: 192.0.2.14
    protocol: tcp
    port: 80
    encap: gre4
{guard}    pools:
      - {{name: all, backends: {{b1: {{}}, b2: {{}}, b3: {{}}, b4: {{}}}}}}
"""
WIDE_VIP, B4 = "192.0.2.14/32", "127.0.0.24"
AS_GUARDS = ["", "on-mass-failure: drain"]


def flushes(d: Daemon, address: str) -> list[str]:
    """maglevd's debug log of the set-weight calls it sent VPP for `address` (with their args)."""
    return [
        line for line in d.logtext().splitlines()
        if "VPP call lb_as_set_weight(" in line and f"as_address={address}," in line
    ]  # fmt: skip


@pytest.mark.parametrize("guard", AS_GUARDS)
def test_one_real_backend_of_four_dying_is_drained_and_flushed_as_ever(
    tmp_path: pathlib.Path, guard: str
) -> None:
    d = Daemon(tmp_path)
    d.backends.append(Backend(B4, d.port))
    line = f"    {guard}\n" if guard else ""
    d.write_config(WIDE.format(guard=line))
    b3 = f"  b3: {{address: {ADDRS[2]}, healthcheck: tcp}}\n"
    d.cfg.write_text(
        d.cfg.read_text().replace(b3, f"{b3}  b4: {{address: {B4}, healthcheck: tcp}}\n")
    )
    d.start()
    try:
        up = {WEB: ALL_UP[WEB], WIDE_VIP: dict.fromkeys((*ADDRS, B4), 100)}
        wait_for(lambda: weights(d) == up, 30, "programmed")
        assert flushes(d, B4) == []
        d.backends[3].stop()
        want = {WEB: ALL_UP[WEB], WIDE_VIP: {**up[WIDE_VIP], B4: 0}}
        wait_for(lambda: weights(d) == want, 60, "b4 drained")
        (sent,) = flushes(d, B4)
        assert "weight=0," in sent and "is_flush=True" in sent, sent
        # The other three serve the whole table; no guard is on anywhere.
        ases = tables(d)[WIDE_VIP]
        assert sum(b for a, (w, b) in ases.items() if w > 0 and a != B4) == 1024, ases
        assert json_of(d, "show", "status")["mass_failure_guard"] == []
        assert json_of(d, "show", "frontend", "wide")["guard"]["active"] is False
        rules = {
            b["backend"]: b["rule"] for b in json_of(d, "explain", "frontend", "wide")["backends"]
        }
        assert rules == {"b1": "pool", "b2": "pool", "b3": "pool", "b4": "health"}
        assert "mass-failure guard" not in d.logtext()
    finally:
        d.close()


@pytest.mark.parametrize("guard", AS_GUARDS)
def test_a_real_primary_dying_fails_over_to_its_healthy_backup_as_ever(
    tmp_path: pathlib.Path, guard: str
) -> None:
    d = start(tmp_path, guard)
    try:
        wait_for(lambda: weights(d) == ALL_UP, 30, "programmed")
        d.backends[0].stop()
        d.backends[1].stop()
        # web: the backup b3 at its weight, the primary drained and flushed; api keeps b3 (1 of 2
        # healthy is its min-healthy 50%): health decides alone everywhere.
        want = {WEB: {ADDRS[0]: 0, ADDRS[1]: 0, ADDRS[2]: 100}, API: {ADDRS[1]: 0, ADDRS[2]: 100}}
        wait_for(lambda: weights(d) == want, 60, "failed over to the backup")
        assert json_of(d, "show", "frontend", "web")["active_pool"] == "backup"
        for a in ADDRS[:2]:
            assert any("weight=0," in c and "is_flush=True" in c for c in flushes(d, a)), a
        assert not any("weight=0," in c for c in flushes(d, ADDRS[2]))
        assert json_of(d, "show", "status")["mass_failure_guard"] == []
        assert "mass-failure guard" not in d.logtext()
    finally:
        d.close()
