"""The daemon: wires the threads, owns the process lifecycle, reloads and stops.

Threads: `maglev-check-N` (probe workers), `maglev-reconciler`, `maglev-config-watch`,
`maglev-control-*`, `maglev-metrics`, and `maglev-vppsim` when the emulator is embedded.
The main thread only waits on `self.events`: signal handlers and other threads put requests
there (reload, stop, a thread that died) and the main thread acts on them one at a time.

Stopping leaves VPP's lb tables exactly as they are, so a restart disturbs no traffic. A thread
that dies unexpectedly stops the daemon with exit code 1 and its traceback logged: a half-dead
controller is worse than a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from maglev import __version__, diff
from maglev.config import diff_configs, load_file
from maglev.config.watcher import ConfigWatcher
from maglev.daemon import memory
from maglev.daemon.bus import BusLogHandler, EventBus
from maglev.daemon.notify import sd_notify
from maglev.errors import ConfigError, ConfigInvalid
from maglev.health.scheduler import Scheduler
from maglev.model import Config
from maglev.reconcile import events
from maglev.reconcile.dataplane import Dataplane
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp import apidefs
from maglev.vpp.papi import VppConnection

log = logging.getLogger(__name__)

STOP_DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: str
    dry_run: bool = False
    pidfile: str | None = None
    control_socket: str | None = None  # overrides control.socket from the config
    metrics_listen: str | None = None  # overrides metrics.listen


class Runtime:
    def __init__(self, settings: Settings, config: Config) -> None:
        self.settings = settings
        self.config = config
        self.config_path = os.path.abspath(settings.config_path)
        self.config_loaded_at = time.time()
        self.dry_run = settings.dry_run
        self.pid = os.getpid()
        self.started_wall = time.time()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.inbox: queue.Queue[Any] = queue.Queue(maxsize=config.health.queue_size)
        self.stopping = threading.Event()
        self.bus = EventBus()
        self.last_reload: dict[str, Any] = {"ok": True, "at": None, "problems": []}
        self.reload_counts = {"ok": 0, "rejected": 0}
        self._reload_lock = threading.Lock()
        self._tmpdir: str | None = None
        self.emulator: Any = None
        self.vpp_socket = config.vpp.api_socket
        self.stats_socket = config.vpp.stats_socket
        self.exit_code = 0
        self._sigterms = 0

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        logging.getLogger().addHandler(BusLogHandler(self.bus))
        log.info(
            "maglevd %s starting: diff engine %s, config %s (%d frontends, %d backends, "
            "%d healthchecks)%s",
            __version__, diff.IMPLEMENTATION, self.config_path, len(cfg.frontends),
            len(cfg.backends), len(cfg.healthchecks), " [dry run: VPP is never written]" if self.dry_run else "",
        )  # fmt: skip
        threading.excepthook = self._thread_died
        if cfg.vpp.embedded:
            from maglev.vppsim import Emulator

            self._tmpdir = tempfile.mkdtemp(prefix="maglev-vpp-")
            self.vpp_socket = os.path.join(self._tmpdir, "api.sock")
            self.stats_socket = os.path.join(self._tmpdir, "stats.sock")
            self.emulator = Emulator(self.vpp_socket, stats_socket=self.stats_socket)
            self.emulator.start()
            log.info("embedded VPP lb emulator serving on %s", self.vpp_socket)
        files = apidefs.api_files(cfg.vpp.api_dir)
        conn = VppConnection(self.vpp_socket, files, name=f"maglevd-{self.pid}")
        self.scheduler = Scheduler(
            self.inbox,
            workers=cfg.health.workers,
            on_fatal=self._worker_died,
            priority=cfg.health.priority,
        )
        self.reconciler = Reconciler(
            cfg,
            self.inbox,
            Dataplane(conn),
            self.scheduler,
            publish=self.bus.publish,
            dry_run=self.dry_run,
            stopping=self.stopping,
            on_first_sync=self._first_sync,
            on_config=memory.settle,
            on_idle=memory.tidy,
        )
        self.scheduler.start()
        self._reconciler_thread = threading.Thread(
            target=self.reconciler.run, name="maglev-reconciler", daemon=True
        )
        self._reconciler_thread.start()
        self._start_control(cfg)
        self._start_metrics(cfg)
        self.watcher = ConfigWatcher(
            self.config_path, lambda: self.events.put(("reload", "file change"))
        )
        self.watcher.start()
        if self.settings.pidfile:
            self._write_pidfile(self.settings.pidfile)

    def _start_control(self, cfg: Config) -> None:
        from maglev.daemon.api import DaemonApi
        from maglev.daemon.control import ControlServer

        c = cfg.control
        token = None
        if c.token_file:
            with open(c.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        path = self.settings.control_socket or c.socket
        self.control = ControlServer(
            DaemonApi(self), path, c.socket_mode, c.socket_group, c.tcp_listen, token
        )
        self.control.start()
        log.info(
            "control API on unix:%s%s", path, f" and tcp:{c.tcp_listen}" if c.tcp_listen else ""
        )

    def _start_metrics(self, cfg: Config) -> None:
        listen = self.settings.metrics_listen or cfg.metrics.listen
        self.metrics: Any = None
        if not listen:
            return
        from maglev.daemon.metrics import MetricsServer

        self.metrics = MetricsServer(self, listen)
        self.metrics.start()
        log.info("metrics on http://%s/metrics", listen)

    def _write_pidfile(self, path: str) -> None:
        tmp = f"{path}.{self.pid}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.pid}\n")
        os.replace(tmp, path)

    # --- signals and failures ---------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGHUP, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Handlers only enqueue; the main loop does the work. A second TERM/INT exits at once.
        if signum == signal.SIGHUP:
            self.events.put(("reload", "SIGHUP"))
            return
        self._sigterms += 1
        if self._sigterms > 1:
            os.write(2, b"maglevd: second stop signal, exiting now\n")
            os._exit(1)
        self.events.put(("stop", signal.Signals(signum).name))

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        tb = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        name = args.thread.name if args.thread else "?"
        self.events.put(
            ("fatal", f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}\n{tb}")
        )

    def _worker_died(self, e: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        self.events.put(("fatal", f"check worker died: {e!r}\n{tb}"))

    def _first_sync(self) -> None:
        log.info("first full sync with VPP done; ready")
        sd_notify("READY=1")

    # --- reload -----------------------------------------------------------------------------

    def reload(self, why: str) -> dict[str, Any]:
        """Load, validate and apply the config file; on any problem keep the running config."""
        with self._reload_lock:
            at = time.time()
            t0 = time.perf_counter()
            try:
                new = load_file(self.config_path)
            except (ConfigError, ConfigInvalid) as e:
                problems = (
                    [str(p) for p in e.problems] if isinstance(e, ConfigInvalid) else [str(e)]
                )
                for p in problems:
                    log.error("config reload (%s) rejected: %s", why, p)
                log.error(
                    "config reload (%s) rejected with %d problem(s); the running config stays",
                    why,
                    len(problems),
                )
                self.last_reload = {"ok": False, "at": at, "why": why, "problems": problems}
                self.reload_counts["rejected"] += 1
                self.bus.publish(
                    {"type": "reload", "ok": False, "source": why, "problems": problems}
                )
                return dict(self.last_reload)
            load_s = round(time.perf_counter() - t0, 3)
            changes = diff_configs(self.config, new)
            if changes.empty:
                log.info("config reload (%s): nothing changed (read in %.2fs)", why, load_s)
                self.last_reload = {
                    "ok": True,
                    "at": at,
                    "why": why,
                    "problems": [],
                    "changes": "none",
                    "load_seconds": load_s,
                }
                return dict(self.last_reload)
            log.info("config reload (%s, read in %.2fs): %s", why, load_s, changes.summary())
            msg = events.ApplyConfig(new, why)
            self.inbox.put(msg)
            try:
                res = msg.reply.result(timeout=600)
            except Exception as e:
                log.error("config reload (%s) failed in the reconciler: %s", why, e)
                self.last_reload = {"ok": False, "at": at, "why": why, "problems": [str(e)]}
                return dict(self.last_reload)
            pending = restart_only_changes(self.config, new)
            if pending:
                log.warning(
                    "config reload (%s): %s changed; applied when maglevd restarts (the running "
                    "value stays until then)",
                    why, ", ".join(pending),
                )  # fmt: skip
            if new.health.priority != self.config.health.priority:
                log.info("check workers: nice %d", new.health.priority)
                self.scheduler.set_priority(new.health.priority)
            self.config = new
            self.config_loaded_at = at
            self.reload_counts["ok"] += 1
            self.last_reload = {
                "ok": True,
                "at": at,
                "why": why,
                "problems": [],
                "changes": res.get("summary"),
                "load_seconds": load_s,
                "applied_seconds": round(time.perf_counter() - t0, 3),
                "restart_needed": pending,
            }
            return dict(self.last_reload)

    # --- main loop and stop -----------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped; returns the exit code."""
        while True:
            kind, detail = self.events.get()
            if kind == "reload":
                self.reload(str(detail))
            elif kind == "stop":
                log.info("stopping (%s); VPP's lb tables are left as they are", detail)
                break
            elif kind == "fatal":
                log.critical("%s", detail)
                log.critical("stopping: a thread died unexpectedly")
                self.exit_code = 1
                break
            if not self._reconciler_thread.is_alive() and not self.stopping.is_set():
                log.critical("the reconciler thread is gone; stopping")
                self.exit_code = 1
                break
        self.stop()
        return self.exit_code

    def stop(self) -> None:
        sd_notify("STOPPING=1")
        deadline = time.monotonic() + STOP_DEADLINE
        self.stopping.set()
        with contextlib.suppress(queue.Full):
            self.inbox.put_nowait(events.Stop())
        for part in ("watcher", "control", "metrics"):
            obj = getattr(self, part, None)
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:
                    log.warning("stopping %s: %s", part, e)
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.stop(timeout=max(0.1, deadline - time.monotonic()))
        thread = getattr(self, "_reconciler_thread", None)
        if thread is not None:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("the reconciler did not stop within %.0fs", STOP_DEADLINE)
                self.exit_code = self.exit_code or 1
        reconciler = getattr(self, "reconciler", None)
        if reconciler is not None:
            reconciler.dp.disconnect()
        if self.emulator is not None:
            self.emulator.stop()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        if self.settings.pidfile:
            try:
                with open(self.settings.pidfile) as f:
                    if f.read().strip() == str(self.pid):
                        os.unlink(self.settings.pidfile)
            except OSError:
                pass
        log.info("maglevd stopped")


RESTART_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("vpp.api-socket", lambda c: c.vpp.api_socket),
    ("vpp.api-dir", lambda c: c.vpp.api_dir),
    ("vpp.stats-socket", lambda c: c.vpp.stats_socket),
    ("control", lambda c: c.control),
    ("metrics.listen", lambda c: c.metrics.listen),
    ("health.workers", lambda c: c.health.workers),
    ("health.queue-size", lambda c: c.health.queue_size),
)
"""Settings a reload cannot change in a running daemon (sockets, threads, queues made at start).
Everything else applies on reload: backends, frontends, healthchecks, `vpp.lb`,
`vpp.unmanaged-vips`, `health.priority`."""


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The restart-only settings whose value differs between two configs."""
    return [key for key, get in RESTART_ONLY if get(old) != get(new)]


def run(settings: Settings) -> int:
    """Load the config, start everything, serve until stopped. Returns the exit code."""
    try:
        config = load_file(settings.config_path)
    except ConfigError as e:
        log.error("%s", e)
        return 1
    except ConfigInvalid as e:
        for p in e.problems:
            log.error("%s: %s", settings.config_path, p)
        log.error("%s: %d problem(s); not starting", settings.config_path, len(e.problems))
        return 2
    rt = Runtime(settings, config)
    rt.install_signals()
    try:
        rt.start()
    except Exception as e:
        log.critical("maglevd failed to start: %s", e, exc_info=True)
        with contextlib.suppress(Exception):
            rt.stop()
        return 1
    return rt.serve()
