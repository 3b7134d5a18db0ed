"""`maglevc set …` (operator state: pause, disable, weight overrides) and `maglevc config …`
(check a candidate, reload): the commands that change what maglevd does. Registered on the
`maglevc` group by `maglev.cli.maglevc`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from maglev.cli.client import q
from maglev.cli.context import Ctx, PrefixGroup, pass_ctx
from maglev.cli.context import fail as _fail

# --- set ---------------------------------------------------------------------------------


@click.group(cls=PrefixGroup, name="set")
def set_() -> None:
    """Change runtime state: backend operator state, weight overrides."""


DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan and the bucket churn it would cause; change nothing.",
)
DRY_QUERY = "?dry-run=1"


def _dry_human(what: str) -> Any:
    """The human output of a dry run: what would change, the plan, then the churn."""

    def human(r: dict[str, Any]) -> str:
        return "\n".join(_plan_lines(f"dry run: {what}; {r.get('summary', '')}", r))

    return human


def _plan_lines(head: str, r: dict[str, Any]) -> list[str]:
    lines = [head, *[f"  {op}" for op in r.get("plan", [])]]
    if r.get("churn_summary"):
        lines.append(r["churn_summary"])
        lines += [f"  {f['text']}" for f in r.get("churn", [])]
    return lines


@set_.command("backend")
@click.argument("name")
@click.argument("action", type=click.Choice(["pause", "resume", "enable", "disable"]))
@DRY_RUN
@pass_ctx
def set_backend(c: Ctx, name: str, action: str, dry_run: bool) -> None:
    """pause: drain (weight 0, flows continue); disable: drain and flush; resume/enable undo."""
    if dry_run:
        res = c.call("POST", f"/v1/backends/{q(name)}/{action}{DRY_QUERY}")
        c.out(res, _dry_human(f"{action} {name} -> {res.get('state')}"))
        return
    c.out(c.call("POST", f"/v1/backends/{q(name)}/{action}"))


@set_.command("frontend")
@click.argument("name")
@click.argument("pool_kw", metavar="pool")
@click.argument("pool")
@click.argument("backend_kw", metavar="backend")
@click.argument("backend")
@click.argument("weight_kw", metavar="weight")
@click.argument("weight")
@DRY_RUN
@pass_ctx
def set_frontend(
    c: Ctx,
    name: str,
    pool_kw: str,
    pool: str,
    backend_kw: str,
    backend: str,
    weight_kw: str,
    weight: str,
    dry_run: bool,
) -> None:
    """NAME pool P backend B weight N|default: override a backend's weight, or clear it."""
    for got, want in ((pool_kw, "pool"), (backend_kw, "backend"), (weight_kw, "weight")):
        if got != want:
            _fail(
                f"expected '{want}', got '{got}' (usage: set frontend NAME pool P backend B weight N|default)"
            )
    path = f"/v1/frontends/{q(name)}/pools/{q(pool)}/backends/{q(backend)}/weight"
    human = _dry_human(f"{name}/{pool}/{backend} weight {weight}") if dry_run else None
    if dry_run:
        path += DRY_QUERY
    if weight == "default":
        c.out(c.call("DELETE", path), human)
        return
    try:
        w = int(weight)
    except ValueError:
        _fail(f"weight: {weight!r} is not an integer in 0..100 or 'default'")
    if not 0 <= w <= 100:
        _fail(f"weight: {w} is not in 0..100")
    c.out(c.call("PUT", path, {"weight": w}), human)


@click.group(cls=PrefixGroup)
def config() -> None:
    """Check a candidate config or reload the running one."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_ctx
def config_check(c: Ctx, file: str) -> None:
    """Validate FILE in the daemon and show the plan it would cause (nothing is applied)."""
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        _fail(f"{file}: {getattr(e, 'strerror', None) or e}")
    res = c.call("POST", "/v1/config/check", {"config": text})

    def human(r: dict[str, Any]) -> str:
        if not r["valid"]:
            return "\n".join([f"{file}: invalid", *[f"  {p}" for p in r["problems"]]])
        return "\n".join(_plan_lines(f"{file}: valid; {r.get('summary', '')}", r))

    c.out(res, human)
    if not res.get("valid"):
        sys.exit(2)


@config.command("reload")
@pass_ctx
def config_reload(c: Ctx) -> None:
    """Reload the daemon's config file now (as SIGHUP does)."""
    res = c.call("POST", "/v1/reload")
    c.out(res)
    if not res.get("ok", False):
        sys.exit(2)
