"""Exec probe: run `command` for a backend; exit status 0 means up.

Runs on a check worker's reactor: the child's exit is awaited through a pidfd, so no thread
blocks on it. `{address}` and `{port}` in the arguments are replaced by the backend's; the argv is
executed directly unless the check asks for `shell`, then the words are joined and given to
/bin/sh. The child leads its own session, so on timeout the whole process group is killed with
SIGKILL and the child is reaped before the probe returns: no stragglers, no zombies.

The child gets none of maglevd's environment (its secrets, its settings): only `BASE_ENVIRONMENT`
plus the check's `environment`. It gets none of its privileges either (`sandbox.ChildSetup`: no
capabilities, no_new_privs). A check with `netns` runs its command inside that namespace: the
child enters it with setns(2) before dropping its capabilities. Not through `ip netns exec`, which
also makes a mount namespace to remount /sys, something the unit's `RestrictNamespaces=net`
forbids; so /sys and /etc/netns/NAME are those of the host, only the network is the namespace's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from types import MappingProxyType

from maglev.health import netns, reactor, sandbox
from maglev.health.checks.base import Outcome, Progress
from maglev.model import HealthCheck, IPAddress, Reason

BASE_ENVIRONMENT: Mapping[str, str] = MappingProxyType(
    {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
)
"""What every command starts from; a check's `environment` adds to it (and may override it)."""


def argv_for(address: IPAddress, check: HealthCheck) -> list[str]:
    port = "" if check.port is None else str(check.port)
    words = [w.replace("{address}", str(address)).replace("{port}", port) for w in check.command]
    if check.shell:
        words = ["/bin/sh", "-c", " ".join(words)]
    return words


def environment_for(check: HealthCheck) -> dict[str, str]:
    return {**BASE_ENVIRONMENT, **dict(check.environment)}


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
    # Opened here, not in the child: a missing namespace is local trouble (SOCKERR, as for the
    # sockets of other checks), told apart from a failing command.
    ns_fd = netns.open_ns(check.netns) if check.netns else None
    try:
        # A preexec hook makes subprocess fork (not vfork) and run Python in the child, which
        # the docs call unsafe with threads: `ChildSetup` keeps to what is safe there (see it).
        # Capabilities can be dropped no other way: subprocess's own options (user, group,
        # process_group) only change ids, and the capability sets of a non-root maglevd survive
        # a uid change (nor is there a user to change to); a wrapper program would need
        # CAP_SETPCAP (setpriv's --bounding-set) or still leave root's exec its full set.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment_for(check),
            start_new_session=True,
            close_fds=True,
            preexec_fn=sandbox.ChildSetup(ns_fd),
        )
    except OSError as e:
        return Outcome(False, Reason.EXECFAIL, f"cannot run {argv[0]}: {e.strerror or e}")
    except subprocess.SubprocessError:  # ChildSetup failed: nothing was run
        where = f"enter network namespace {check.netns} or " if check.netns else ""
        return Outcome(False, Reason.EXECFAIL, f"cannot {where}drop privileges for {argv[0]}")
    finally:
        if ns_fd is not None:
            os.close(ns_fd)
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
