"""Convergence: how long a backend's change of health takes to reach VPP, stage by stage.

Owned by the reconciler thread: `note` is called for each transition as it happens (the hot
path of a burst: one tuple appended), `settle` after each write with the time VPP's replies
were in hand. The histogram arithmetic happens in `settle`, after the replies, so it never
delays the weights it measures. Readers get the frozen `ConvergenceStats` in the snapshot.

What is measured: a backend's change of health decided by probes, between `up` and `down`
(a first verdict from `unknown` is discovery, not convergence; an operator's action has no
probe to start from). All stamps are monotonic seconds:

- `queue`: the deciding probe finished (`ProbeResult.at`) -> the reconciler took it (the
  turn's `now`, which is the transition's `at`);
- `detect`: the first probe of the run that made the backend fall (its first failure) or rise
  (its first success) finished -> the transition; `fall` (or `rise`) x the interval by design,
  the deciding probe's `queue` included;
- `write`: the transition -> the replies of the VPP write that carried a weight for the
  backend (the first pass over its frontends after the transition);
- `total`: onset -> those replies (`detect` + `write`).

A transition whose first pass writes nothing for the backend (a backup-pool backend whose
weight stays 0, a drain the vantage guard holds, a change the disruption budget defers) has
`queue` and `detect` but no `write` or `total`: it is counted as `unwritten`. One whose write
failed waits for the retry (a full sync after the failure or the reconnect) and is measured to
its reply: an outage is part of convergence.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Sequence, Set

from maglev.health.state import Transition
from maglev.model import BackendState, IPAddress
from maglev.reconcile.snapshot import (
    CONVERGENCE_BUCKETS,
    CONVERGENCE_STAGES,
    Converged,
    ConvergenceStats,
    Histogram,
)
from maglev.vpp.ops import Op

BOUNDS, STAGES = CONVERGENCE_BUCKETS, CONVERGENCE_STAGES  # the published value's own
RECENT = 16  # the last convergences kept for `maglevc show status`
PENDING_MAX = 65_536  # transitions waiting for a write (bounds memory while VPP is away)

_MEASURED = (BackendState.UP, BackendState.DOWN)


class Convergence:
    """The reconciler's convergence counters (mutable, its thread only)."""

    def __init__(self, on: bool = True) -> None:
        self.on = on  # off in a dry run: nothing is written, so nothing converges
        # (transition, its frontends, the backend's address, its onset, its deciding probe)
        self._pending: list[tuple[Transition, tuple[str, ...], IPAddress, float, float]] = []
        self._counts = [[0] * (len(BOUNDS) + 1) for _ in STAGES]
        self._sums = [0.0] * len(STAGES)
        self.written = self.unwritten = self.dropped = 0
        self._recent: deque[tuple[Transition, float | None]] = deque(maxlen=RECENT)
        self._frozen: ConvergenceStats | None = ConvergenceStats()

    def note(self, t: Transition, frontends: tuple[str, ...], address: IPAddress) -> None:
        """A transition happened: measured once a pass over its frontends has written."""
        onset, probed = t.onset, t.probed
        if not self.on or onset is None or probed is None or t.old not in _MEASURED:
            return
        if len(self._pending) >= PENDING_MAX:
            self.dropped += 1
            self._frozen = None
            return
        self._pending.append((t, frontends, address, onset, probed))
        self._frozen = None  # `pending` moved

    def settle(
        self,
        names: Set[str] | None,
        done: Sequence[Op],
        planned: Sequence[Op],
        replied: float,
    ) -> None:
        """A pass over `names` (None: a full sync) wrote `done` of `planned`; VPP's replies were
        in at `replied`.

        The transitions of those frontends settle (a full sync settles all, those of frontends
        a reload removed included): measured to `replied` when an operation for the backend
        succeeded, unwritten when the pass had none for it; one whose operation failed waits
        for the retry.
        """
        if not self._pending:
            return
        written = {a for op in done if (a := getattr(op, "address", None)) is not None}
        failed: set[IPAddress] = set()
        if len(done) < len(planned):
            failed = {a for op in planned if (a := getattr(op, "address", None)) is not None}
            failed -= written
        keep = []
        # Inlined: a burst settles thousands at once, after the replies but before the next
        # turn. The transitions of one turn share their `at`, hence their `write` stage.
        (cq, cd, cw, ct), sums = self._counts, self._sums
        sq = sd = sw = st = 0.0
        n_written = n_unwritten = 0
        recent = self._recent.append
        at_before, write, w_bucket = None, 0.0, 0
        for entry in self._pending:
            t, fes, address, onset, probed = entry
            if names is not None and fes and names.isdisjoint(fes):
                keep.append(entry)  # not this pass's frontends
                continue
            put = address in written
            if not put and address in failed:
                keep.append(entry)  # waits for the retry
                continue
            at = t.at
            queue, detect = at - probed, at - onset
            if queue < 0.0:  # stamps from another clock in a test, or a clock step
                queue = 0.0
            if detect < 0.0:
                detect = 0.0
            cq[bisect_left(BOUNDS, queue)] += 1
            cd[bisect_left(BOUNDS, detect)] += 1
            sq += queue
            sd += detect
            if put:
                if at != at_before:
                    at_before, write = at, max(0.0, replied - at)
                    w_bucket = bisect_left(BOUNDS, write)
                cw[w_bucket] += 1
                sw += write
                ct[bisect_left(BOUNDS, detect + write)] += 1
                st += detect + write
                n_written += 1
                recent((t, replied))
            else:
                n_unwritten += 1
                recent((t, None))
        sums[0] += sq
        sums[1] += sd
        sums[2] += sw
        sums[3] += st
        self.written += n_written
        self.unwritten += n_unwritten
        self._pending = keep
        self._frozen = None

    def stats(self) -> ConvergenceStats:
        """The frozen copy for the snapshot (built again only after something changed)."""
        if self._frozen is None:
            self._frozen = ConvergenceStats(
                stages=tuple(
                    (s, Histogram(BOUNDS, tuple(c), total, sum(c)))
                    for s, c, total in zip(STAGES, self._counts, self._sums, strict=True)
                ),
                written=self.written,
                unwritten=self.unwritten,
                dropped=self.dropped,
                pending=len(self._pending),
                recent=tuple(_converged(t, r) for t, r in self._recent),
            )
        return self._frozen


def _converged(t: Transition, replied: float | None) -> Converged:
    assert t.onset is not None and t.probed is not None
    detect = max(0.0, t.at - t.onset)
    write = None if replied is None else max(0.0, replied - t.at)
    return Converged(
        t.backend, t.old, t.new, max(0.0, t.at - t.probed), detect, write,
        None if write is None else detect + write,
    )  # fmt: skip
