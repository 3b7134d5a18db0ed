"""`maglevd`: the daemon's command line (click). Thin: options -> settings -> maglev.daemon."""

from __future__ import annotations

import sys

import click

from maglev import __version__
from maglev.errors import ConfigError, ConfigInvalid


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maglevd")
def cli() -> None:
    """maglev daemon: health-checks backends and programs VPP's lb plugin."""


@cli.command("check-config")
@click.argument("file", type=click.Path())
def check_config(file: str) -> None:
    """Validate FILE. Exit 0 valid, 1 unreadable or unparsable, 2 semantically invalid."""
    from maglev.config import load_file

    try:
        cfg = load_file(file)
    except ConfigError as e:
        click.echo(str(e), err=True)  # names the file (and the line, for syntax errors)
        sys.exit(1)
    except ConfigInvalid as e:
        for p in e.problems:
            click.echo(f"{file}: {p}", err=True)
        click.echo(f"{file}: {len(e.problems)} problem(s)", err=True)
        sys.exit(2)
    click.echo(
        f"{file}: ok ({len(cfg.frontends)} frontends, {len(cfg.backends)} backends, "
        f"{len(cfg.healthchecks)} healthchecks)"
    )


def main() -> None:
    cli(prog_name="maglevd")


if __name__ == "__main__":
    main()
