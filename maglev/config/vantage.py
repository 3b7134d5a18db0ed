"""Validator for `health.vantage`: the vantage guard's canaries and its down-fraction rule.

The guard itself runs in the reconciler (`maglev.reconcile.vantage`); this reads its settings
into a frozen `VantageSettings`, recording every problem with its key path. Canaries are given
as a list (each named by its position, `canaries[0]`) or as a map of names, each an address and
the name of a healthcheck (whose `netns` and source addresses apply, as for backends). Called by
`maglev.config.loader` on the thread loading the config, once the healthchecks are built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from maglev.config import schema
from maglev.config.fields import Node, got, parse_fraction, show
from maglev.config.validate import check_name, unknown_name
from maglev.model import Canary, HealthCheck, HealthSettings, IPAddress, VantageSettings


def with_vantage(
    health: HealthSettings, node: Node | None, healthchecks: Mapping[str, HealthCheck | None]
) -> HealthSettings:
    """`health` with its `vantage` read from the `health` section's node (absent: off)."""
    if node is None or not node.has("vantage"):
        return health
    vnode = node.child("vantage")
    if vnode is None:  # not a mapping: reported
        return health
    return dataclasses.replace(health, vantage=vantage_settings(vnode, healthchecks))


def vantage_settings(node: Node, healthchecks: Mapping[str, HealthCheck | None]) -> VantageSettings:
    node.check_keys(schema.VANTAGE)
    d = VantageSettings()
    canaries = canary_list(node, healthchecks)
    fraction = down_fraction(node, "max-down-fraction")
    window = node.duration("window", d.window)
    if not node.has("canaries") and not node.has("max-down-fraction"):
        node.add(None, "names no canaries and no max-down-fraction: the guard could never trip")
    return VantageSettings(canaries=canaries, max_down_fraction=fraction, window=window)


def down_fraction(node: Node, key: str) -> float | None:
    """`30%` or a fraction, strictly between 0 and 1 (0 would hold every drain, 1 none)."""
    raw = node.raw(key)
    if raw is None:
        return None
    value = parse_fraction(raw, 1.0)
    if value is None:
        node.add(key, f"expected a percentage like 30% or a fraction 0..1, {got(raw)}")
        return None
    if not 0 < value < 1:
        node.add(key, f"{show(raw)} is not between 0 and 1 (0% and 100%), both excluded")
        return None
    return value


def canary_list(node: Node, healthchecks: Mapping[str, HealthCheck | None]) -> tuple[Canary, ...]:
    raw = node.raw("canaries")
    if raw is None:
        return ()
    items: list[tuple[str, str, object]] = []  # (name, key path, value)
    if isinstance(raw, list):
        base = node.at("canaries")
        items = [(f"canaries[{i}]", f"{base}[{i}]", v) for i, v in enumerate(raw)]
    elif isinstance(raw, Mapping):
        cnode = node.child("canaries")
        if cnode is not None:
            items = [(n, cnode.at(n), v) for n, v in cnode.data.items() if check_name(cnode, n)]
    else:
        node.add("canaries", f"expected a list or a mapping of canaries, {got(raw)}")
        return ()
    if not raw:
        node.add("canaries", "is empty (name at least one canary, or leave the key out)")
    out: list[Canary] = []
    seen: dict[tuple[IPAddress, str], str] = {}
    for name, path, value in items:
        cnode = Node.of(value, path, node.problems)
        c = canary(name, cnode, healthchecks)
        if cnode is None or c is None:
            continue
        first = seen.setdefault((c.address, c.healthcheck), name)
        if first != name:
            cnode.add(None, f"probes the same target as canary {show(first)}")
            continue
        out.append(c)
    return tuple(out)


def canary(
    name: str, node: Node | None, healthchecks: Mapping[str, HealthCheck | None]
) -> Canary | None:
    if node is None:  # not a mapping: reported
        return None
    node.check_keys(schema.CANARY)
    node.require("address")
    address = node.address("address")
    node.require("healthcheck", " (a canary is probed: name one of the healthchecks)")
    check = node.text("healthcheck", None)
    if check is not None and check not in healthchecks:
        node.add("healthcheck", unknown_name("healthcheck", check, healthchecks, not node.full))
        return None
    if address is None or check is None:
        return None
    return Canary(name=name, address=address, healthcheck=check)
