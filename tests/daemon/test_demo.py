"""`maglevd demo` (what `make run` runs): demo backends + maglevd on the embedded emulator."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(tmp_path: pathlib.Path, http_port: int, tcp_port: int) -> pathlib.Path:
    """The demo config with its two fixed server ports replaced, so that another run of the
    suite (or `make run`) on this machine does not take them first."""
    text = (ROOT / "etc" / "maglev-demo.yaml").read_text()
    for old, new in (
        ("port: 8081\n", f"port: {http_port}\n"),
        ("port: 8082\n", f"port: {tcp_port}\n"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "maglev-demo.yaml"
    path.write_text(text)
    return path


def test_demo_programs_both_frontends_and_fails_over(tmp_path: pathlib.Path) -> None:
    ctl = tmp_path / "ctl.sock"
    http_port, tcp_port = free_port(), free_port()
    cfg = demo_config(tmp_path, http_port, tcp_port)
    proc = subprocess.Popen(
        [str(BIN / "maglevd"), "demo", "--config", str(cfg), "--flap", "3",
         "--control-socket", str(ctl)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def frontend(name: str) -> dict[str, object]:
        r = subprocess.run(
            [str(BIN / "maglevc"), "--socket", str(ctl), "--json", "show", "frontend", name],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return json.loads(r.stdout) if r.returncode == 0 else {}

    seen: set[object] = set()
    app_states: set[object] = set()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and seen != {"primary", "backup"} and proc.poll() is None:
            www, app = frontend("www"), frontend("app")
            if www.get("state") == "up":
                seen.add(www.get("active_pool"))
            if app:
                app_states.add(app.get("state"))
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    # the flapping primary pool fails over and back
    assert seen == {"primary", "backup"}, out[-2000:]
    assert app_states <= {"up", "unknown"}, out[-2000:]
    assert proc.returncode == 0, out[-2000:]
    assert f"demo backend web1 serving HTTP on 127.0.0.11:{http_port}" in out
    assert "Traceback" not in out
