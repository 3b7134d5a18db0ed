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
from maglev.cli.tables import render_kv

# --- set ---------------------------------------------------------------------------------


@click.group(cls=PrefixGroup, name="set")
def set_() -> None:
    """Change runtime state: backend operator state, weight overrides."""


def _time_box(f: Any) -> Any:
    """--for, --until, --comment: how long an operator state lasts and why (maglevd checks)."""
    f = click.option("--comment", help='Why, shown with the state: --comment "ticket 123".')(f)
    f = click.option("--until", "until", metavar="TIME",
                     help="End it at TIME (ISO 8601 with a zone: 2026-12-02T03:00Z).")(f)  # fmt: skip
    f = click.option("--for", "for_", metavar="DURATION",
                     help="End it by itself after DURATION (30m, 2h, 90s).")(f)  # fmt: skip
    return f


def _box(for_: str | None, until: str | None, comment: str | None) -> dict[str, Any] | None:
    body = {k: v for k, v in (("for", for_), ("until", until), ("comment", comment)) if v}
    return body or None


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
    if r.get("plan") and r.get("churn_summary"):  # no plan, nothing moves: no second line
        lines.append(r["churn_summary"])
        lines += [f"  {f['text']}" for f in r.get("churn", [])]
    return lines


@set_.command("backend")
@click.argument("name")
@click.argument("action", type=click.Choice(["pause", "resume", "enable", "disable"]))
@_time_box
@DRY_RUN
@pass_ctx
def set_backend(
    c: Ctx,
    name: str,
    action: str,
    for_: str | None,
    until: str | None,
    comment: str | None,
    dry_run: bool,
) -> None:
    """pause: drain (weight 0, flows continue); disable: drain and flush; resume/enable undo.

    The state survives restarts; --for/--until make it end by itself. --dry-run shows the
    plan and the bucket churn it would cause, and changes nothing."""
    box = _box(for_, until, comment)
    if dry_run:
        res = c.call("POST", f"/v1/backends/{q(name)}/{action}{DRY_QUERY}", box)
        c.out(res, _dry_human(f"{action} {name} -> {res.get('state')}"))
        return
    c.out(c.call("POST", f"/v1/backends/{q(name)}/{action}", box))


@set_.command("frontend")
@click.argument("name")
@click.argument("pool_kw", metavar="pool")
@click.argument("pool")
@click.argument("backend_kw", metavar="backend")
@click.argument("backend")
@click.argument("weight_kw", metavar="weight")
@click.argument("weight")
@_time_box
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
    for_: str | None,
    until: str | None,
    comment: str | None,
    dry_run: bool,
) -> None:
    """NAME pool P backend B weight N|default: override a backend's weight, or clear it.

    The override survives restarts; --for/--until make it end by itself."""
    for got, want in ((pool_kw, "pool"), (backend_kw, "backend"), (weight_kw, "weight")):
        if got != want:
            _fail(
                f"expected '{want}', got '{got}' (usage: set frontend NAME pool P backend B weight N|default)"
            )
    path = f"/v1/frontends/{q(name)}/pools/{q(pool)}/backends/{q(backend)}/weight"
    box = _box(for_, until, comment)
    human = _dry_human(f"{name}/{pool}/{backend} weight {weight}") if dry_run else None
    if dry_run:
        path += DRY_QUERY
    if weight == "default":
        if box:
            _fail("--for, --until and --comment go with a weight, not with 'default'")
        c.out(c.call("DELETE", path), human)
        return
    try:
        w = int(weight)
    except ValueError:
        _fail(f"weight: {weight!r} is not an integer in 0..100 or 'default'")
    if not 0 <= w <= 100:
        _fail(f"weight: {w} is not in 0..100")
    c.out(c.call("PUT", path, {"weight": w, **(box or {})}), human)


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
        lines = _plan_lines(f"{file}: valid; {r.get('summary', '')}", r)
        lines += interlock_lines(r.get("interlocks") or {})
        return "\n".join(lines)

    c.out(res, human)
    if not res.get("valid"):
        sys.exit(2)
    if (res.get("interlocks") or {}).get("would_hold"):
        sys.exit(3)


def interlock_lines(doc: dict[str, Any]) -> list[str]:
    """What the reload interlocks would say about a checked file: nothing when they would let
    it through without a note (the JSON output always carries `interlocks`)."""
    lines = []
    if doc.get("would_hold"):
        lines = ["a reload of this file would be HELD by the reload interlocks:"]
        lines += [f"  {r}" for r in doc.get("reasons", [])]
    lines += [f"  note: {n}" for n in doc.get("notes", [])]
    return lines


def reload_text(r: dict[str, Any]) -> str:
    """A reload's reply; a held one says why and how to apply it anyway."""
    if r.get("held"):
        lines = ["reload HELD by the reload interlocks; the running config stays:"]
        lines += [f"  {p}" for p in r.get("problems", [])]
        lines += [f"  note: {n}" for n in r.get("notes", [])]
        lines.append("`maglevc config reload --force` applies it")
        return "\n".join(lines)
    return render_kv(r)


@config.command("reload")
@click.option(
    "--force",
    is_flag=True,
    help="Apply the reload the interlocks hold (if the file changed since, the newer file is "
    "judged as a plain reload); with nothing held, reload past the interlocks.",
)
@pass_ctx
def config_reload(c: Ctx, force: bool) -> None:
    """Reload the daemon's config file now (as SIGHUP does). Exit 2: rejected; 3: held."""
    res = c.call("POST", "/v1/reload", {"force": True} if force else None)
    c.out(res, reload_text)
    if res.get("held"):
        sys.exit(3)
    if not res.get("ok", False):
        sys.exit(2)
