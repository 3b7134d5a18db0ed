"""The reload interlocks with maglevd as a real subprocess, the emulator in its own process and
real loopback backends (the harness of `test_e2e`): a file with `frontends: {}` is held (VPP
keeps every VIP, `show status` shows the hold), `maglevc config reload --force` applies it, and
a newer good file replaces the hold. Waits are on states, with generous deadlines.
"""

from __future__ import annotations

import pathlib
import urllib.request

import pytest

from maglev.vpp.dumper import read_lb_state
from tests.daemon.test_e2e import Daemon, json_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API = """  api:
    address: 192.0.2.12
    protocol: tcp
    port: 443
    encap: gre4
    pools:
      - {name: main, backends: {b2: {}, b3: {}}}
"""
WEB, APIVIP = "192.0.2.10/32", "192.0.2.12/32"


def vips(d: Daemon) -> set[str]:
    conn = d.vpp_connect()
    try:
        return {str(v.prefix) for v in read_lb_state(conn).vips}
    finally:
        conn.disconnect()


def write(d: Daemon, frontends: str | None) -> None:
    """The daemon's file with web and api, or with its `frontends:` section replaced."""
    d.write_config(API)
    if frontends is None:
        return
    text = d.cfg.read_text()
    start, end = text.index("frontends:\n"), text.index("control:")
    d.cfg.write_text(text[:start] + frontends + text[end:])


def held_metric(d: Daemon) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{d.metrics}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    return float(fams["maglev_config_reload_held"].samples[0].value)


def started(tmp: pathlib.Path) -> Daemon:
    d = Daemon(tmp)
    write(d, None)
    d.start()
    wait_for(lambda: vips(d) == {WEB, APIVIP}, 30, "both frontends programmed")
    return d


def test_an_empty_frontends_map_is_held_until_forced(tmp_path: pathlib.Path) -> None:
    d = started(tmp_path)
    try:
        write(d, "frontends: {}\n")
        r = d.maglevc("config", "reload")
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert "reload HELD by the reload interlocks" in r.stdout
        assert "deletes 2 frontend(s), more than max-deleted-frontends 1: api, web" in r.stdout
        assert vips(d) == {WEB, APIVIP}  # nothing deleted in VPP

        hold = json_of(d, "show", "status")["config"]["reload_hold"]
        assert hold["reasons"] == [
            "deletes 2 frontend(s), more than max-deleted-frontends 1: api, web"
        ]
        assert hold["file"] == str(d.cfg) and hold["since"]
        assert hold["source"] in ("control API", "file change")  # the watcher may come first
        text = d.maglevc("show", "status").stdout.splitlines()
        assert text[0].startswith("reload interlocks  HELD since "), text
        assert "reload interlocks  held: deletes 2 frontend(s)" in text[1], text
        assert held_metric(d) == 1.0
        assert "HELD: deletes 2 frontend(s)" in d.logtext()
        frontends = json_of(d, "show", "status")["frontends"]["total"]
        assert frontends == 2  # the running config stays

        check = d.maglevc("config", "check", str(d.cfg))
        assert check.returncode == 3, (check.stdout, check.stderr)
        assert "would be HELD by the reload interlocks" in check.stdout

        forced = json_of(d, "config", "reload", "--force")
        assert forced["ok"] and forced["forced"], forced
        wait_for(lambda: vips(d) == set(), 30, "every VIP deleted")
        # (The file watcher may reload the same file once more: it finds nothing changed.)
        wait_for(
            lambda: json_of(d, "show", "status")["config"]["reload_hold"] is None, 30, "no hold"
        )
        assert held_metric(d) == 0.0
    finally:
        d.close()


def test_a_newer_good_file_replaces_the_hold(tmp_path: pathlib.Path) -> None:
    d = started(tmp_path)
    try:
        write(d, "frontends: {}\n")
        assert d.maglevc("config", "reload").returncode == 3
        assert json_of(d, "show", "status")["config"]["reload_hold"]  # shown once replied
        # The newer file drops api only: one deletion, within the limit.
        d.write_config()
        r = d.maglevc("config", "reload")
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_for(lambda: vips(d) == {WEB}, 30, "api deleted, web kept")
        wait_for(
            lambda: json_of(d, "show", "status")["config"]["reload_hold"] is None, 30, "no hold"
        )
        assert "reload hold (held since a" in d.logtext()
    finally:
        d.close()
