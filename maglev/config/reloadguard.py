"""Validator for `reload-guard`: the limits past which a reload is held instead of applied.

The interlocks themselves run in the reconciler (`maglev.reconcile.interlock`); this reads the
section into a frozen `ReloadGuardSettings`, recording every problem with its key path. Called
by `maglev.config.loader` on the thread loading the config.
"""

from __future__ import annotations

from maglev.config import schema
from maglev.config.fields import Node, got, parse_fraction, show
from maglev.model import ReloadGuardSettings

MAX_DELETED = 1_000_000  # a count; above any config's size it means "no limit"


def reload_guard_settings(node: Node | None) -> ReloadGuardSettings:
    """The section's settings (absent, or not a mapping, which `child` reported: defaults)."""
    d = ReloadGuardSettings()
    if node is None:
        return d
    node.check_keys(schema.RELOAD_GUARD)
    return ReloadGuardSettings(
        max_deleted_frontends=node.integer(
            "max-deleted-frontends", d.max_deleted_frontends, 0, MAX_DELETED
        ),
        max_capacity_loss=capacity_loss(node, "max-capacity-loss", d.max_capacity_loss),
        protect_busy_frontends=node.boolean("protect-busy-frontends", d.protect_busy_frontends),
    )


def capacity_loss(node: Node, key: str, default: float) -> float:
    """`50%` or a fraction 0..1, both included: 0 holds any loss, 100% none (the rule is off)."""
    raw = node.raw(key)
    if raw is None:
        return default
    value = parse_fraction(raw, 1.0)
    if value is None:
        node.add(key, f"expected a percentage like 50% or a fraction 0..1, {got(raw)}")
        return default
    if not 0 <= value <= 1:
        node.add(key, f"{show(raw)} is not in 0%..100% (0..1)")
        return default
    return value
