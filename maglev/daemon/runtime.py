"""The daemon: wires the threads, owns the process lifecycle, reloads and stops.

Threads: `maglev-check-N` (probe workers), `maglev-reconciler`, `maglev-config-watch`,
`maglev-control-*`, `maglev-metrics` (and its `maglev-metrics-conn`), and `maglev-vppsim` when
the emulator is embedded.
The main thread only waits on `self.events`: signal handlers and other threads put requests
there (reload, stop, a thread that died) and the main thread acts on them one at a time. It owns
reloads: it reads and validates the file (slow for a big config, so not on the reconciler
thread) and hands the new config to the reconciler, which owns the live config, compares it
once and publishes the outcome in its snapshot. The control API and the metrics collector are
given narrow ports (`ReconcilerPort`, `DaemonInfo`), not this object.

One maglevd per control socket: before anything binds a socket or connects to VPP, the main
thread takes an exclusive lock on `<control socket>.lock` (`InstanceLock`) and holds it until the
daemon has stopped; a second maglevd with the same socket refuses to start, naming the first.

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
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from types import FrameType
from typing import Any

from maglev import __version__, diff, table
from maglev.config import fastbuild, fastload, load_file
from maglev.config.loader import Memo
from maglev.config.watcher import ConfigWatcher
from maglev.daemon import memory
from maglev.daemon.api import DaemonApi
from maglev.daemon.bus import BusLogHandler, EventBus
from maglev.daemon.control import ControlServer, TokenFileError, read_token_file
from maglev.daemon.docs import reload_doc
from maglev.daemon.info import DaemonInfo
from maglev.daemon.lock import AlreadyRunning, InstanceLock
from maglev.daemon.metrics import MaglevCollector, MetricsServer
from maglev.daemon.notify import sd_notify
from maglev.errors import ConfigError, ConfigInvalid, MaglevError
from maglev.health.scheduler import Scheduler
from maglev.model import Config
from maglev.reconcile import events
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.statefile import StateFileError, load_or_discard
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
from maglev.vpp.papi import VppConnection

log = logging.getLogger(__name__)

STOP_DEADLINE = 10.0
# How long a thread may keep the GIL while another waits for it (CPython's default is 5 ms). The
# check workers are I/O-bound: each probe takes the GIL back several times (connect, reactor
# pass, result), and while a big reload is read and applied on the main and reconciler threads,
# every one of those waits lasted a whole interval: with 1,000 probes/s beside a 40,000-backend
# reload, 35-57% of probes started within 100 ms of schedule at 5 ms, 82% at 1 ms
# (`maglev-bench reload`). At steady state nothing holds the GIL long, and this costs nothing.
SWITCH_INTERVAL = 0.001
RELOAD_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: str
    dry_run: bool = False
    pidfile: str | None = None
    control_socket: str | None = None  # overrides control.socket from the config
    metrics_listen: str | None = None  # overrides metrics.listen
    state_file: str | None = None  # operator state kept across restarts (None: in memory only)
    discard_state: bool = False  # start even when the state file cannot be read (renamed aside)


def lock_path(settings: Settings, config: Config) -> str | None:
    """`<control socket>.lock`; `<pidfile>.lock` when there is no control socket."""
    sock = settings.control_socket or config.control.socket
    if sock:
        return f"{sock}.lock"
    return f"{settings.pidfile}.lock" if settings.pidfile else None


class Runtime:
    def __init__(self, settings: Settings, config: Config, memo: Memo | None = None) -> None:
        self.settings = settings
        self.config = config  # the config maglevd starts with; the reconciler owns the live one
        self.memo = memo if memo is not None else Memo()  # reloads validate only what changed
        self.config_path = os.path.abspath(settings.config_path)
        self.dry_run = settings.dry_run
        self.pid = os.getpid()
        self.started_wall = time.time()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.inbox = events.Inbox(maxsize=config.health.queue_size)
        self.port = ReconcilerPort(self.inbox, lambda: self.reconciler.snapshot)
        self.stopping = threading.Event()
        self.bus = EventBus()
        self._priority = config.health.priority  # the check workers' nice value (main thread)
        self._main = threading.get_ident()
        self._tmpdir: str | None = None
        self.emulator: Any = None
        self.vpp_socket = config.vpp.api_socket
        self.stats_socket = config.vpp.stats_socket
        self.exit_code = 0
        self._sigterms = 0
        path = lock_path(settings, config)
        self.lock = InstanceLock(path) if path else None

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        # First: nothing may bind a socket (the control socket's path is unlinked first) or talk
        # to VPP while another maglevd owns them.
        if self.lock is not None:
            self.lock.acquire(self.pid)
        else:
            log.warning("no control socket and no pidfile: nothing stops a second maglevd")
        # Second, before any thread starts: a token file others can read is refused outright.
        c = cfg.control
        self._token = read_token_file(c.token_file) if c.token_file else None
        # Third, still before any thread: the operator state, so that the first pass already
        # writes it. Under the lock: a second maglevd must not rename the first one's file aside.
        st = self.settings.state_file
        state = load_or_discard(st, self.settings.discard_state) if st else None
        logging.getLogger().addHandler(BusLogHandler(self.bus))
        log.info(
            "maglevd %s starting: diff engine %s, table engine %s, config loader engine %s, "
            "config build engine %s, config %s (%d frontends, %d backends, %d healthchecks)%s",
            __version__, diff.IMPLEMENTATION, table.IMPLEMENTATION, fastload.IMPLEMENTATION,
            fastbuild.IMPLEMENTATION,
            self.config_path, len(cfg.frontends),
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
            on_news=self.inbox.bell.set,
        )
        self.info = DaemonInfo(
            version=__version__,
            pid=self.pid,
            started=self.started_wall,
            config_path=self.config_path,
            dry_run=self.dry_run,
            vpp_socket=self.vpp_socket,
            embedded=cfg.vpp.embedded,
            stats_socket=self.stats_socket,
        )
        self.reconciler = Reconciler(
            cfg,
            self.inbox,
            PapiLb(conn),
            self.scheduler,
            publish=self.bus.publish,
            dry_run=self.dry_run,
            stopping=self.stopping,
            on_first_sync=self._first_sync,
            on_config=memory.settle,
            on_idle=memory.tidy,
            state=state,
            # A dry run reads the operator state (it plans what a real run would) but never
            # writes it: its pauses must not take effect at the next real start.
            state_file=None if self.dry_run else st,
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
        c = cfg.control
        token = self._token
        path = self.settings.control_socket or c.socket
        api = DaemonApi(self.port, self.bus, self.info, self.request_reload)
        self.control = ControlServer(api, path, c.socket_mode, c.socket_group, c.tcp_listen, token)
        self.control.start()
        log.info(
            "control API on unix:%s%s", path, f" and tcp:{c.tcp_listen}" if c.tcp_listen else ""
        )

    def _start_metrics(self, cfg: Config) -> None:
        listen = self.settings.metrics_listen or cfg.metrics.listen
        self.metrics: MetricsServer | None = None
        if not listen:
            return
        scheduler = self.scheduler
        collector = MaglevCollector(self.port, self.info, lambda: scheduler.snapshot(samples=False))
        self.metrics = MetricsServer(collector, listen)
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

    def request_reload(self, why: str, force: bool = False) -> events.ReloadStatus:
        """A reload asked for by another thread: done by the main thread, which owns reloads.
        `force`: past the reload interlocks (`maglev.reconcile.reloadhold` says what it applies)."""
        if threading.get_ident() == self._main:
            return self._reload(why, force)
        fut: Future[events.ReloadStatus] = Future()
        self.events.put(("reload", (why, fut, force)))
        return fut.result(timeout=RELOAD_TIMEOUT)

    def reload(self, why: str) -> dict[str, Any]:
        """Load, validate and apply the config file; on any problem keep the running config."""
        return reload_doc(self._reload(why))

    def _reload(self, why: str, force: bool = False) -> events.ReloadStatus:
        at = time.time()
        t0 = time.perf_counter()
        try:
            new = load_file(self.config_path, self.memo)
        except (ConfigError, ConfigInvalid) as e:
            problems = [str(p) for p in e.problems] if isinstance(e, ConfigInvalid) else [str(e)]
            for p in problems:
                log.error("config reload (%s) rejected: %s", why, p)
            log.error(
                "config reload (%s) rejected with %d problem(s); the running config stays",
                why,
                len(problems),
            )
            status = events.ReloadStatus(ok=False, at=at, why=why, problems=tuple(problems))
            self.port.send(events.NoteReload(status))
            self.bus.publish({"type": "reload", "ok": False, "source": why, "problems": problems})
            return status
        load_s = round(time.perf_counter() - t0, 3)
        log.info("config reload (%s%s): read in %.2fs", why, ", --force" if force else "", load_s)
        try:
            msg = events.ApplyConfig(new, why, at, t0, load_s, force=force, delta=self.memo.delta)
            status = self.port.ask(msg, RELOAD_TIMEOUT)
        except MaglevError as e:
            log.error("config reload (%s) failed in the reconciler: %s", why, e)
            return events.ReloadStatus(ok=False, at=at, why=why, problems=(str(e),))
        if status.ok and new.health.priority != self._priority:
            log.info("check workers: nice %d", new.health.priority)
            self._priority = new.health.priority
            self.scheduler.set_priority(new.health.priority)
        return status

    # --- main loop and stop -----------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped; returns the exit code."""
        while True:
            try:
                # Not an untimed wait: a signal that lands on another thread only sets CPython's
                # flag, and its handler runs when this thread next executes bytecode — a wait
                # that never times out would keep a SIGTERM pending for ever.
                kind, detail = self.events.get(timeout=SIGNAL_POLL)
            except queue.Empty:
                kind, detail = "", None
            if kind == "reload" and isinstance(detail, tuple):  # asked by another thread
                why, fut, force = detail
                try:
                    fut.set_result(self._reload(why, force))
                except Exception as e:
                    fut.set_exception(e)
                    raise
            elif kind == "reload":
                self._reload(str(detail))
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
                # Its VPP connection is its own (and it may be using it): leave it; the
                # process exits after this.
                log.error("the reconciler did not stop within %.0fs", STOP_DEADLINE)
                self.exit_code = self.exit_code or 1
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
        if self.lock is not None:
            self.lock.release()  # last: a successor may now unlink and bind the control socket
        log.info("maglevd stopped")


SIGNAL_POLL = 0.5
"""Seconds the main loop waits for an event before looking again (signal handlers run then)."""


def run(settings: Settings) -> int:
    """Load the config, start everything, serve until stopped. Returns the exit code."""
    sys.setswitchinterval(SWITCH_INTERVAL)  # process-wide: the check workers get their turn
    try:
        memo = Memo()
        config = load_file(settings.config_path, memo)
    except ConfigError as e:
        log.error("%s", e)
        return 1
    except ConfigInvalid as e:
        for p in e.problems:
            log.error("%s: %s", settings.config_path, p)
        log.error("%s: %d problem(s); not starting", settings.config_path, len(e.problems))
        return 2
    rt = Runtime(settings, config, memo)
    rt.install_signals()
    try:
        rt.start()
    except AlreadyRunning as e:
        log.error("%s", e)  # nothing was started, and the running one's files are its own
        return 1
    except (TokenFileError, StateFileError) as e:  # the operator's to fix: one line, no start
        hint = ""
        if isinstance(e, StateFileError):  # its operator state would be lost without a word
            hint = "; fix or move the file, or start with --discard-state to set it aside"
        log.critical("maglevd refuses to start: %s%s", e, hint)
        if rt.lock is not None:
            rt.lock.release()
        return 1
    except Exception as e:
        log.critical("maglevd failed to start: %s", e, exc_info=True)
        with contextlib.suppress(Exception):
            rt.stop()
        return 1
    return rt.serve()
