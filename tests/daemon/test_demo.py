"""`maglevd demo` (what `make run` runs): demo backends + maglevd on the embedded emulator."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_programs_both_frontends_and_fails_over(tmp_path: pathlib.Path) -> None:
    ctl = tmp_path / "ctl.sock"
    proc = subprocess.Popen(
        [str(BIN / "maglevd"), "demo", "--config", str(ROOT / "etc" / "maglev-demo.yaml"),
         "--flap", "3", "--control-socket", str(ctl)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def frontend(name: str) -> dict[str, object]:
        r = subprocess.run(
            [str(BIN / "maglevc"), "--socket", str(ctl), "--json", "show", "frontend", name],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return json.loads(r.stdout) if r.returncode == 0 else {}

    try:
        seen: set[object] = set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and seen != {"primary", "backup"}:
            www, app = frontend("www"), frontend("app")
            if www.get("state") == "up":
                seen.add(www.get("active_pool"))
            if app:
                assert app.get("state") in ("up", "unknown")
            time.sleep(0.2)
        assert seen == {"primary", "backup"}  # the flapping primary pool fails over and back
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
    assert "demo backend web1 serving HTTP on 127.0.0.11:8081" in out
    assert "Traceback" not in out
