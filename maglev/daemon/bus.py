"""Event fan-out to observers (the control API's event stream).

Any thread may publish (the reconciler publishes transitions, reloads and VPP connection changes;
the log handler publishes log lines). Each subscriber has a bounded queue: a slow reader loses its
oldest events rather than slowing the publisher or growing without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _matches(ev: dict[str, Any], filters: dict[str, str]) -> bool:
    for key in ("type",):
        if key in filters and ev.get(key) != filters[key]:
            return False
    if "backend" in filters and filters["backend"] not in (
        ev.get("backend"),
        *ev.get("backends", ()),
    ):
        return False
    if "frontend" in filters and filters["frontend"] not in (
        ev.get("frontend"),
        *ev.get("frontends", ()),
    ):
        return False
    if ev.get("type") == "log":
        floor = LEVELS.get(filters.get("level", "info").lower(), 20)
        return int(ev.get("levelno", 0)) >= floor
    return True


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subs: dict[int, tuple[queue.Queue[dict[str, Any]], dict[str, str]]] = {}
        self._next = 0
        self.queue_size = queue_size
        self.dropped = 0

    def subscribe(
        self, filters: dict[str, str]
    ) -> tuple[queue.Queue[dict[str, Any]], Callable[[], None]]:
        level = filters.get("level")
        if level is not None and level.lower() not in LEVELS:
            raise ValueError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
        q: queue.Queue[dict[str, Any]] = queue.Queue(self.queue_size)
        with self._lock:
            sid = self._next
            self._next += 1
            self._subs[sid] = (q, dict(filters))

        def unsubscribe() -> None:
            with self._lock:
                self._subs.pop(sid, None)

        return q, unsubscribe

    def publish(self, ev: dict[str, Any]) -> None:
        ev.setdefault("time", time.time())
        with self._lock:
            subs = list(self._subs.values())
        for q, filters in subs:
            if not _matches(ev, filters):
                continue
            while True:
                try:
                    q.put_nowait(ev)
                    break
                except queue.Full:
                    try:
                        q.get_nowait()  # drop the oldest: a slow reader must not block us
                    except queue.Empty:
                        continue
                    with self._lock:  # several threads publish
                        self.dropped += 1

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)


class BusLogHandler(logging.Handler):
    """Publishes log records as `log` events (level filtering happens per subscriber)."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.DEBUG)
        self.bus = bus
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False) or not self.bus.subscribers:
            return
        self._local.busy = True  # never recurse if publishing itself logs
        try:
            self.bus.publish(
                {
                    "type": "log",
                    "level": record.levelname.lower(),
                    "levelno": record.levelno,
                    "logger": record.name,
                    "thread": record.threadName,
                    "message": record.getMessage(),
                    "time": record.created,
                }
            )
        finally:
            self._local.busy = False
