"""Messages into the reconciler's queue (besides raw `ProbeResult`s from the check workers).

Any thread may put these on the queue; only the reconciler thread acts on them. Each request
carries a `concurrent.futures.Future` that the reconciler resolves with a frozen value, or with
an error: an operator's mistake is a `maglev.errors.RequestError` (`NotFound`,
`InvalidRequest`), VPP trouble a `VppError`. Nothing here runs code of the sender's on the
reconciler thread: a request says what it wants, the reconciler decides how.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from maglev.config.changes import Delta
from maglev.model import Config, ProbeResult
from maglev.reconcile.churn import ChurnReport
from maglev.reconcile.opstate import TimeBox
from maglev.vpp.lb import LbState

# --- replies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """The outcome of the last reload attempt (part of the published snapshot)."""

    ok: bool
    at: float | None = None  # wall-clock time the reload started; None: no reload yet
    why: str | None = None  # what asked for it ("SIGHUP", "file change", "control API")
    problems: tuple[str, ...] = ()
    changes: str | None = None  # the change summary; "none" when nothing changed
    load_seconds: float | None = None
    applied_seconds: float | None = None
    restart_needed: tuple[str, ...] = ()  # settings that apply when maglevd restarts
    held: bool = False  # the reload interlocks held it: `problems` says why
    forced: bool = False  # applied with --force, past the reload interlocks
    notes: tuple[str, ...] = ()  # what the interlocks could not judge, or why --force was not


@dataclass(frozen=True, slots=True)
class ActionResult:
    backend: str
    state: str
    changed: bool
    expires: float | None = None  # wall clock: when the operator state set ends by itself


@dataclass(frozen=True, slots=True)
class OverrideResult:
    frontend: str
    pool: str
    backend: str
    override: int | None
    expires: float | None = None  # wall clock: when the override ends by itself


@dataclass(frozen=True, slots=True)
class SyncResult:
    ok: bool
    connected: bool


@dataclass(frozen=True, slots=True)
class GuardReleaseResult:
    released: bool  # False: the vantage guard was not holding
    state: str  # the guard's state after the request
    drains: int  # held drains the release applies (in the pass that follows)


@dataclass(frozen=True, slots=True)
class PreviewResult:
    summary: str
    lines: tuple[str, ...]
    held_by: tuple[str, ...] = ()  # why the reload interlocks would hold it (empty: they pass)
    notes: tuple[str, ...] = ()  # what they could not judge
    churn: ChurnReport = field(default_factory=ChurnReport)  # frontends whose buckets move


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """What an operator action would do now: its answer (as if applied) and the plan, with
    its churn, of the pass it would cause. Nothing was changed."""

    answer: ActionResult | OverrideResult
    preview: PreviewResult


# --- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyConfig:
    """Switch to a new, already validated config (a reload); answered with its status.

    The reconciler owns the live config: it compares the two (once), installs the new one if
    anything changed, and records the status in its snapshot.
    """

    config: Config
    source: str
    at: float  # wall-clock time the reload started
    started: float  # time.perf_counter() when the reload started (for applied_seconds)
    load_seconds: float
    force: bool = False  # past the reload interlocks (`maglevc config reload --force`)
    reply: Future[ReloadStatus] = field(default_factory=Future)
    delta: Delta | None = None  # the loader's account of what it built anew (`diff_configs`)


@dataclass(frozen=True, slots=True)
class NoteReload:
    """A reload that ended before reaching the reconciler (the file was rejected): recorded in
    the snapshot and counted."""

    status: ReloadStatus


@dataclass(frozen=True, slots=True)
class BackendAction:
    """Operator: pause, resume, enable or disable a backend."""

    backend: str
    action: str
    reply: Future[ActionResult] = field(default_factory=Future)
    box: TimeBox = field(
        default_factory=TimeBox
    )  # how long (pause, disable only), why, and who asked


@dataclass(frozen=True, slots=True)
class WeightOverride:
    """Operator: set (or clear, weight None) a backend's weight in one pool of a frontend."""

    frontend: str
    pool: str
    backend: str
    weight: int | None
    reply: Future[OverrideResult] = field(default_factory=Future)
    box: TimeBox = field(
        default_factory=TimeBox
    )  # how long (a weight only, not `default`), why, and who asked


@dataclass(frozen=True, slots=True)
class DryRunAction:
    """Operator: what `BackendAction(backend, action)` would do now; changes nothing."""

    backend: str
    action: str
    reply: Future[DryRunResult] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class DryRunOverride:
    """Operator: what `WeightOverride(frontend, pool, backend, weight)` would do now; changes
    nothing."""

    frontend: str
    pool: str
    backend: str
    weight: int | None
    reply: Future[DryRunResult] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Dump VPP and apply the full difference now."""

    reply: Future[SyncResult] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class ReadLbState:
    """Read VPP's lb tables now (a dump; answered with what VPP has)."""

    reply: Future[LbState] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class Preview:
    """The plan `config` would cause now, against the reconciler's view of VPP."""

    config: Config
    reply: Future[PreviewResult] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class ReleaseGuard:
    """Operator: release the vantage guard now; the drains it held apply in one pass."""

    by: str  # who asked (logged): "operator (uid 0 gid 0 pid 4242)"
    reply: Future[GuardReleaseResult] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class Stop:
    """Leave the loop. VPP's tables are left exactly as they are."""


Request = (
    ApplyConfig
    | BackendAction
    | WeightOverride
    | SyncRequest
    | ReadLbState
    | Preview
    | DryRunAction
    | DryRunOverride
    | ReleaseGuard
)

READ_ONLY: tuple[type, ...] = (ReadLbState, Preview, DryRunAction, DryRunOverride)
"""Requests that change nothing the reconciler owns: a failure while answering one (even a bug)
becomes an error reply. A bug while answering any other stops the daemon (its state may be half
changed)."""


class Inbox(queue.Queue[Any]):
    """The reconciler's queue, with a doorbell (`bell`) for what should not wait.

    After a turn of probe results that moved nothing the reconciler lets the next results gather
    (`reconciler.SETTLE`), waiting on `bell` rather than on the queue. Every message that is not
    a probe result rings it as it is queued (a request, a reload, a stop); the check workers ring
    it after queuing a result that may move a backend (`health.workers.news`). So requests and
    state changes are taken at once, and only results that repeat the last one wait.
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.bell = threading.Event()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)  # (put_nowait comes here too)
        if type(item) is not ProbeResult:
            self.bell.set()


def drain(inbox: queue.Queue[Any], limit: int) -> list[Any]:
    """Up to `limit` queued messages, oldest first, without waiting.

    One lock round for the lot instead of one `get_nowait()` per message (a burst brings
    thousands); producers blocked on a full queue are woken as `get()` would wake them.
    """
    with inbox.mutex:
        q = inbox.queue
        n = min(len(q), limit)
        if n == len(q):
            items = list(q)
            q.clear()
        else:
            items = [q.popleft() for _ in range(n)]
        if n:
            inbox.not_full.notify(n)
    return items
