"""Demo backends: small HTTP and TCP servers on loopback for the backends of a demo config.

`maglevd demo` starts one server per backend address, on the port of the backend's healthcheck
(HTTP for http checks, a plain TCP listener otherwise), then runs the daemon. Servers can be
stopped and started again (`--flap` does it on a timer) to watch a frontend fail over to its
backup pool and back. Only loopback addresses are served; anything else is refused.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socketserver
import threading
from typing import Any

from maglev.model import CheckType, Config

log = logging.getLogger(__name__)


class _Quiet:
    """Health checks hang up early (a reset after the status line): not worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("demo backend: client %s went away", client_address)


class _Http(_Quiet, socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"demo backend {self.server.server_address!r}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Tcp(_Quiet, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.sendall(b"hello\n")


class DemoBackend:
    def __init__(self, name: str, address: str, port: int, http: bool) -> None:
        self.name, self.address, self.port, self.http = name, address, port, http
        self._server: socketserver.BaseServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        cls = _Http if self.http else _Tcp
        handler = _Ok if self.http else _Hello
        srv = cls((self.address, self.port), handler)
        threading.Thread(
            target=srv.serve_forever, args=(0.1,), name=f"maglev-demo-{self.name}", daemon=True
        ).start()
        self._server = srv

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()


def demo_backends(config: Config) -> list[DemoBackend]:
    out = []
    for name, b in config.backends.items():
        if not b.address.is_loopback:
            raise ValueError(f"backends.{name}: demo servers only run on loopback, not {b.address}")
        hc = config.healthchecks.get(b.healthcheck) if b.healthcheck else None
        if hc is None or hc.type not in (CheckType.HTTP, CheckType.TCP) or not hc.port:
            continue
        out.append(DemoBackend(name, str(b.address), hc.port, hc.type is CheckType.HTTP))
    return out


def start_all(backends: list[DemoBackend]) -> None:
    for b in backends:
        try:
            b.start()
        except OSError as e:
            raise OSError(f"demo backend {b.name} on {b.address}:{b.port}: {e.strerror}") from e
        log.info(
            "demo backend %s serving %s on %s:%d",
            b.name,
            "HTTP" if b.http else "TCP",
            b.address,
            b.port,
        )


class Flapper:
    """Stops the first pool's backends of the first frontend every `period` s, then restarts them."""

    def __init__(self, config: Config, backends: list[DemoBackend], period: float) -> None:
        first = next(iter(config.frontends.values()), None)
        names = {m.backend for m in first.pools[0].members} if first else set()
        self.targets = [b for b in backends if b.name in names]
        self.period = period
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maglev-demo-flap", daemon=True)

    def start(self) -> None:
        if self.targets:
            self._thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.period):
            down = self.targets[0].running
            for b in self.targets:
                if down:
                    b.stop()
                else:
                    b.start()
            log.info(
                "demo: %s %s",
                "stopped" if down else "restarted",
                ", ".join(b.name for b in self.targets),
            )

    def stop(self) -> None:
        self.stopping.set()
