"""One maglevd per control socket: an exclusive `flock` held for the daemon's life.

Taken by the main thread (`Runtime.start`) before anything binds a socket or connects to VPP,
released last when it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from maglev.errors import MaglevError


class AlreadyRunning(MaglevError):
    """Another maglevd holds the instance lock: this one must not start."""


class InstanceLock:
    """An exclusive `flock` on a lock file, held open for the daemon's life.

    Without it a second maglevd with the same config unlinks the first one's control socket,
    binds its own, and then both write the same VPP. The kernel releases a flock when its holder
    exits, however it exits (SIGKILL included), so a lock file left behind never blocks a
    restart. The file holds the holder's pid, only to name it in the refusal.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, pid: int) -> None:
        """Take the lock or raise `AlreadyRunning` naming the holder; never waits."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        while True:
            # No O_TRUNC: the file names the holder until we hold the lock ourselves.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise AlreadyRunning(
                    f"another maglevd (pid {holder or 'unknown'}) holds {self.path}; not starting"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The previous holder unlinks the file as it stops (see release); if that happened
            # between our open and our flock, we locked a file nobody else will ever open:
            # try again on the file now at the path.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Unlinked while still locked, so that a successor never locks a file on its way out.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
