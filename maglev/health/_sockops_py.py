"""The socket calls of the fast probes in pure Python: the twin of the compiled `_sockops`.

The same functions on the same raw descriptors, with the same results (numbers for errors,
never exceptions). The descriptors' `socket` objects are kept here, by number, from `start` to
`close_fd`; each call goes through the `socket` module, which releases the GIL around it (the
compiled engine does not: see its docstring). `maglev.health.sockops` selects the engine.
"""

from __future__ import annotations

import _socket
import errno
import select
import socket
import struct


def engine_name() -> str:
    return "python"


_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_NO_LINGER = struct.pack("ii", 1, 0)
_socks: dict[int, _socket.socket] = {}


def _addr(family: int, ip: bytes, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if family == socket.AF_INET and len(ip) == 4:
        return (socket.inet_ntop(family, ip), port)
    if family == socket.AF_INET6 and len(ip) == 16:
        return (socket.inet_ntop(family, ip), port, 0, 0)
    raise ValueError(f"address of {len(ip)} bytes for family {family}")


def start(
    fd: int, family: int, ip: bytes, port: int, source: bytes, ep: select.epoll, events: int
) -> tuple[int, int, bool]:
    dst = _addr(family, ip, port)
    src = _addr(family, source, 0) if source else None
    try:
        sock = _socket.socket(family, _STREAM) if fd < 0 else _socket.socket(family, _STREAM, 0, fd)
    except OSError as e:
        return (-1, e.errno or errno.EIO, True)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
        if src is not None:
            sock.bind(src)
    except OSError as e:
        sock.close()
        return (-1, e.errno or errno.EIO, True)
    err = sock.connect_ex(dst)
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return (-1, err, False)
    fd = sock.fileno()
    try:
        ep.register(fd, events)
    except OSError as e:
        sock.close()
        return (-1, e.errno or errno.EIO, True)
    _socks[fd] = sock
    return (fd, err, False)


def so_error(fd: int) -> int:
    try:
        return int(_socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except OSError as e:
        return e.errno or errno.EIO


def send_from(fd: int, data: bytes, offset: int) -> int:
    if offset >= len(data):
        return 0
    try:
        return _socks[fd].send(memoryview(data)[offset:], socket.MSG_NOSIGNAL)
    except OSError as e:
        return -(e.errno or errno.EIO)


def receive(fd: int, n: int) -> bytes | int:
    try:
        return _socks[fd].recv(n)
    except OSError as e:
        return e.errno or errno.EIO


def close_fd(fd: int) -> None:
    sock = _socks.pop(fd, None)
    if sock is not None:
        sock.close()
