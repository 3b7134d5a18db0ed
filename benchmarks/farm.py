"""A loopback backend farm in its own process: TCP listeners that accept and close.

`python -m benchmarks.farm PORT ADDR...` listens on every ADDR:PORT (loopback only), prints
`ready` once all listen, then reads commands on stdin: `kill ADDR ...` closes those listeners
(new connects are refused from then on) and prints `killed N`; `revive ADDR ...` listens again
and prints `revived N`; `quit` (or EOF) exits.
A separate process keeps the benchmark's own timing free of the farm's work.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import sys
import threading


def main(argv: list[str]) -> int:
    port = int(argv[0])
    addrs = argv[1:]
    for a in addrs:
        if not ipaddress.ip_address(a).is_loopback:
            print(f"refusing non-loopback address {a}", file=sys.stderr)
            return 2
    sel = selectors.DefaultSelector()
    listeners: dict[str, socket.socket] = {}
    lock = threading.Lock()

    def listen(a: str) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a, port))
        s.listen(1024)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        listeners[a] = s

    for a in addrs:
        listen(a)

    def serve() -> None:
        while True:
            with lock:
                events = sel.select(timeout=0.05) if listeners else []
            for key, _ in events:
                try:
                    c, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    c.close()
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] == "kill":
            n = 0
            with lock:
                for a in parts[1:]:
                    s = listeners.pop(a, None)
                    if s is not None:
                        sel.unregister(s)
                        s.close()
                        n += 1
            print(f"killed {n}", flush=True)
        if parts[0] == "revive":
            n = 0
            with lock:
                for a in parts[1:]:
                    if a in addrs and a not in listeners:
                        listen(a)
                        n += 1
            print(f"revived {n}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
