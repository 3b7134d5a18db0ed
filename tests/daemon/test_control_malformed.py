"""Malformed control requests get a JSON 4xx, hang-ups get nothing, and no traceback is logged.

Over a real Unix socket with raw bytes: the inputs of a fault run that used to get 5xx answers,
the standard library's HTML pages, or tracebacks (nested JSON, unknown methods, garbage request
lines and headers, clients that hang up before the answer).
"""

from __future__ import annotations

import logging
import pathlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from maglev.cli.client import ControlClient, ControlError
from maglev.daemon.control import ApiError, ControlServer
from tests.daemon.test_control import Recorder, error_of, raw, wait_for

pytestmark = pytest.mark.integration

WEIGHT = "/v1/frontends/www/pools/p/backends/b/weight"
DEEP = b"[" * 1000 + b"]" * 1000


class Stalling(Recorder):
    """Answers `sync` and `backend_action` only once the test says the client has gone."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.client_gone = threading.Event()

    def sync(self) -> dict[str, Any]:
        self.entered.set()
        assert self.client_gone.wait(10)
        return {"ok": True, "pad": "x" * 100_000}

    def backend_action(
        self, name: str, action: str, box: object = None, dry_run: bool = False
    ) -> dict[str, Any]:
        self.entered.set()
        assert self.client_gone.wait(10)
        raise ApiError(404, f"no backend named {name!r}")

    def status(self) -> dict[str, Any]:
        raise KeyError("a bug")


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[Stalling, ControlServer, str]]:
    rec = Stalling()
    path = str(tmp_path / "ctl.sock")
    srv = ControlServer(rec, path)
    srv.start()
    yield rec, srv, path
    srv.stop()


def request(method: str, path: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: maglevd\r\n".encode("utf-8", "surrogateescape")
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/sync"), ("POST", "/v1/config/check"), ("PUT", WEIGHT), ("DELETE", WEIGHT),
     ("POST", "/v1/backends/web1/pause")],
)  # fmt: skip
@pytest.mark.parametrize(
    "body", [DEEP, b'{"weight": ' + b"[" * 40 + b"]" * 40 + b"}", b"{" * 50_000]
)
def test_deeply_nested_json_is_400(
    served: tuple[Stalling, ControlServer, str], method: str, path: str, body: bytes
) -> None:
    rec, _, sock = served
    status, _, reply = raw(sock, request(method, path, body))
    assert status == 400
    assert error_of(reply).startswith("body is not valid JSON: ")
    if body.startswith(b"[") or b"weight" in body:
        assert "nested deeper than 32 levels" in error_of(reply)
    assert rec.calls == []


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "get"])
def test_other_methods_on_a_known_path_are_405_with_allow(
    served: tuple[Stalling, ControlServer, str], method: str
) -> None:
    _, _, sock = served
    status, headers, reply = raw(sock, request(method, "/v1/status"))
    assert (status, headers["allow"]) == (405, "GET")
    assert error_of(reply) == f"{method} is not allowed on /v1/status (use GET)"
    status, headers, reply = raw(sock, request(method, WEIGHT))
    assert (status, headers["allow"]) == (405, "DELETE, PUT")
    status, headers, reply = raw(sock, request(method, "/v1/events"))
    assert (status, headers["allow"]) == (405, "GET")
    status, _, reply = raw(sock, request(method, "/v1/nothing"))
    assert status == 404 and error_of(reply) == "no such endpoint: /v1/nothing"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GET\x00 /v1/status HTTP/1.1\r\n\r\n", 400, "is not an HTTP method"),
        (b"\xff\xfe /v1/status HTTP/1.1\r\n\r\n", 400, "is not an HTTP method"),
        (b"X" * 300 + b" /v1/status HTTP/1.1\r\n\r\n", 400, "is not an HTTP method"),
        (b" /v1/status HTTP/1.1\r\n\r\n", 400, "is not an HTTP method"),
        (b"G E T /v1/status HTTP/1.1\r\n\r\n", 400, "is not METHOD PATH HTTP/1.1"),
        (b"GET /v1/status\r\n\r\n", 400, "is not METHOD PATH HTTP/1.1"),
        (b"GET  HTTP/1.1\r\n\r\n", 400, "is not a path"),
        (b"GET /v1/status HTTP/0.9\r\n\r\n", 400, "is not HTTP/1.1 or HTTP/1.0"),
        (b"GET /v1/status HTTP/2.0\r\n\r\n", 400, "is not HTTP/1.1 or HTTP/1.0"),
        (b"GET /v1/status HTTP/1.1x\r\n\r\n", 400, "is not HTTP/1.1 or HTTP/1.0"),
        (b"GET /v1/status http/1.1\r\n\r\n", 400, "is not HTTP/1.1 or HTTP/1.0"),
        (b"GET * HTTP/1.1\r\n\r\n", 400, "is not a path"),
        (b"GET http://evil/v1/status HTTP/1.1\r\n\r\n", 400, "is not a path"),
        (b"GET /v1/\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "is not a path"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, ""),  # a TLS hello
        (b"GET /v1/status HTTP/1.1\r\nNoColon\r\n\r\n", 400, "is not NAME: VALUE"),
        (b"GET /v1/status HTTP/1.1\r\n\x00: \x00\r\n\r\n", 400, "is not NAME: VALUE"),
        (b"GET /v1/status HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n", 400, "folded"),
        (b"GET /v1/status HTTP/1.1\r\nX-A : b\r\n\r\n", 400, "is not NAME: VALUE"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", 400,
         "conflicting content-length headers"),
        (b"POST /v1/sync HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411,
         "send a Content-Length"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "is not a number"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400, "is not a number"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, "is not a number"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 413,
         "over the 16777216-byte limit"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}", 400,
         "the body ended after 2 of 100 bytes"),
        (b"GET /v1/sta", 400, "the request ended before its headers did"),
        (b"GET /v1/status HTTP/1.1\r\nHost: a", 400, "the request ended before its headers did"),
        (b'POST /v1/sync HTTP/1.1\r\nContent-Length: 9\r\n\r\n{"a": NaX', 400, "not valid JSON"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 6\r\n\r\n\xff\xfe\x00gar", 400,
         "not valid JSON"),
        (b"GET /v1/events?nosuch=1 HTTP/1.1\r\n\r\n", 400, "unknown filter(s) ['nosuch']"),
        (b"GET /v1/events?" + b"a=1&" * 100 + b" HTTP/1.1\r\n\r\n", 400, "query: "),
    ],
)  # fmt: skip
def test_garbage_gets_a_json_4xx(
    served: tuple[Stalling, ControlServer, str], data: bytes, status: int, message: str
) -> None:
    rec, _, sock = served
    got, headers, reply = raw(sock, data)
    assert got == status, reply
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert message in error_of(reply)
    assert rec.calls == []


def test_a_request_after_empty_lines_is_served(
    served: tuple[Stalling, ControlServer, str],
) -> None:
    _, _, sock = served
    status, _, reply = raw(sock, b"\r\n\r\nGET /v1/version HTTP/1.1\r\n\r\n")
    assert status == 200 and reply == b'{"version": "9.9"}\n'


def test_keep_alive_serves_requests_in_turn(
    served: tuple[Stalling, ControlServer, str],
) -> None:
    _, _, sock = served
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(request("GET", "/v1/version") + request("GET", "/v1/version"))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b'{"version": "9.9"}') == 2


def test_client_hangups_are_logged_at_debug_without_traceback(
    served: tuple[Stalling, ControlServer, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rec, srv, sock = served
    caplog.set_level(logging.DEBUG)
    for data in (
        request("POST", "/v1/sync", b"{}"),  # the answer (a 200) finds the client gone
        request("POST", "/v1/backends/web1/pause"),  # so does an ApiError's answer
    ):
        rec.entered.clear()
        rec.client_gone.clear()
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(data)
        assert rec.entered.wait(10)
        s.close()
        rec.client_gone.set()
        wait_for(lambda: srv.connections == 0, "the server closed its side")
    for data in (request("POST", "/v1/sync", DEEP), b"GET /v1/st", b"GET\x00 / HTTP/1.1\r\n\r\n"):
        assert raw(sock, data)[0] == 400
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(data)
        s.close()  # before the answer
    wait_for(lambda: srv.connections == 0, "the server closed every connection")
    assert "Traceback" not in caplog.text
    assert "Traceback" not in capfd.readouterr().err
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) >= 2 and all(r.levelno == logging.DEBUG for r in gone)


def test_a_bug_in_a_handler_is_one_500_with_one_traceback(
    served: tuple[Stalling, ControlServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, _, sock = served
    with pytest.raises(ControlError, match=r"^internal error: KeyError \(HTTP 500\)$"):
        ControlClient(sock).request("GET", "/v1/status")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "'/v1/status'" in errors[0].getMessage()
