"""Exec probe: run `command` for a backend; exit status 0 means up.

Runs on a check worker's reactor: the child's exit is awaited through a pidfd, so no thread
blocks on it. `{address}` and `{port}` in the arguments are replaced by the backend's; the argv is
executed directly unless the check asks for `shell`, then the words are joined and given to
/bin/sh. The child leads its own session, so on timeout the whole process group is killed with
SIGKILL and the child is reaped before the probe returns: no stragglers, no zombies. A check with
`netns` runs its command through `ip netns exec NAME` (a child inherits the namespace of the
thread that forks it, and switching a worker thread's namespace around a fork is best avoided).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from maglev.health import reactor
from maglev.health.checks.base import Outcome, Progress
from maglev.model import HealthCheck, IPAddress, Reason


def argv_for(address: IPAddress, check: HealthCheck) -> list[str]:
    port = "" if check.port is None else str(check.port)
    words = [w.replace("{address}", str(address)).replace("{port}", port) for w in check.command]
    if check.shell:
        words = ["/bin/sh", "-c", " ".join(words)]
    if check.netns:
        words = ["ip", "netns", "exec", check.netns, *words]
    return words


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _exited(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the child without blocking the worker: a pidfd turns readable when it exits."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # kernel without pidfds: poll
        while proc.poll() is None:
            await reactor.sleep(0.02)
        return proc.returncode
    try:
        await reactor.readable(pidfd)
    finally:
        os.close(pidfd)
    return proc.wait()


async def probe(address: IPAddress, check: HealthCheck, progress: Progress) -> Outcome:
    argv = argv_for(address, check)
    if not argv:
        return Outcome(False, Reason.EXECFAIL, "no command configured")
    progress.at(Reason.EXECTOUT, "command killed")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as e:
        return Outcome(False, Reason.EXECFAIL, f"cannot run {argv[0]}: {e.strerror or e}")
    try:
        rc = await _exited(proc)
    except BaseException:
        # Deadline or shutdown: kill everything the command started, then reap the child
        # (SIGKILL cannot be ignored, so this wait is short).
        _kill_group(proc.pid)
        proc.wait()
        raise
    if rc == 0:
        return Outcome(True, Reason.EXECOK, "exit 0")
    if rc < 0:
        return Outcome(False, Reason.EXECFAIL, f"killed by signal {-rc}")
    return Outcome(False, Reason.EXECFAIL, f"exit {rc}")
