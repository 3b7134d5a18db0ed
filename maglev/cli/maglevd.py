"""`maglevd`: the daemon's command line (click). Thin: options -> settings -> maglev.daemon."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from maglev import __version__
from maglev.errors import ConfigError, ConfigInvalid

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
PR_SET_NAME = 15  # <linux/prctl.h>
STATE_FILE = "/var/lib/maglev/state.json"  # maglev.reconcile.statefile.DEFAULT_PATH (not imported:
# this module stays light until a command runs)


def set_process_name(name: str = "maglevd") -> None:
    """Name the process `maglevd` (its comm, as `ps`, `pgrep` and start-stop-daemon see it).

    maglevd is a Python console script: its /proc/PID/exe is the interpreter, so the init script
    cannot match it with `--exec`, and its name is the script's only when the script itself was
    exec'd (not via `python -m maglev`, `python3 /usr/local/bin/maglevd` or a wrapper). Naming
    itself makes `start-stop-daemon --name maglevd --user ...` reliable, so that root signals
    only a maglevd of the daemon user, whatever pid that user wrote in the pidfile.
    PR_SET_NAME names the calling thread: call it on the main thread, whose name is the
    process's, before other threads start (they inherit it).
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the name is cosmetic there
        pass


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maglevd")
def cli() -> None:
    """maglev daemon: health-checks backends and programs VPP's lb plugin."""


_checked: list[object] = []
"""The config a check built, and the document it was built from, kept past the command (see
`main`)."""


def _check(file: str) -> int:
    from maglev.config import load_file

    try:
        cfg = load_file(file, keep=_checked)
        _checked.append(cfg)
    except ConfigError as e:
        click.echo(str(e), err=True)  # names the file (and the line, for syntax errors)
        return 1
    except ConfigInvalid as e:
        for p in e.problems:
            click.echo(f"{file}: {p}", err=True)
        click.echo(f"{file}: {len(e.problems)} problem(s)", err=True)
        return 2
    click.echo(
        f"{file}: ok ({len(cfg.frontends)} frontends, {len(cfg.backends)} backends, "
        f"{len(cfg.healthchecks)} healthchecks)"
    )
    return 0


@cli.command("check-config")
@click.argument("file", type=click.Path())
def check_config(file: str) -> None:
    """Validate FILE. Exit 0 valid, 1 unreadable or unparsable, 2 semantically invalid."""
    sys.exit(_check(file))


F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    for opt in reversed(
        [
            click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True),
            click.option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
            ),
            click.option(
                "--log-target",
                type=click.Choice(["stderr", "syslog"]),
                default="stderr",
                show_default=True,
            ),
            click.option(
                "--pidfile", type=click.Path(dir_okay=False), help="Write the daemon's pid here."
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Never write to VPP; log the plan and its bucket churn instead.",
            ),
            click.option("--control-socket", help="Override control.socket from the config."),
            click.option("--metrics-listen", help="Override metrics.listen (host:port)."),
            click.option(
                "--state-file",
                envvar="MAGLEV_STATE_FILE",
                type=click.Path(dir_okay=False),
                help="Operator state kept across restarts (env MAGLEV_STATE_FILE; default "
                f"{STATE_FILE}; the demo's: beside its control socket).",
            ),
            click.option(
                "--discard-state",
                is_flag=True,
                help="Start even if the state file cannot be read (it is renamed aside).",
            ),
        ]
    ):
        f = opt(f)
    return f


@cli.command("run")
@click.option(
    "--config", "-c", "config", required=True, type=click.Path(dir_okay=False), help="Config file."
)
@click.option("--check", is_flag=True, help="Only validate the config (as check-config) and exit.")
@_common
def run(config: str, check: bool, log_level: str, log_format: str, log_target: str, pidfile: str | None,
        dry_run: bool, control_socket: str | None, metrics_listen: str | None,
        state_file: str | None, discard_state: bool) -> None:  # fmt: skip
    """Run the daemon in the foreground until SIGTERM/SIGINT (SIGHUP reloads the config)."""
    if check:
        sys.exit(_check(config))
    set_process_name()
    from maglev.daemon import logsetup
    from maglev.daemon.runtime import Settings
    from maglev.daemon.runtime import run as run_daemon

    logsetup.configure(log_level, log_format, log_target)
    settings = Settings(config, dry_run, pidfile, control_socket, metrics_listen,
                        state_file or STATE_FILE, discard_state)  # fmt: skip
    sys.exit(run_daemon(settings))


@cli.command("demo")
@click.option(
    "--config",
    "-c",
    "config",
    default="etc/maglev-demo.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option(
    "--flap",
    type=float,
    default=20.0,
    show_default=True,
    help="Stop/restart the first frontend's primary backends every N seconds (0: never).",
)
@_common
def demo(config: str, flap: float, log_level: str, log_format: str, log_target: str, pidfile: str | None,
         dry_run: bool, control_socket: str | None, metrics_listen: str | None,
         state_file: str | None, discard_state: bool) -> None:  # fmt: skip
    """Run the demo: demo backends on loopback plus maglevd on the embedded VPP emulator."""
    set_process_name()
    from maglev.config import load_file
    from maglev.daemon import logsetup
    from maglev.daemon.demo import Flapper, demo_backends, start_all
    from maglev.daemon.runtime import Settings
    from maglev.daemon.runtime import run as run_daemon

    logsetup.configure(log_level, log_format, log_target)
    try:
        cfg = load_file(config)
    except (ConfigError, ConfigInvalid) as e:
        click.echo(str(e), err=True)
        sys.exit(1 if isinstance(e, ConfigError) else 2)
    try:
        backends = demo_backends(cfg)
        start_all(backends)
    except (OSError, ValueError) as e:
        click.echo(f"maglevd demo: {e}", err=True)
        sys.exit(1)
    flapper = Flapper(cfg, backends, flap) if flap > 0 else None
    if flapper:
        flapper.start()
    sock = control_socket or cfg.control.socket
    logging.getLogger("maglev.demo").info(
        "demo running; in another terminal: maglevc --socket %s show frontends (Ctrl-C stops)", sock
    )
    try:
        settings = Settings(config, dry_run, pidfile, control_socket, metrics_listen,
                            state_file or demo_state_file(sock), discard_state)  # fmt: skip
        code = run_daemon(settings)
    finally:
        if flapper:
            flapper.stop()
        for b in backends:
            b.stop()
    sys.exit(code)


def demo_state_file(control_socket: str | None) -> str:
    """The demo's state file: beside its control socket (`/tmp/maglevd-demo.sock` ->
    `/tmp/maglevd-demo.state.json`), a place the demo can write without root, and one per demo
    socket, as there is one demo per socket."""

    if not control_socket:
        return os.path.join(os.path.expanduser("~"), ".maglevd-demo.state.json")
    return os.path.splitext(control_socket)[0] + ".state.json"


def main() -> None:
    """The console script. A check exits here without freeing the config it built: with
    40,000 backends that is 400,000 objects, and freeing them one by one (and the collector's
    last pass over them) was an eighth of `check-config`'s time. Nothing else needs cleaning
    up after a check: no thread, file or socket is open but stdout and stderr, flushed here."""
    if sys.argv[1:2] == ["check-config"]:
        # Importing the config modules creates a few thousand objects the collector would walk
        # over and over; a check frees nothing it builds (see above).
        gc.disable()
    try:
        cli(prog_name="maglevd")
    except SystemExit as e:
        if _checked and (e.code is None or isinstance(e.code, int)):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code or 0)
        raise


if __name__ == "__main__":
    main()
