"""A raw binary-API socket client for tests that must send what vpp-papi never would."""

from __future__ import annotations

import socket
import struct

from maglev.vpp.apidefs import MESSAGES
from maglev.vppsim.codec import LAYOUTS

HEADER = struct.Struct(">QII")


class RawClient:
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.index = 0
        self.ids: dict[str, int] = {}

    def close(self) -> None:
        self.sock.close()

    def frame(self, body: bytes, length: int | None = None) -> bytes:
        return HEADER.pack(0, len(body) if length is None else length, 0) + body

    def send(self, body: bytes, length: int | None = None) -> None:
        self.sock.sendall(self.frame(body, length))

    def recv(self) -> bytes | None:
        """The next frame's body, or None at EOF."""
        while True:
            if len(self.buf) >= 16:
                (n,) = struct.unpack_from(">I", self.buf, 8)
                if len(self.buf) >= 16 + n:
                    body, self.buf = self.buf[16 : 16 + n], self.buf[16 + n :]
                    return body
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def handshake(self, name: str = "raw") -> int:
        self.send(LAYOUTS["sockclnt_create"].struct.pack(15, 124, name.encode()))
        body = self.recv()
        assert body is not None
        msg_id, _ci, context, response, index, count = struct.unpack_from(">HIIiIH", body)
        assert (msg_id, context, response) == (16, 124, 0)
        by_crc = {m.name_crc: m.name for m in MESSAGES.values()}
        for i in range(count):
            mid, name_raw = struct.unpack_from(">H64s", body, 20 + 66 * i)
            self.ids[by_crc[name_raw.rstrip(b"\0").decode()]] = mid
        self.index = index
        return index

    def pack(self, name: str, *values: object, client_index: int | None = None) -> bytes:
        ci = self.index if client_index is None else client_index
        return LAYOUTS[name].struct.pack(self.ids[name], ci, *values)

    def ping(self, context: int, client_index: int | None = None) -> bytes:
        return self.pack("control_ping", context, client_index=client_index)

    def unpack(self, name: str, body: bytes) -> tuple[object, ...]:
        assert (body[0] << 8 | body[1]) == self.ids[name], name
        return tuple(LAYOUTS[name].struct.unpack_from(body))
