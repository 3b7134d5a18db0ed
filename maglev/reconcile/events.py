"""Messages into the reconciler's queue (besides raw `ProbeResult`s from the check workers).

Any thread may put these on the queue; only the reconciler thread acts on them. Requests that
need an answer carry a `concurrent.futures.Future` the reconciler resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from maglev.model import Config


@dataclass(frozen=True, slots=True)
class ApplyConfig:
    """Switch to a new, already validated config (a reload)."""

    config: Config
    source: str
    reply: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class BackendAction:
    """Operator: pause, resume, enable or disable a backend."""

    backend: str
    action: str
    reply: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class WeightOverride:
    """Operator: set (or clear, weight None) a backend's weight in one pool of a frontend."""

    frontend: str
    pool: str
    backend: str
    weight: int | None
    reply: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Dump VPP and apply the full difference now."""

    reply: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class Query:
    """Run `fn` on the reconciler thread (it owns the VPP connection) and return its result."""

    fn: Callable[[Any], Any]
    reply: Future[Any] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class Stop:
    """Leave the loop. VPP's tables are left exactly as they are."""
