"""What changed between two configs, by name, for reload logging and for deciding what to redo.

Pure comparison of two frozen `Config` values; no I/O. Called by the reconciler thread, which
owns the live config and compares it with a reload's once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from maglev.model import Config

SHOWN = 20
"""Names listed per verb in a summary (a reload of thousands would log a line of thousands)."""


@dataclass(frozen=True, slots=True)
class NamedChanges:
    """Names added, changed (same name, different value) and removed in one named section."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self, section: str) -> str:
        """E.g. `frontends: + www; ~ api`; past `SHOWN` names a verb says how many more."""
        parts = [
            f"{verb} {', '.join(names[:SHOWN])}"
            + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
            for verb, names in (("+", self.added), ("~", self.changed), ("-", self.removed))
            if names
        ]
        return f"{section}: {'; '.join(parts)}" if parts else ""


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    frontends: NamedChanges = field(default_factory=NamedChanges)
    backends: NamedChanges = field(default_factory=NamedChanges)
    healthchecks: NamedChanges = field(default_factory=NamedChanges)
    settings: tuple[str, ...] = ()
    """Unnamed sections whose value changed: any of vpp, control, metrics, health, reload-guard."""

    @property
    def empty(self) -> bool:
        return not (self.frontends or self.backends or self.healthchecks or self.settings)

    def summary(self) -> str:
        """One line for the reload log, e.g. `frontends: + www; backends: ~ web1`."""
        parts = [
            self.frontends.summary("frontends"),
            self.backends.summary("backends"),
            self.healthchecks.summary("healthchecks"),
            f"settings: {', '.join(self.settings)}" if self.settings else "",
        ]
        return " | ".join(p for p in parts if p) or "no changes"


def _same(a: object, b: object) -> bool:
    """Equal; the same object (a reload's memo keeps unchanged entries) without comparing."""
    return a is b or a == b


def diff_named(old: Mapping[str, object], new: Mapping[str, object]) -> NamedChanges:
    """Compare two name -> value maps; names come out sorted."""
    return NamedChanges(
        added=tuple(sorted(n for n in new if n not in old)),
        changed=tuple(sorted(n for n in new if n in old and not _same(old[n], new[n]))),
        removed=tuple(sorted(n for n in old if n not in new)),
    )


_SECTIONS = (
    ("vpp", "vpp"),
    ("control", "control"),
    ("metrics", "metrics"),
    ("health", "health"),
    ("reload-guard", "reload_guard"),
)  # (name in the file, attribute)


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What a reload from `old` to `new` adds, changes and removes."""
    return ConfigDiff(
        frontends=diff_named(old.frontends, new.frontends),
        backends=diff_named(old.backends, new.backends),
        healthchecks=diff_named(old.healthchecks, new.healthchecks),
        settings=tuple(
            name for name, attr in _SECTIONS if getattr(old, attr) != getattr(new, attr)
        ),
    )


RESTART_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("vpp.api-socket", lambda c: c.vpp.api_socket),
    ("vpp.api-dir", lambda c: c.vpp.api_dir),
    ("vpp.stats-socket", lambda c: c.vpp.stats_socket),
    ("control", lambda c: c.control),
    ("metrics.listen", lambda c: c.metrics.listen),
    ("health.workers", lambda c: c.health.workers),
    ("health.queue-size", lambda c: c.health.queue_size),
)
"""Settings a reload cannot change in a running daemon (sockets, threads, queues made at start).
Everything else applies on reload: backends, frontends, healthchecks, `vpp.lb`,
`vpp.unmanaged-vips`, `health.priority`."""


def restart_only_changes(old: Config, new: Config) -> tuple[str, ...]:
    """The restart-only settings whose value differs between two configs."""
    return tuple(key for key, get in RESTART_ONLY if get(old) != get(new))


def reload_touched(new: Config, d: ConfigDiff) -> set[str]:
    """The frontends of `new` whose programming a reload described by `d` may change: added or
    changed ones, and those with a backend (or a backend's healthcheck) added, changed or
    removed. Settings are not looked at (a change to `vpp` calls for a full sync)."""
    out = set(d.frontends.added) | set(d.frontends.changed)
    backends = {*d.backends.added, *d.backends.changed, *d.backends.removed}
    checks = {*d.healthchecks.added, *d.healthchecks.changed, *d.healthchecks.removed}
    if checks:
        backends |= {n for n, b in new.backends.items() if b.healthcheck in checks}
    if backends:
        for name, fe in new.frontends.items():
            if name not in out and any(b in backends for b in fe.backend_names()):
                out.add(name)
    return out
