"""The LSB init script, run for real against the installed maglevd (start, status, reload, stop),
and with a pidfile that names some other process, which it must never signal."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "etc" / "init.d" / "maglevd"
BIN = pathlib.Path(sys.executable).parent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("start-stop-daemon") is None, reason="needs start-stop-daemon"),
]

CONFIG = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 100ms,
      startup-max-delay: 1s}}}}
backends:
  s1: {{address: 127.0.0.31}}
frontends:
  f:
    address: 192.0.2.31
    protocol: tcp
    port: 80
    encap: gre4
    pools: [{{name: p, backends: {{s1: {{weight: {w}}}}}}}]
control: {{socket: {ctl}}}
"""


def script(
    tmp_path: pathlib.Path, ctl: pathlib.Path, pidfile: pathlib.Path, user: str = ""
) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """The init script with its defaults file in tmp_path: a function running one action."""
    cfg = tmp_path / "maglev.yaml"
    defaults = tmp_path / "default"
    defaults.write_text(
        f"MAGLEVD={BIN / 'maglevd'}\nMAGLEV_CONFIG={cfg}\nPIDFILE={pidfile}\n"
        f'MAGLEVD_OPTS="--log-level info"\nMAGLEV_USER={user}\n'
        f"STATE_FILE={tmp_path / 'state' / 'state.json'}\n"
    )
    env = {**os.environ, "MAGLEV_DEFAULTS": str(defaults)}

    def init(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(SCRIPT), action], env=env, capture_output=True, text=True, timeout=60
        )

    return init


def test_init_script_lifecycle(tmp_path: pathlib.Path) -> None:
    ctl = tmp_path / "ctl.sock"
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(CONFIG.format(ctl=ctl, w=100))
    pidfile = tmp_path / "run" / "maglevd.pid"
    init = script(tmp_path, ctl, pidfile)

    assert init("status").returncode == 3  # not running
    try:
        r = init("start")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "maglevd started" in r.stdout
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        # the name the script matches on before it signals the pid in the pidfile
        assert pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "maglevd"
        r = init("status")
        assert r.returncode == 0 and f"pid {pid}" in r.stdout
        r = init("start")  # idempotent
        assert r.returncode == 0 and "already running" in r.stdout
        # reload: an invalid file is refused by the script and the daemon keeps running
        cfg.write_text(CONFIG.format(ctl=ctl, w=300))
        r = init("reload")
        assert r.returncode == 1 and "is invalid" in r.stderr
        # 100 -> 60: within the reload interlocks' default max-capacity-loss of 50%.
        cfg.write_text(CONFIG.format(ctl=ctl, w=60))
        r = init("reload")
        assert r.returncode == 0 and "reloaded" in r.stdout, r.stdout + r.stderr
        deadline = time.monotonic() + 15
        out = ""
        while time.monotonic() < deadline:
            out = subprocess.run(
                [str(BIN / "maglevc"), "--socket", str(ctl), "show", "frontend", "f"],
                capture_output=True, text=True, timeout=30,
            ).stdout  # fmt: skip
            if " 60 " in out:
                break
            time.sleep(0.2)
        assert " 60 " in out, out
        r = init("stop")
        assert r.returncode == 0 and "stopped" in r.stdout
        assert not pidfile.exists()
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        assert init("status").returncode == 3
    finally:
        init("stop")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.parametrize(
    ("comm", "user"),
    [
        ("sleep", ""),  # a process of the right user (root here) with another name
        ("maglevd", "nobody"),  # the right name, but not the daemon user's
    ],
)
def test_a_pidfile_naming_another_process_gets_it_no_signal(
    tmp_path: pathlib.Path, comm: str, user: str
) -> None:
    """The pidfile (and /run/maglev) belong to the daemon user: whatever pid it writes there,
    root's stop and reload must signal only a maglevd of that user."""
    if user and (os.geteuid() != 0 or not _has_user(user)):
        pytest.skip(f"needs root and a user {user!r}")
    ctl = tmp_path / "ctl.sock"
    (tmp_path / "maglev.yaml").write_text(CONFIG.format(ctl=ctl, w=100))  # reload checks it
    exe = tmp_path / comm
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)  # its name is its file's name
    victim = subprocess.Popen([str(exe), "300"])
    try:
        deadline = time.monotonic() + 10
        while pathlib.Path(f"/proc/{victim.pid}/comm").read_text().strip() != comm:
            assert time.monotonic() < deadline, "the victim process did not exec"
            time.sleep(0.01)
        pidfile = tmp_path / "run" / "maglevd.pid"
        pidfile.parent.mkdir()
        init = script(tmp_path, ctl, pidfile, user)
        for action in ("reload", "status", "stop"):
            pidfile.write_text(f"{victim.pid}\n")
            r = init(action)
            assert victim.poll() is None, (action, r.stdout, r.stderr)  # not signalled
            assert "not running" in r.stdout + r.stderr, (action, r.stdout, r.stderr)
        assert init("status").returncode == 3  # stop removed the stale pidfile
    finally:
        victim.kill()
        victim.wait(10)
