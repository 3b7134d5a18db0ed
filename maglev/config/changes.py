"""What changed between two configs, by name, for reload logging and for deciding what to redo.

Pure comparison of two frozen `Config` values; no I/O. Called by the reconciler thread, which
owns the live config and compares it with a reload's once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import is_not

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
    """Compare two name -> value maps; names come out sorted.

    In C-level passes (set operations, map, compress): a reload of 40,000 backends compares
    them all, and only the entries that are not the very same object (`_same`) are compared
    by value."""
    both = list(new.keys() & old.keys())
    other = compress(both, map(is_not, map(old.__getitem__, both), map(new.__getitem__, both)))
    return NamedChanges(
        added=tuple(sorted(new.keys() - old.keys())),
        changed=tuple(sorted(n for n in other if not _same(old[n], new[n]))),
        removed=tuple(sorted(old.keys() - new.keys())),
    )


_SECTIONS = (
    ("vpp", "vpp"),
    ("control", "control"),
    ("metrics", "metrics"),
    ("health", "health"),
    ("reload-guard", "reload_guard"),
)  # (name in the file, attribute)


@dataclass(frozen=True, slots=True, eq=False)
class Delta:
    """What a build with the loader's memo (`config.loader.Memo`) took anew against the build
    before it (`base`): per section, the names whose object in `config` is not `base`'s (added,
    changed, removed, or rebuilt because what they name was). Every other name is the very
    object it was in `base`."""

    base: Config
    config: Config
    healthchecks: Collection[str]
    backends: Collection[str]
    frontends: Collection[str]


def _diff_among(
    old: Mapping[str, object], new: Mapping[str, object], names: Collection[str]
) -> NamedChanges:
    """`diff_named(old, new)` where only `names` may differ (every other name of either is the
    same object in both)."""
    return NamedChanges(
        added=tuple(sorted(n for n in names if n in new and n not in old)),
        changed=tuple(
            sorted(n for n in names if n in new and n in old and not _same(old[n], new[n]))
        ),
        removed=tuple(sorted(n for n in names if n in old and n not in new)),
    )


def diff_configs(old: Config, new: Config, delta: Delta | None = None) -> ConfigDiff:
    """What a reload from `old` to `new` adds, changes and removes. With the `delta` of the
    build of `new` against `old` itself, only the names it took anew are compared: the work of
    a reload follows its change, not the size of the config."""
    if delta is not None and delta.base is old and delta.config is new:
        fes, bes, hcs = (
            _diff_among(old.frontends, new.frontends, delta.frontends),
            _diff_among(old.backends, new.backends, delta.backends),
            _diff_among(old.healthchecks, new.healthchecks, delta.healthchecks),
        )
    else:
        fes, bes, hcs = (
            diff_named(old.frontends, new.frontends),
            diff_named(old.backends, new.backends),
            diff_named(old.healthchecks, new.healthchecks),
        )
    return ConfigDiff(
        frontends=fes,
        backends=bes,
        healthchecks=hcs,
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
