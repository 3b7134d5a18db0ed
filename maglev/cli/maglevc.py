"""`maglevc`: the operator CLI (click); talks to a running maglevd over its control socket."""

from __future__ import annotations

import click

from maglev import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maglevc")
def cli() -> None:
    """Operate a running maglevd."""


def main() -> None:
    cli(prog_name="maglevc")


if __name__ == "__main__":
    main()
