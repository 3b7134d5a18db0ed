"""The daemon runtime in-process: a thread that dies stops the daemon with exit code 1."""

from __future__ import annotations

import logging
import pathlib
import threading

import pytest

from maglev.config import load_text
from maglev.daemon.runtime import Runtime, Settings
from maglev.reconcile import events

pytestmark = pytest.mark.integration

CONFIG = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s}}}}
backends: {{s1: {{address: 127.0.0.41}}}}
frontends:
  f: {{address: 192.0.2.41, protocol: tcp, port: 80, encap: gre4, pools: [{{name: p, backends: {{s1: {{}}}}}}]}}
control: {{socket: {ctl}}}
"""


def test_dead_reconciler_thread_stops_the_daemon(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(CONFIG.format(ctl=tmp_path / "ctl.sock"))
    rt = Runtime(Settings(str(cfg)), load_text(cfg.read_text()))
    old_hook = threading.excepthook
    try:
        rt.start()

        def boom(*_: object) -> None:
            raise RuntimeError("injected failure")

        # A bug while handling a request that changes state ends the reconciler thread.
        rt.reconciler._sync_request = boom  # type: ignore[method-assign]
        rt.inbox.put(events.SyncRequest())
        with caplog.at_level(logging.CRITICAL):
            code = rt.serve()
    finally:
        threading.excepthook = old_hook
    assert code == 1
    text = caplog.text
    assert "thread maglev-reconciler died: RuntimeError: injected failure" in text
    assert "Traceback" in text
    assert not (tmp_path / "ctl.sock").exists()  # everything was stopped


def test_the_start_line_names_every_engine(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    from maglev import diff, table
    from maglev.config import fastbuild, fastload

    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(CONFIG.format(ctl=tmp_path / "ctl.sock"))
    rt = Runtime(Settings(str(cfg)), load_text(cfg.read_text()))
    try:
        with caplog.at_level(logging.INFO, logger="maglev.daemon.runtime"):
            rt.start()
    finally:
        rt.stop()
    assert (
        f"starting: diff engine {diff.IMPLEMENTATION}, table engine {table.IMPLEMENTATION}, "
        f"config loader engine {fastload.IMPLEMENTATION}, "
        f"config build engine {fastbuild.IMPLEMENTATION}, " in caplog.text
    )


def test_json_log_lines_carry_transition_fields() -> None:
    import io
    import json

    from maglev.daemon.logsetup import JsonFormatter

    rec = logging.LogRecord(
        "maglev.reconcile", logging.INFO, __file__, 1, "backend %s: up", ("b1",), None
    )
    rec.fields = {"event": "transition", "backend": "b1", "from": "up", "to": "down"}
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(JsonFormatter())
    h.emit(rec)
    doc = json.loads(buf.getvalue())
    assert doc["message"] == "backend b1: up" and doc["level"] == "info"
    assert (doc["event"], doc["backend"], doc["from"], doc["to"]) == (
        "transition",
        "b1",
        "up",
        "down",
    )


def test_check_worker_priority_from_config_and_reload(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """health.priority sets the check workers' nice value at start and a reload changes it; a
    reload that changes a restart-only setting says so and keeps the running value."""
    import os
    import time

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    first, second = min(mine + 2, 19), min(mine + 4, 19)  # lowering needs no privilege
    cfg = tmp_path / "maglev.yaml"
    text = CONFIG.format(ctl=tmp_path / "ctl.sock")
    cfg.write_text(text + f"health: {{priority: {first}, workers: 2}}\n")  # two, each set
    rt = Runtime(Settings(str(cfg)), load_text(cfg.read_text()))
    try:
        rt.start()
        end = time.monotonic() + 5
        while rt.scheduler.priorities() != (first, first) and time.monotonic() < end:
            time.sleep(0.01)
        assert rt.scheduler.priorities() == (first, first)
        cfg.write_text(text + f"health: {{priority: {second}, workers: 3}}\n")
        with caplog.at_level(logging.WARNING):
            res = rt.reload("test")
        assert res["ok"] and res["restart_needed"] == ["health.workers"]
        assert "health.workers changed; applied when maglevd restarts" in caplog.text
        assert len(rt.scheduler.priorities()) == 2  # still the two workers it started with
        end = time.monotonic() + 5
        while rt.scheduler.priorities() != (second, second) and time.monotonic() < end:
            time.sleep(0.01)
        assert rt.scheduler.priorities() == (second, second)
    finally:
        rt.stop()
