"""Health checking: probes, their scheduling on worker threads, and the rise/fall state machine.

Pieces and the threads that use them:

- `checks/` — one module per check type (tcp, http/https, icmp, dns, exec), each a coroutine
  returning an `Outcome` (ok, `Reason`, detail); `checks.base.result` makes the `ProbeResult`.
- `reactor` — the minimal epoll loop each worker thread runs to drive many probes at once.
- `fast` — plain TCP connect and plain HTTP probes as reusable per-stream callbacks (the busy
  path: no coroutine, job or timer object per probe); the workers use them where eligible.
- `workers` — a worker thread `maglev-check-<n>`: its probe streams, timers and counters.
- `scheduler` — `Scheduler`: one stream per unique `ProbeTarget`, spread over the workers;
  `set_targets`, `set_phase(s)`, `stop`, `snapshot` (called from the reconciler or daemon thread;
  thread-safe). Time comes from an injected `maglev.clock.Clock`; tests drive a scheduler that
  was never started one pass at a time (`run_once`) on a `ManualClock`.
- `state` — `BackendHealth`, the per-backend state machine; pure, owned by the reconciler thread.
- `netns` — sockets created inside a named network namespace.
- `sandbox` — what an exec check's child drops between fork and exec: every capability.

How the reconciler drives it: feed every `ProbeResult` from its queue to the backend's
`BackendHealth.apply(result, now)`; on a transition, act on it; then, whenever
`BackendHealth.phase` changed, call `scheduler.set_phases({target: phase})` so the next probe comes
at `interval` (up), `fast_interval` (changing) or `down_interval` (down). A paused or disabled
backend is left out of `set_targets` (its stream stops); on resume/enable it is put back and
probed afresh. Several backends (or frontends) sharing an address and a healthcheck
share one `ProbeTarget`, hence one probe stream: fan its results out to all of them.
"""
