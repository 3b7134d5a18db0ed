"""Both engines of `maglev.health.sockops` give the same results for the same calls."""

from __future__ import annotations

import errno
import os
import select
import socket
from types import ModuleType

import pytest

from maglev.health import _sockops_py, sockops


def _engines() -> list[ModuleType]:
    engines: list[ModuleType] = [_sockops_py]
    if sockops.IMPLEMENTATION == "cython":
        from maglev.health import _sockops  # type: ignore[attr-defined,unused-ignore]

        engines.append(_sockops)
    return engines


LO = socket.inet_pton(socket.AF_INET, "127.0.0.1")
EVENTS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLET


def test_selected_engine_is_the_required_one() -> None:
    if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS") == "1":
        assert sockops.IMPLEMENTATION == "cython" and sockops.engine_name() == "cython"
    if os.environ.get("MAGLEV_NO_EXTENSIONS") == "1":
        assert sockops.IMPLEMENTATION == "python" and sockops.engine_name() == "python"


@pytest.mark.parametrize("engine", _engines(), ids=lambda e: e.engine_name())
def test_connect_send_receive_close(engine: ModuleType) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv, select.epoll() as ep:
        port = srv.getsockname()[1]
        fd, err, local = engine.start(-1, socket.AF_INET, LO, port, b"", ep, EVENTS)
        assert fd >= 0 and err in (0, errno.EINPROGRESS) and not local
        assert ep.poll(10.0)  # connected: writable
        assert engine.so_error(fd) == 0
        peer, _ = srv.accept()
        with peer:
            assert engine.receive(fd, 10) == errno.EAGAIN  # nothing yet
            assert engine.send_from(fd, b"xxhello", 2) == 5
            assert engine.send_from(fd, b"xx", 2) == 0
            assert peer.recv(10) == b"hello"
            peer.sendall(b"reply")
            peer.settimeout(10.0)
            got = b""
            for _ in range(100):
                ep.poll(10.0)
                chunk = engine.receive(fd, 3)
                if isinstance(chunk, bytes):
                    got += chunk
                if got == b"reply":
                    break
            assert got == b"reply"
            peer.shutdown(socket.SHUT_WR)
            ep.poll(10.0)
            assert engine.receive(fd, 10) == b""  # the end of the stream
            engine.close_fd(fd)
            # SO_LINGER 0: the close resets the connection.
            with pytest.raises(ConnectionResetError):
                peer.recv(10)


@pytest.mark.parametrize("engine", _engines(), ids=lambda e: e.engine_name())
def test_failures_come_back_as_numbers(engine: ModuleType) -> None:
    with select.epoll() as ep:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there: refused, now or through SO_ERROR
        fd, err, local = engine.start(-1, socket.AF_INET, LO, port, b"", ep, EVENTS)
        if fd >= 0:
            ep.poll(10.0)
            assert engine.so_error(fd) == errno.ECONNREFUSED
            engine.close_fd(fd)
        else:
            assert (err, local) == (errno.ECONNREFUSED, False)
        # A source address the machine does not have: a local failure, the socket closed.
        bad = socket.inet_pton(socket.AF_INET, "192.0.2.1")
        fd, err, local = engine.start(-1, socket.AF_INET, LO, port, bad, ep, EVENTS)
        assert (fd, err, local) == (-1, errno.EADDRNOTAVAIL, True)
        with pytest.raises(ValueError):
            engine.start(-1, socket.AF_INET, b"\0\0", port, b"", ep, EVENTS)
