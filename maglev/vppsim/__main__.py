"""`maglev-vppsim`: run the VPP lb emulator standalone on a Unix socket until SIGINT/SIGTERM.

The main thread sets up logging, starts the emulator's `maglev-vppsim` thread and waits; the
signal handlers only set an event.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from maglev.vppsim.server import Emulator

log = logging.getLogger("maglev.vppsim")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    "socket_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Unix socket to serve the binary API on (like VPP's socksvr socket-name).",
)
@click.option(
    "--stats-socket",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also serve a VPP stats segment (lb node error counters) on this Unix socket.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="debug logs every API call.",
)
def main(socket_path: str, stats_socket: str | None, log_level: str) -> None:
    """Emulate VPP 26.10's lb plugin behind its binary-API socket (for vpp-papi clients)."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = Emulator(socket_path, stats_socket=stats_socket)
    emulator.start()
    click.echo(f"maglev-vppsim: serving on {socket_path}", err=True)
    try:
        while not stopping.wait(1.0):
            if not emulator.running:
                raise click.ClickException("the emulator thread died")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
