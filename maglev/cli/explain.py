"""`maglevc explain frontend F [backend B]`: why each backend has its weight, rule by rule.

One block per backend, one line per step (the rule, the weight after it, why); `--json` prints
the control API's answer (`GET /v1/frontends/F/explain`, `.../backends/B/explain`). Registered
on the `maglevc` group by `maglev.cli.maglevc`; the context object is its `Ctx`.
"""

from __future__ import annotations

from typing import Any

import click

from maglev.cli.client import q


@click.group("explain")
def explain() -> None:
    """Why weights are what they are."""


@explain.command("frontend")
@click.argument("name")
@click.argument("backend", nargs=-1, metavar="[backend B]")
@click.pass_obj
def explain_frontend(c: Any, name: str, backend: tuple[str, ...]) -> None:
    """Explain every backend's weight in frontend NAME (or only `backend B`)."""
    if backend and (len(backend) != 2 or backend[0] != "backend"):
        raise click.UsageError("expected: explain frontend NAME [backend B]")
    path = f"/v1/frontends/{q(name)}"
    if backend:
        path += f"/backends/{q(backend[1])}"
    c.out(c.call("GET", path + "/explain"), explain_text)


def explain_text(doc: dict[str, Any]) -> str:
    """The human rendering: a header per backend, then its steps."""
    lines = []
    for b in doc["backends"]:
        w = "-" if b["weight"] is None else b["weight"]
        lines.append(f"{doc['frontend']} / {b['backend']}: weight {w} (rule: {b['rule']})")
        width = max(len(s["rule"]) for s in b["steps"])
        for s in b["steps"]:
            sw = "-" if s["weight"] is None else s["weight"]
            lines.append(f"  {s['rule']:<{width}}  {sw!s:>5}  {s['detail']}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
