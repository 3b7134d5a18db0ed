"""One maglevd per control socket: the instance lock, on real daemons (subprocesses) and in-process.

A second maglevd with the same config refuses to start, naming the first one's pid and the lock
file, and leaves the first one's control socket alone; a daemon killed with SIGKILL leaves its
lock file behind, and that never blocks a restart (the kernel dropped the flock).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from maglev.config import load_text
from maglev.daemon.lock import AlreadyRunning, InstanceLock
from maglev.daemon.runtime import Runtime, Settings

pytestmark = pytest.mark.integration

BIN = pathlib.Path(sys.executable).parent

CONFIG = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s}}}}
backends: {{s1: {{address: 127.0.0.42}}}}
frontends:
  f: {{address: 192.0.2.42, protocol: tcp, port: 80, encap: gre4, pools: [{{name: p, backends: {{s1: {{}}}}}}]}}
control: {{socket: {ctl}}}
"""


def get_status(ctl: pathlib.Path) -> dict[str, Any]:
    """GET /v1/status on the control socket, by hand: HTTP/1.0 over AF_UNIX."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(ctl))
        s.sendall(b"GET /v1/status HTTP/1.0\r\nHost: maglevd\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", head
    doc: dict[str, Any] = json.loads(body)
    return doc


class Daemon:
    def __init__(self, tmp: pathlib.Path, name: str) -> None:
        self.ctl = tmp / "ctl.sock"
        self.cfg = tmp / "maglev.yaml"
        self.cfg.write_text(CONFIG.format(ctl=self.ctl))
        self.log = tmp / f"{name}.log"
        self.pidfile = tmp / f"{name}.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [str(BIN / "maglevd"), "run", "--config", str(self.cfg),
                 "--pidfile", str(self.pidfile)],
                stdout=logf, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self.proc

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                st = get_status(self.ctl)
                if st.get("pid") == self.proc.pid:
                    return st
            except (OSError, AssertionError, ValueError):
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)


@pytest.fixture
def daemons(tmp_path: pathlib.Path) -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    try:
        yield made
    finally:
        for d in made:
            d.stop()


def test_a_second_maglevd_refuses_and_leaves_the_first_alone(
    tmp_path: pathlib.Path, daemons: list[Daemon]
) -> None:
    first = Daemon(tmp_path, "first")
    daemons.append(first)
    first.start()
    st = first.wait_ready()
    assert first.proc is not None and st["pid"] == first.proc.pid
    lock = pathlib.Path(f"{first.ctl}.lock")
    assert lock.read_text().strip() == str(first.proc.pid)
    sock_ino = os.stat(first.ctl).st_ino

    second = Daemon(tmp_path, "second")
    daemons.append(second)
    code = second.start().wait(30)
    out = second.log.read_text()
    assert code != 0, out
    assert f"pid {first.proc.pid}" in out and str(lock) in out, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if "pid" in ln and str(lock) in ln]
    assert len(lines) == 1, out
    # never bound: the first one's socket is the same file and still answers
    assert os.stat(first.ctl).st_ino == sock_ino
    assert get_status(first.ctl)["pid"] == first.proc.pid
    assert lock.read_text().strip() == str(first.proc.pid)
    assert not second.pidfile.exists()
    assert first.proc.poll() is None
    assert first.stop() == 0
    assert not lock.exists()  # removed, while still held, by the one stopping


def test_a_lock_left_by_a_killed_maglevd_does_not_block_a_restart(
    tmp_path: pathlib.Path, daemons: list[Daemon]
) -> None:
    first = Daemon(tmp_path, "first")
    daemons.append(first)
    proc = first.start()
    first.wait_ready()
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait(10)
    lock = pathlib.Path(f"{first.ctl}.lock")
    assert lock.read_text().strip() == str(proc.pid)  # left behind, naming a dead pid

    again = Daemon(tmp_path, "again")
    daemons.append(again)
    new = again.start()
    st = again.wait_ready()
    assert st["pid"] == new.pid
    assert lock.read_text().strip() == str(new.pid)
    assert again.stop() == 0


def test_the_lock_in_process(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "sub" / "ctl.sock.lock")
    a, b = InstanceLock(path), InstanceLock(path)
    a.acquire(111)
    try:
        with pytest.raises(AlreadyRunning, match=rf"pid 111\) holds {path}; not starting"):
            b.acquire(222)  # a second open file description: flock conflicts in one process too
        assert pathlib.Path(path).read_text() == "111\n"  # the refused one did not truncate it
    finally:
        a.release()
    assert not os.path.exists(path)
    b.acquire(222)
    assert pathlib.Path(path).read_text() == "222\n"
    b.release()
    b.release()  # idempotent


def test_a_second_runtime_on_the_same_socket_binds_nothing(tmp_path: pathlib.Path) -> None:
    ctl = tmp_path / "ctl.sock"
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(CONFIG.format(ctl=ctl))
    config = load_text(cfg.read_text())
    one = Runtime(Settings(str(cfg)), config)
    other = Runtime(Settings(str(cfg)), config)
    try:
        one.start()
        ino = os.stat(ctl).st_ino
        with pytest.raises(AlreadyRunning):
            other.start()
        assert other.emulator is None and not hasattr(other, "control")
        other.stop()  # as after a failed start: must not remove what the first one owns
        assert os.stat(ctl).st_ino == ino
        assert pathlib.Path(f"{ctl}.lock").exists()
    finally:
        one.stop()
    # a different socket path is a different lock: both may run
    two = Runtime(Settings(str(cfg), control_socket=str(tmp_path / "two.sock")), config)
    try:
        two.start()
    finally:
        two.stop()
