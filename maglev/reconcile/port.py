"""The reconciler as other threads see it: its latest snapshot, and a typed request sender.

The control API, the metrics collector and the daemon's main thread get a `ReconcilerPort`,
never the reconciler itself: they read the immutable `Snapshot` it published last, and they put
request messages (`maglev.reconcile.events`) on its queue and wait, bounded, for the frozen
reply. Any thread may use a port.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, TypeVar

from maglev.errors import MaglevError
from maglev.reconcile.snapshot import Snapshot

T = TypeVar("T")

REQUEST_TIMEOUT = 30.0
QUEUE_TIMEOUT = 5.0


class Overloaded(MaglevError):
    """The reconciler's queue stayed full: the request was not sent."""


class NoAnswer(MaglevError):
    """The reconciler did not answer in time."""


class Asks(Protocol[T]):
    """A request message with a reply future."""

    @property
    def reply(self) -> Future[T]: ...


class ReconcilerPort:
    def __init__(
        self,
        inbox: queue.Queue[Any],
        snapshot: Callable[[], Snapshot],
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._inbox = inbox
        self._snapshot = snapshot
        self.timeout = timeout

    @property
    def snapshot(self) -> Snapshot:
        """The latest published snapshot (immutable)."""
        return self._snapshot()

    def queue_depth(self) -> int:
        return self._inbox.qsize()

    def send(self, msg: object, timeout: float = QUEUE_TIMEOUT) -> None:
        """Queue a message that needs no answer; raises `Overloaded` if the queue stays full."""
        try:
            self._inbox.put(msg, timeout=timeout)
        except queue.Full as e:
            raise Overloaded("the reconciler is overloaded (queue full); try again") from e

    def ask(self, msg: Asks[T], timeout: float | None = None) -> T:
        """Send a request and wait for its reply; the reconciler's error reply is raised here
        (`RequestError`, `VppError`, ...); `Overloaded` or `NoAnswer` when it cannot answer."""
        self.send(msg, min(QUEUE_TIMEOUT, self.timeout if timeout is None else timeout))
        try:
            return msg.reply.result(timeout=self.timeout if timeout is None else timeout)
        except FutureTimeout as e:
            raise NoAnswer("the reconciler did not answer in time") from e
