"""The socket calls of the fast probes (`maglev.health.fast`), on raw descriptors.

Two engines, selected as `maglev.diff` selects its own: the compiled `_sockops` (Cython: the
syscalls made with the GIL held, so a probe gives the GIL up only in the reactor's epoll wait)
unless MAGLEV_NO_EXTENSIONS=1, its pure-Python twin `_sockops_py` (the `socket` module)
otherwise, or when the compiled module is missing, unless MAGLEV_REQUIRE_EXTENSIONS=1 makes that
an ImportError; `IMPLEMENTATION` says which. Both return the same values for the same calls.

- `start(fd, family, ip, port, source, ep, events) -> (fd, err, local)`: open a non-blocking
  stream socket (when `fd` < 0; else take that descriptor), SO_LINGER 0, bind to `source`
  (packed, or b""), connect to `ip` (packed):`port`, and register it with the epoll object `ep`
  for `events`. err 0: connected; EINPROGRESS: under way; other: failed (`local`: in a local
  step, not the connect), the descriptor closed and fd -1.
- `so_error(fd) -> int`; `send_from(fd, data, offset) -> sent | -errno`;
  `receive(fd, n) -> bytes | errno`; `close_fd(fd)`.
"""

from __future__ import annotations

import os

if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev.health import _sockops_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev.health import (  # type: ignore[attr-defined,no-redef,unused-ignore]
            _sockops as _engine,
        )

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev.health import _sockops_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name
start = _engine.start
so_error = _engine.so_error
send_from = _engine.send_from
receive = _engine.receive
close_fd = _engine.close_fd

__all__ = ["IMPLEMENTATION", "close_fd", "engine_name", "receive", "send_from", "so_error", "start"]
