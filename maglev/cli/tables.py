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
