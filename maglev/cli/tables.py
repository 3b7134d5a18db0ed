"""Plain-text tables and key/value blocks for maglevc's human output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if not cells:
        lines.append("(none)")
    return "\n".join(lines)


def render_kv(doc: dict[str, Any], indent: int = 0) -> str:
    pad = " " * indent
    width = max((len(k) for k in doc), default=0)
    out = []
    for k, v in doc.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:")
            out.append(render_kv(v, indent + 2))
        elif isinstance(v, list):
            out.append(f"{pad}{k.ljust(width)}  {', '.join(_cell(x) for x in v) or '-'}")
        else:
            out.append(f"{pad}{k.ljust(width)}  {_cell(v)}")
    return "\n".join(out)


def guard_text(g: dict[str, Any]) -> str:
    """A frontend's mass-failure guard (its API doc) in one phrase."""
    if g.get("healthy") is None:
        return f"{g['mode']}, min-healthy {g['min_healthy']}: not evaluated yet"
    return (
        f"{g['mode']}, {'ACTIVE' if g['active'] else 'inactive'}: {g['healthy']} of "
        f"{g['members']} members of pool {g['pool'] or '-'} healthy, min-healthy "
        f"{g['min_healthy']} ({g['threshold']})"
    )


def hold_lines(h: dict[str, Any] | None) -> list[str]:
    """The reload the interlocks hold (its API doc), first in `show status`: one line per reason."""
    if not h:
        return []
    head = (
        f"reload interlocks  HELD since {h['since']}: a {h['source']} reload of {h['file']} "
        f"({h['changes']}); `maglevc config reload --force` applies it"
    )
    return [head, *[f"reload interlocks  held: {r}" for r in h.get("reasons", [])]]


def budget_text(b: dict[str, Any]) -> str:
    """A frontend's disruption budget (its API doc) in one phrase."""
    limit = f"max-churn {100 * b['max_churn']:g}%"
    if not b.get("held"):
        return f"{limit} every {b['churn_interval']:g}s: no change held"
    return (
        f"change held by {limit}: step {b['progress']}, {100 * b['share']:.1f}% of buckets; "
        f"next step {b['next_step'] or '-'}"
    )


def status_text(doc: dict[str, Any]) -> str:
    """`show status`: a line first for a reload the interlocks hold, each frontend under its
    mass-failure guard, each backend flap damping suppresses and each change a disruption
    budget holds, then the rest."""
    guards = doc.get("mass_failure_guard") or []
    lines = hold_lines((doc.get("config") or {}).get("reload_hold"))
    lines += [f"mass-failure guard  frontend {g['frontend']}: {guard_text(g)}" for g in guards]
    lines += [
        f"flap damping  backend {d['backend']}: suppressed (penalty {d['penalty']:.0f})"
        f" until {d['until'] or '-'}"
        for d in doc.get("suppressed_backends") or []
    ]
    lines += [
        f"disruption budget  frontend {b['frontend']}: {budget_text(b)}"
        for b in doc.get("budgets") or []
    ]
    if doc.get("operator_state"):  # a drain an operator set and may have forgotten
        lines.append(f"operator state  {doc['operator_state']} in force (maglevc show overrides)")
    own = ("mass_failure_guard", "suppressed_backends", "budgets")
    head = {k: v for k, v in doc.items() if k not in own}
    if isinstance(head.get("config"), dict) and head["config"].get("reload_hold"):
        head["config"] = {**head["config"], "reload_hold": "HELD (see the first lines)"}
    tail = []
    if isinstance(conv := head.get("convergence"), dict):
        head["convergence"] = {k: v for k, v in conv.items() if k != "recent"}
        tail = [convergence_line(r) for r in conv.get("recent") or []]
    return "\n".join([*lines, render_kv(head), *tail])


def convergence_line(r: dict[str, Any]) -> str:
    """One recent convergence (its API doc), stage by stage, in milliseconds."""
    if r["total_ms"] is None:
        to_vpp = "no VPP write (unwritten)"
    else:
        to_vpp = f"write {r['write_ms']:.1f} ms, total {r['total_ms']:.1f} ms"
    return (
        f"converged  backend {r['backend']} {r['from']} -> {r['to']}: queue {r['queue_ms']:.1f}"
        f" ms, detect {r['detect_ms']:.1f} ms, {to_vpp}"
    )
