"""What every `maglevc` command shares: prefix-matching groups, the context object (`Ctx`: the
control client and the output mode) and failing with a message instead of a traceback."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from maglev.cli.client import ControlClient, ControlError
from maglev.cli.tables import render_kv


class PrefixGroup(click.Group):
    """A group whose subcommands may be given as any unique prefix."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        exact = super().get_command(ctx, cmd_name)
        if exact is not None:
            return exact
        matches = [n for n in self.list_commands(ctx) if n.startswith(cmd_name)]
        # One match, or one that is a prefix of all the others ("backend" of "backends").
        shortest = min(matches, key=len) if matches else ""
        if matches and all(m.startswith(shortest) for m in matches):
            return super().get_command(ctx, shortest)
        if len(matches) > 1:
            ctx.fail(f"'{cmd_name}' is ambiguous: {', '.join(sorted(matches))}")
        return None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest


def fail(msg: str) -> NoReturn:
    click.echo(f"maglevc: {msg}", err=True)
    sys.exit(1)


class Ctx:
    def __init__(self, client: ControlClient, as_json: bool) -> None:
        self.client = client
        self.json = as_json

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self.client.request(method, path, body)
        except ControlError as e:
            fail(str(e))

    def out(self, payload: Any, human: Any = None) -> None:
        if self.json:
            click.echo(json.dumps(payload, indent=2, default=str))
        elif human is not None:
            click.echo(human(payload) if callable(human) else human)
        else:
            click.echo(render_kv(payload) if isinstance(payload, dict) else str(payload))


pass_ctx = click.make_pass_decorator(Ctx)
