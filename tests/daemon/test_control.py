"""The control API server over a real Unix socket and TCP, driven by the real maglevc client.

The handler is a small recording stand-in: these tests cover request validation, routing,
authentication and the event stream. The daemon's own handler (`DaemonApi`) behind the same
server is tested in `test_control_api`; limits, malformed requests and the socket's and token's
protection in the other `test_control_*` files, which share `Recorder`, `raw` and `wait_for`.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from maglev.cli.client import ControlClient, ControlError
from maglev.cli.maglevc import cli
from maglev.daemon.bus import BusLogHandler, EventBus
from maglev.daemon.control import ApiError, ControlServer


def wait_for(cond: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    """Wait for a condition another thread makes true; fail (not hang) after `deadline`."""
    end = time.monotonic() + deadline
    pause = threading.Event()
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline:g}s")
        pause.wait(0.005)


def raw(
    path: str, data: bytes, *, half_close: bool = True, timeout: float = 10.0
) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes to a Unix socket and read until the server closes: (status or None when
    closed unanswered, headers with lower-case names, body). A hang fails after `timeout`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    return parse_reply(reply)


def parse_reply(reply: bytes) -> tuple[int | None, dict[str, str], bytes]:
    if not reply:
        return None, {}, b""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"]), reply
    return status, headers, body


def error_of(body: bytes) -> str:
    """The JSON error message of an answer (fails on anything else, HTML included)."""
    doc = json.loads(body)
    assert isinstance(doc, dict) and isinstance(doc.get("error"), str), body
    return str(doc["error"])


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.bus = EventBus()

    def version(self) -> dict[str, Any]:
        return {"version": "9.9"}

    def status(self) -> dict[str, Any]:
        return {"uptime": 1.5, "vpp": {"connected": True}}

    def frontends(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "www", "address": "192.0.2.80/32", "protocol": "tcp", "port": 80,
                "encap": "gre4", "state": "up", "active_pool": "primary",
                "backends": [
                    {"name": "web1", "pool": "primary", "address": "127.0.0.11", "state": "up",
                     "configured_weight": 100, "effective_weight": 100, "reason": "active pool primary"},
                ],
            }
        ]  # fmt: skip

    def frontend(self, name: str) -> dict[str, Any]:
        for f in self.frontends():
            if f["name"] == name:
                return f
        raise ApiError(404, f"no frontend named {name!r}")

    def explain(self, name: str, backend: str | None = None) -> dict[str, Any]:
        raise ApiError(404, f"no frontend named {name!r}")

    def backends(self) -> list[dict[str, Any]]:
        return []

    def backend(self, name: str) -> dict[str, Any]:
        raise ApiError(404, f"no backend named {name!r}")

    def healthchecks(self) -> list[dict[str, Any]]:
        return []

    def vpp_lb_state(self) -> dict[str, Any]:
        return {"vips": []}

    def vpp_lb_counters(self) -> dict[str, Any]:
        return {"vips": []}

    def backend_action(
        self, name: str, action: str, box: object = None, dry_run: bool = False
    ) -> dict[str, Any]:
        self.calls.append(("action", name, action, *(("dry-run",) if dry_run else ())))
        return {"backend": name, "state": action}

    def set_weight(
        self,
        frontend: str,
        pool: str,
        backend: str,
        weight: int | None,
        box: object = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        self.calls.append(
            ("weight", frontend, pool, backend, weight, *(("dry-run",) if dry_run else ()))
        )
        return {"ok": True}

    def sync(self) -> dict[str, Any]:
        self.calls.append(("sync",))
        return {"ok": True}

    def reload(self, force: bool = False) -> dict[str, Any]:
        self.calls.append(("reload", force) if force else ("reload",))
        return {"ok": False, "problems": ["x: bad"]}

    def check_config(self, text: str) -> dict[str, Any]:
        self.calls.append(("check", text))
        if "bad" in text:
            return {"valid": False, "problems": ["frontends: bad is not a mapping"]}
        return {"valid": True, "summary": "plan: 0 ops", "plan": []}

    def subscribe(
        self, filters: dict[str, str]
    ) -> tuple[queue.Queue[dict[str, Any]], Callable[[], None]]:
        try:
            return self.bus.subscribe(filters)
        except ValueError as e:
            raise ApiError(400, str(e)) from e


@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[Recorder, ControlServer, str]]:
    rec = Recorder()
    path = str(tmp_path / "ctl.sock")
    srv = ControlServer(rec, path, socket_mode=0o660, tcp_listen="127.0.0.1:0", token="s3cret")
    srv.start()
    yield rec, srv, path
    srv.stop()


def test_unix_socket_mode_and_reads(served: tuple[Recorder, ControlServer, str]) -> None:
    _, _, path = served
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    c = ControlClient(path)
    assert c.request("GET", "/v1/version") == {"version": "9.9"}
    assert c.request("GET", "/v1/frontends/www")["active_pool"] == "primary"
    with pytest.raises(ControlError, match=r"no frontend named 'nope' \(HTTP 404\)"):
        c.request("GET", "/v1/frontends/nope")


W = "/v1/frontends/www/pools/p/backends/b/weight"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/nothing", None, 404, "no such endpoint: /v1/nothing"),
        ("DELETE", "/v1/status", None, 405, "DELETE is not allowed on /v1/status (use GET)"),
        ("POST", "/v1/backends/web1/explode", None, 404, "no such endpoint: /v1/backends/web1/explode"),
        ("PUT", W, {"weight": 101}, 400, "weight: 101 is not an integer in 0..100"),
        ("PUT", W, {"weight": "x"}, 400, "weight: 'x' is not an integer in 0..100"),
        ("PUT", W, {"weight": True}, 400, "weight: True is not an integer in 0..100"),
        ("PUT", W, {"w": 1}, 400, 'body must be a JSON object {"weight": 0..100}'),
        ("PUT", W, [1], 400, 'body must be a JSON object {"weight": 0..100}'),
        ("POST", "/v1/config/check", {"config": 3}, 400, 'body must be a JSON object {"config": "<YAML text>"}'),
        ("POST", "/v1/reload", {"force": "yes"}, 400, "force: 'yes' is not true or false"),
        ("POST", "/v1/reload", {"forse": True}, 400, "unknown key 'forse' (expected: force)"),
        ("POST", "/v1/reload", [True], 400, 'body must be empty or a JSON object {"force": true}'),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx(
    served: tuple[Recorder, ControlServer, str],
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    rec, _, sock = served
    with pytest.raises(ControlError) as e:
        ControlClient(sock).request(method, path, body)
    assert str(e.value) == f"{message} (HTTP {status})"
    assert rec.calls == []  # nothing reached the daemon


def test_reload_force_reaches_the_daemon(served: tuple[Recorder, ControlServer, str]) -> None:
    rec, _, sock = served
    c = ControlClient(sock)
    c.request("POST", "/v1/reload")
    c.request("POST", "/v1/reload", {"force": False})
    c.request("POST", "/v1/reload", {"force": True})
    assert rec.calls == [("reload",), ("reload",), ("reload", True)]


def test_malformed_json_body(served: tuple[Recorder, ControlServer, str]) -> None:
    import socket

    _, _, path = served
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{nope")
    f = s.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += f.readline()
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    reply = (head + f.read(length)).decode()
    s.close()
    assert reply.startswith("HTTP/1.1 400")
    assert "not valid JSON" in reply


def test_tcp_requires_token(served: tuple[Recorder, ControlServer, str]) -> None:
    rec, srv, _ = served
    assert srv.tcp_address is not None
    url = "http://{}:{}".format(*srv.tcp_address)
    refused = r"^missing or wrong bearer token \(HTTP 401\)$"
    with pytest.raises(ControlError, match=refused):
        ControlClient(url=url).request("POST", "/v1/sync")
    with pytest.raises(ControlError, match=refused):
        ControlClient(url=url, token="wrong").request("POST", "/v1/sync")
    assert rec.calls == []
    assert ControlClient(url=url, token="s3cret").request("POST", "/v1/sync") == {"ok": True}
    assert rec.calls == [("sync",)]


def test_tcp_without_token_is_refused() -> None:
    with pytest.raises(ValueError, match="unauthenticated TCP is refused"):
        ControlServer(Recorder(), None, tcp_listen="127.0.0.1:0", token=None)


def test_maglevc_commands(served: tuple[Recorder, ControlServer, str], tmp_path: Any) -> None:
    rec, _, path = served
    run = CliRunner().invoke
    r = run(cli, ["--socket", path, "show", "frontends"])
    assert r.exit_code == 0, r.output
    assert "www" in r.output and "primary" in r.output and "1/1" in r.output
    r = run(cli, ["--socket", path, "--json", "sh", "fronte", "www"])  # unique prefixes
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["name"] == "www"
    set_weight = ["set", "frontend", "www", "pool", "primary", "backend", "web1", "weight"]
    r = run(cli, ["--socket", path, "set", "backend", "web1", "pause"])
    assert r.exit_code == 0 and rec.calls[-1] == ("action", "web1", "pause")
    r = run(cli, ["--socket", path, *set_weight, "30"])
    assert r.exit_code == 0 and rec.calls[-1] == ("weight", "www", "primary", "web1", 30)
    r = run(cli, ["--socket", path, *set_weight, "default"])
    assert r.exit_code == 0 and rec.calls[-1] == ("weight", "www", "primary", "web1", None)
    r = run(cli, ["--socket", path, *set_weight, "300"])
    assert r.exit_code == 1 and "300 is not in 0..100" in r.output
    r = run(cli, ["--socket", path, "sync", "vpp", "lb", "state"])
    assert r.exit_code == 0 and rec.calls[-1] == ("sync",)
    r = run(cli, ["--socket", path, "config", "reload"])
    assert r.exit_code == 2 and rec.calls[-1] == ("reload",)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("frontends: {}\n")
    r = run(cli, ["--socket", path, "config", "check", str(cfg)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f"{cfg}: valid; plan: 0 ops"]
    assert rec.calls[-1] == ("check", "frontends: {}\n")
    cfg.write_text("frontends: bad\n")
    r = run(cli, ["--socket", path, "config", "check", str(cfg)])
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [f"{cfg}: invalid", "  frontends: bad is not a mapping"]
    r = run(cli, ["--socket", path, "show", "backend", "ghost"])
    assert r.exit_code == 1 and "no backend named 'ghost'" in r.output
    r = run(cli, ["--socket", path, "s", "x"])
    assert r.exit_code == 2 and "ambiguous" in r.output


def test_maglevc_unreachable_daemon(tmp_path: Any) -> None:
    r = CliRunner().invoke(cli, ["--socket", str(tmp_path / "none.sock"), "show", "status"])
    assert r.exit_code == 1
    assert r.output.startswith("maglevc: cannot reach maglevd")
    assert len(r.output.strip().splitlines()) == 1


def test_event_stream_filters(served: tuple[Recorder, ControlServer, str]) -> None:
    rec, _, path = served
    client = ControlClient(path)
    got: list[dict[str, Any]] = []

    def follow() -> None:
        for ev in client.events({"backend": "web2"}):
            got.append(ev)
            if len(got) == 2:
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: rec.bus.subscribers == 1, "the stream subscribed")
    rec.bus.publish({"type": "backend", "backend": "web1", "to": "down"})
    rec.bus.publish({"type": "backend", "backend": "web2", "to": "down"})
    rec.bus.publish({"type": "frontend", "frontend": "www", "backends": ["web2"], "to": "down"})
    t.join(10)
    assert not t.is_alive(), "the follower did not get its two events"
    assert [e["type"] for e in got] == ["backend", "frontend"]
    assert got[0]["backend"] == "web2"


def test_bus_log_levels_and_slow_reader() -> None:
    import logging

    bus = EventBus(queue_size=3)
    q, unsub = bus.subscribe({"level": "warning"})
    handler = BusLogHandler(bus)
    lg = logging.getLogger("maglev.test.bus")
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    try:
        lg.info("quiet")
        lg.warning("loud %d", 1)
        for i in range(5):
            bus.publish({"type": "backend", "backend": f"b{i}"})
    finally:
        lg.removeHandler(handler)
    items = [q.get_nowait() for _ in range(q.qsize())]
    assert len(items) == 3  # bounded: the oldest were dropped
    assert bus.dropped == 3
    assert [i["backend"] for i in items] == ["b2", "b3", "b4"]
    unsub()
    assert bus.subscribers == 0
    with pytest.raises(ValueError, match="'loud'"):
        bus.subscribe({"level": "loud"})
