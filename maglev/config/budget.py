"""A frontend's disruption budget keys (`max-churn`, `churn-interval`), validated.

Called by `maglev.config.validate` on the loading thread; pure.
"""

from __future__ import annotations

from maglev.config.fields import Node, got, parse_fraction, show

DEFAULT_CHURN_INTERVAL = 30.0  # seconds between two budget steps: a few flow timeouts
MAX_CHURN_INTERVAL = 3600.0  # seconds: a budgeted change of ten steps ends within ten hours


def disruption_budget(node: Node) -> tuple[float | None, float]:
    """`max-churn` (a share of the flow table per step, absent: no budget) and
    `churn-interval` (the time between two steps) of a frontend."""
    interval = node.duration("churn-interval", DEFAULT_CHURN_INTERVAL)
    if interval > MAX_CHURN_INTERVAL:
        node.add("churn-interval", f"{show(node.raw('churn-interval'))} is longer than an hour")
        interval = DEFAULT_CHURN_INTERVAL
    raw = node.raw("max-churn")
    if raw is None:
        return None, interval
    value = parse_fraction(raw, 1.0)
    if value is None:
        node.add("max-churn", f"expected a percentage like 10% or a fraction 0..1, {got(raw)}")
        return None, interval
    # 0 would hold every change forever; 100% is no budget at all, but harmless.
    if not 0 < value <= 1:
        node.add("max-churn", f"{show(raw)} is not in (0..1] (0%..100%, more than 0)")
        return None, interval
    return value, interval
