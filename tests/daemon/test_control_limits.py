"""The control API's limits: timeouts, the connection and stream caps, size limits, the backlog.

Over a real Unix socket with raw bytes and with maglev's own client. Limits are set small so
that each is reached at once; waits are on events with generous deadlines, and no assertion is
about how long something took.
"""

from __future__ import annotations

import dataclasses
import pathlib
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from maglev.cli import client as client_module
from maglev.cli.client import ControlClient, ControlError
from maglev.daemon.control import ControlServer, Limits
from tests.daemon.test_control import Recorder, error_of, parse_reply, raw, wait_for

pytestmark = pytest.mark.integration

SMALL = Limits(
    connections=3, streams=1, request_line=256, header_line=256, header_count=8,
    header_bytes=1024, body=1024, idle_timeout=0.2, head_timeout=0.2, body_timeout=0.2,
    send_timeout=1.0, keepalive=0.02,
)  # fmt: skip


def serve(tmp: pathlib.Path, limits: Limits, start: bool = True) -> tuple[Recorder, ControlServer]:
    rec = Recorder()
    srv = ControlServer(rec, str(tmp / "ctl.sock"), limits=limits)
    if start:
        srv.start()
    return rec, srv


@pytest.fixture
def small(tmp_path: pathlib.Path) -> Iterator[tuple[Recorder, ControlServer, str]]:
    rec, srv = serve(tmp_path, SMALL)
    yield rec, srv, str(tmp_path / "ctl.sock")
    srv.stop()


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s


def read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):  # a TimeoutError here is a hang
        data += chunk
    return data


def test_an_idle_connection_is_closed(small: tuple[Recorder, ControlServer, str]) -> None:
    _, srv, path = small
    with connect(path) as s:
        wait_for(lambda: srv.connections == 1, "accepted")
        assert read_all(s) == b""  # closed by the server, quietly: nothing was asked
    wait_for(lambda: srv.connections == 0, "the connection's thread ended")


@pytest.mark.parametrize(
    "data",
    [b"GET /v1/status HTTP/1.1\r\n", b"GET /v1/stat", b"GET /v1/status HTTP/1.1\r\nX-A: b"],
)
def test_a_stalled_request_head_is_408(
    small: tuple[Recorder, ControlServer, str], data: bytes
) -> None:
    _, _, path = small
    status, _, body = raw(path, data, half_close=False)
    assert status == 408 and error_of(body) == "request not received within 0.2s"


def test_a_stalled_body_is_408(small: tuple[Recorder, ControlServer, str]) -> None:
    rec, _, path = small
    data = b"POST /v1/sync HTTP/1.1\r\nContent-Length: 10\r\n\r\n{"
    status, _, body = raw(path, data, half_close=False)
    assert status == 408 and error_of(body) == "the body did not arrive within 0.2s"
    assert rec.calls == []


def test_a_trickling_client_gets_no_more_time(small: tuple[Recorder, ControlServer, str]) -> None:
    _, _, path = small
    with connect(path) as s:
        for _ in range(1000):  # a byte every 10ms, each well within any per-read timeout
            s.send(b"G")
            if select.select([s], [], [], 0.01)[0]:  # answered
                break
        status, _, body = parse_reply(read_all(s))
    assert status == 408 and error_of(body) == "request not received within 0.2s"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n", 414, "the request line is longer than 256"),
        (b"GET /v1/status HTTP/1.1\r\nX-A: " + b"a" * 300 + b"\r\n\r\n", 431,
         "a header line is longer than 256"),
        (b"GET /v1/status HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(9)) + b"\r\n",
         431, "more than 8 headers or 1024 bytes"),
        (b"GET /v1/status HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(6))
         + b"\r\n", 431, "more than 8 headers or 1024 bytes"),
        (b"POST /v1/sync HTTP/1.1\r\nContent-Length: 1025\r\n\r\n" + b" " * 1025, 413,
         "a body of 1025 bytes is over the 1024-byte limit"),
    ],
)  # fmt: skip
def test_over_the_limits_is_4xx(
    small: tuple[Recorder, ControlServer, str], data: bytes, status: int, message: str
) -> None:
    rec, _, path = small
    got, headers, body = raw(path, data)
    assert (got, headers["connection"]) == (status, "close")
    assert error_of(body).startswith(message)
    assert rec.calls == []


def test_the_connection_cap_turns_clients_away_at_once(tmp_path: pathlib.Path) -> None:
    _, srv = serve(tmp_path, Limits(connections=2, idle_timeout=60))
    path = str(tmp_path / "ctl.sock")
    try:
        idle = [connect(path), connect(path)]  # idle, or slow: they hold their threads
        wait_for(lambda: srv.connections == 2, "both accepted")
        status, headers, body = raw(path, b"GET /v1/version HTTP/1.1\r\n\r\n", half_close=False)
        assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
        assert error_of(body) == "maglevd is busy: 2 connections open; try again"
        idle.pop().close()
        wait_for(lambda: srv.connections == 1, "a slot freed")
        assert ControlClient(path).request("GET", "/v1/version") == {"version": "9.9"}
        for s in idle:
            s.close()
    finally:
        srv.stop()


def test_the_client_retries_a_busy_daemon(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, srv = serve(tmp_path, Limits(connections=1, idle_timeout=60))
    path = str(tmp_path / "ctl.sock")
    retried = threading.Event()
    pause = client_module._pause

    def noted(seconds: float) -> None:
        retried.set()
        pause(seconds)

    monkeypatch.setattr(client_module, "_pause", noted)
    try:
        hog = connect(path)
        wait_for(lambda: srv.connections == 1, "the hog accepted")
        got: list[object] = []
        t = threading.Thread(
            target=lambda: got.append(ControlClient(path).request("GET", "/v1/version"))
        )
        t.start()
        assert retried.wait(10), "the client did not retry the busy answer"
        hog.close()
        t.join(10)
        assert got == [{"version": "9.9"}]
    finally:
        srv.stop()


def test_an_event_stream_outlives_the_idle_timeout(
    small: tuple[Recorder, ControlServer, str],
) -> None:
    rec, _, path = small
    with connect(path) as s:
        s.sendall(b"GET /v1/events?backend=web1 HTTP/1.1\r\n\r\n")
        f = s.makefile("rb")
        assert f.readline() == b"HTTP/1.1 200 OK\r\n"
        keepalives = 0
        while keepalives < 20:  # 20 keepalives apart by 0.02s: longer than the idle timeout
            keepalives += f.readline() == b": keepalive\n"
        rec.bus.publish({"type": "backend", "backend": "web1", "to": "down"})
        while not (line := f.readline()).startswith(b"data: "):
            assert line, "the stream ended"
        assert b'"to": "down"' in line


def test_event_streams_have_their_own_cap(small: tuple[Recorder, ControlServer, str]) -> None:
    rec, _, path = small
    with connect(path) as s:
        s.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
        wait_for(lambda: rec.bus.subscribers == 1, "the first stream subscribed")
        status, headers, body = raw(path, b"GET /v1/events HTTP/1.1\r\n\r\n")
        assert (status, headers["retry-after"]) == (503, "5")
        assert error_of(body) == "1 event streams are open (the limit); try again"
        with pytest.raises(ControlError, match=r"event streams are open .* \(HTTP 503\)"):
            next(iter(ControlClient(path).events({})))
    wait_for(lambda: rec.bus.subscribers == 0, "the first stream ended")
    got: list[dict[str, object]] = []  # a slot again
    t = threading.Thread(target=lambda: got.append(next(iter(ControlClient(path).events({})))))
    t.start()
    wait_for(lambda: rec.bus.subscribers == 1, "the next stream subscribed")
    rec.bus.publish({"type": "backend", "backend": "web1"})
    t.join(10)
    assert [e["backend"] for e in got] == ["web1"]


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_an_event_stream_ends_when_its_client_leaves(
    small: tuple[Recorder, ControlServer, str], how: str
) -> None:
    rec, srv, path = small
    s = connect(path)
    s.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
    wait_for(lambda: rec.bus.subscribers == 1, "subscribed")
    if how == "close":
        s.close()
    else:
        s.shutdown(socket.SHUT_WR)
    wait_for(lambda: rec.bus.subscribers == 0, "unsubscribed")
    wait_for(lambda: srv.connections == 0, "the connection closed")
    if how == "half-close":
        assert read_all(s).startswith(b"HTTP/1.1 200 OK\r\n")  # and then the server's EOF
        s.close()


def test_the_listen_queue_takes_a_burst(tmp_path: pathlib.Path) -> None:
    _, srv = serve(tmp_path, Limits(), start=False)  # nobody accepts yet: all wait in the queue
    path = str(tmp_path / "ctl.sock")
    socks = []
    try:
        for _ in range(160):
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)  # as a client with a timeout connects: EAGAIN, not a wait
            s.connect(path)
            socks.append(s)
        srv.start()
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"GET /v1/version HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert [parse_reply(read_all(s))[0] for s in socks] == [200] * 160
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_the_client_retries_a_full_listen_queue(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, srv = serve(tmp_path, Limits(backlog=1), start=False)
    path = str(tmp_path / "ctl.sock")
    socks = []
    retried = threading.Event()
    pause = client_module._pause

    def noted(seconds: float) -> None:
        retried.set()
        pause(seconds)

    monkeypatch.setattr(client_module, "_pause", noted)
    try:
        while True:  # fill the queue until the kernel refuses (EAGAIN)
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            socks.append(s)
            try:
                s.connect(path)
            except BlockingIOError:
                break
            assert len(socks) < 100, "the backlog is not honoured"
        got: list[object] = []
        t = threading.Thread(
            target=lambda: got.append(ControlClient(path).request("GET", "/v1/version"))
        )
        t.start()
        assert retried.wait(10), "the client did not retry EAGAIN"
        srv.start()
        t.join(10)
        assert got == [{"version": "9.9"}]
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_many_clients_at_once(tmp_path: pathlib.Path) -> None:
    _, srv = serve(tmp_path, Limits())
    path = str(tmp_path / "ctl.sock")
    start = threading.Barrier(48)
    errors: list[str] = []
    answers: list[object] = []

    def one() -> None:
        start.wait(10)
        for _ in range(3):
            try:
                answers.append(ControlClient(path).request("GET", "/v1/status"))
            except ControlError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=one) for _ in range(48)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        srv.stop()
    assert errors == []
    assert len(answers) == 144


def test_tcp_clients_before_authenticating_get_the_same_limits() -> None:
    srv = ControlServer(Recorder(), None, tcp_listen="127.0.0.1:0", token="s3cret", limits=SMALL)
    srv.start()
    assert srv.tcp_address is not None
    try:
        with socket.create_connection(srv.tcp_address, timeout=10) as s:  # idle: closed
            assert read_all(s) == b""
        with socket.create_connection(srv.tcp_address, timeout=10) as s:  # slow: 408
            s.sendall(b"POST /v1/sync HTTP/1.1\r\n")
            status, _, body = parse_reply(read_all(s))
            assert status == 408 and error_of(body) == "request not received within 0.2s"
        with socket.create_connection(srv.tcp_address, timeout=10) as s:  # no token: 401 first
            s.sendall(b"POST /v1/sync HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")
            status, headers, body = parse_reply(read_all(s))
            assert (status, headers["www-authenticate"]) == (401, "Bearer")
            assert error_of(body) == "missing or wrong bearer token"
    finally:
        srv.stop()
    patient = dataclasses.replace(SMALL, idle_timeout=60)  # so that the cap stays reached
    srv = ControlServer(Recorder(), None, tcp_listen="127.0.0.1:0", token="s3cret", limits=patient)
    srv.start()
    assert srv.tcp_address is not None
    idle = [socket.create_connection(srv.tcp_address, timeout=10) for _ in range(3)]
    try:
        wait_for(lambda: srv.connections == 3, "the cap reached")
        with socket.create_connection(srv.tcp_address, timeout=10) as s:
            s.sendall(b"GET /v1/version HTTP/1.1\r\n\r\n")
            status, _, body = parse_reply(read_all(s))
            assert status == 503 and error_of(body).startswith("maglevd is busy")
    finally:
        for c in idle:
            c.close()
        srv.stop()
