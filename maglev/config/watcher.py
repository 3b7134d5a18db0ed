"""Watches the config file for changes (watchdog) and calls back once per burst.

The directory is watched, not the file: editors and config management replace files by
rename, which a watch on the old inode would miss. Events for other files in the directory are
ignored. A burst of events (write, truncate) inside `debounce` seconds becomes one callback;
an event that says the file is complete — renamed into place (how editors and config management
replace it atomically) or closed after writing — calls back at once, without the quiet period.
Watchdog's observer thread only records the event; the callback runs on our own thread
(`maglev-config-watch`), so it never blocks the observer.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ConfigWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        dest = getattr(event, "dest_path", "")
        for p in (event.src_path, dest):
            if p and os.path.realpath(os.fsdecode(p)) == self.watcher.real_path:
                log.debug("config file event %s on %s", event.event_type, p)
                complete = event.event_type == "closed" or (
                    event.event_type == "moved" and p is dest
                )
                self.watcher.poke(now=complete)
                return


class ConfigWatcher:
    def __init__(self, path: str, callback: Callable[[], Any], debounce: float = 0.25) -> None:
        self.path = os.path.abspath(path)
        self.real_path = os.path.realpath(self.path)
        self.callback = callback
        self.debounce = debounce
        self._cond = threading.Condition()
        self._pending = False
        self._now = False  # the file is complete: no quiet period
        self._stopping = False
        self._observer: Any = None
        self._thread: threading.Thread | None = None

    def poke(self, now: bool = False) -> None:
        """A change of the file; `now`: it is complete (renamed into place, closed after a
        write), so the callback need not wait for the quiet period."""
        with self._cond:
            self._pending = True
            self._now = self._now or now
            self._cond.notify()

    def start(self) -> None:
        observer = Observer()
        observer.schedule(_Handler(self), os.path.dirname(self.path), recursive=False)
        observer.daemon = True
        observer.name = "maglev-config-observer"
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="maglev-config-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                # Debounce: wait until no new event arrived for a whole quiet period (unless an
                # event said the file is complete).
                while self._pending and not self._now and not self._stopping:
                    self._pending = False
                    self._cond.wait(self.debounce)
                if self._stopping:
                    return
                self._pending = self._now = False
            # The link may point elsewhere now (symlinked configs): follow it.
            self.real_path = os.path.realpath(self.path)
            try:
                self.callback()
            except Exception:  # the watcher must outlive a failing reload
                log.exception("config reload after a file change failed")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
