"""`maglevc show overrides`: every operator state in force (paused or disabled backends, weight
overrides) with when it was set, by whom, when it ends and why; the table the backend and
frontend details reuse. Registered on `maglevc show` by `maglev.cli.maglevc`.
"""

from __future__ import annotations

from typing import Any

import click

from maglev.cli.context import Ctx, pass_ctx
from maglev.cli.tables import render_table


def _in(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 86400:
        return f"in {s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"in {s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"in {s // 60}m{s % 60:02d}s"
    return f"in {s}s"


def what(r: dict[str, Any]) -> str:
    if r["kind"] == "backend":
        return f"backend {r['backend']}"
    return f"frontend {r['frontend']} pool {r['pool']} backend {r['backend']} weight"


def overrides_table(rows: list[dict[str, Any]]) -> str:
    return render_table(
        ["WHAT", "VALUE", "SET", "BY", "EXPIRES", "IN", "COMMENT"],
        [
            [
                what(r),
                r["value"],
                r["set_at"],
                r["by"] or "-",
                r["expires_at"] or "never",
                _in(r["expires_in"]),
                r["comment"] or "-",
            ]
            for r in rows
        ],
    )


@click.command("overrides")
@pass_ctx
def show_overrides(c: Ctx) -> None:
    """Operator state in force: paused/disabled backends and weight overrides, with their time
    boxes (kept in maglevd's state file across restarts)."""
    c.out(c.call("GET", "/v1/overrides"), lambda d: overrides_table(d["overrides"]))
