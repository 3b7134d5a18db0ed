"""Operator state as plain values: what an operator set (a paused or disabled backend, a weight
override), when, by whom, why, and until when.

`Hold` is one such state, `OpState` the lot: frozen values, so the reconciler can compute the
state a request would leave, write it to the state file, and only then make it live (a failed
write changes nothing), and so its snapshot can hand the same object to readers. `TimeBox` is
what a request adds to an action: `for` or `until`, a comment, and who asked.

Times here are wall-clock seconds: an expiry must mean the same instant after a restart, which a
monotonic clock cannot promise. The reconciler converts the next expiry to its monotonic
deadline. Pure code; the parsers raise `InvalidRequest` naming the field, for the control API's
4xx replies. Built and read on the reconciler thread; the parsers run on the control API's.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maglev.config.fields import parse_duration
from maglev.errors import InvalidRequest
from maglev.model import BackendState, Config

MAX_COMMENT = 200
"""Characters a comment may have: a ticket reference and a few words, not an essay in a log."""

BACKEND = "backend"  # a Hold's kind: an operator state of a backend (paused, disabled)
WEIGHT = "weight"  # a Hold's kind: a weight override of a backend in a frontend
BACKEND_VALUES = ("paused", "disabled")
BOX_KEYS = ("for", "until", "comment")

_PROBING = (BackendState.UNKNOWN, BackendState.UP, BackendState.DOWN)


@dataclass(frozen=True, slots=True)
class TimeBox:
    """What a request adds to an action: how long it lasts (None: until undone) and why."""

    for_seconds: float | None = None
    until: float | None = None  # wall clock
    comment: str | None = None
    by: str | None = None  # who asked, as the control server names the peer

    @property
    def boxed(self) -> bool:
        return self.for_seconds is not None or self.until is not None

    def expires(self, wall: float) -> float | None:
        """When a state set now (`wall`) ends; InvalidRequest for an `until` already past (the
        control thread checks it too, but the reconciler's clock is the one that counts)."""
        if self.for_seconds is not None:
            return wall + self.for_seconds
        if self.until is not None and self.until <= wall:
            raise InvalidRequest(f"until: {iso(self.until)} is in the past")
        return self.until


@dataclass(frozen=True, slots=True)
class Hold:
    """One operator state in force."""

    kind: str  # BACKEND or WEIGHT
    backend: str
    value: str | int  # "paused" / "disabled" for BACKEND; a weight 0..100 for WEIGHT
    set_at: float  # wall clock
    frontend: str | None = None  # WEIGHT only
    pool: str | None = None  # WEIGHT only
    expires: float | None = None  # wall clock; None: until an operator undoes it
    comment: str | None = None
    by: str | None = None

    @property
    def key(self) -> tuple[str, ...]:
        if self.kind == BACKEND:
            return (BACKEND, self.backend)
        return (WEIGHT, self.frontend or "", self.backend)

    def what(self) -> str:
        """How a log line or a table names it."""
        if self.kind == BACKEND:
            return f"backend {self.backend} {self.value}"
        return (
            f"frontend {self.frontend} pool {self.pool} backend {self.backend} weight {self.value}"
        )

    def applies_to(self, config: Config) -> bool:
        """Whether `config` still has what this state names."""
        if self.kind == BACKEND:
            return self.backend in config.backends
        fe = config.frontends.get(self.frontend or "")
        return fe is not None and self.backend in fe.backend_names()


@dataclass(frozen=True, slots=True)
class OpState:
    """Every operator state, ordered by key (so the file and the tables read the same way)."""

    holds: tuple[Hold, ...] = ()

    def get(self, key: tuple[str, ...]) -> Hold | None:
        return next((h for h in self.holds if h.key == key), None)

    def put(self, hold: Hold) -> OpState:
        rest = [h for h in self.holds if h.key != hold.key]
        return OpState(tuple(sorted([*rest, hold], key=lambda h: h.key)))

    def drop(self, key: tuple[str, ...]) -> OpState:
        return OpState(tuple(h for h in self.holds if h.key != key))

    def due(self, wall: float) -> list[Hold]:
        """The states whose time is up at `wall`, earliest first (ties in key order)."""
        out = [h for h in self.holds if h.expires is not None and h.expires <= wall]
        return sorted(out, key=lambda h: (h.expires or 0.0, h.key))

    def next_expiry(self) -> float | None:
        ends = [h.expires for h in self.holds if h.expires is not None]
        return min(ends) if ends else None

    def split(self, config: Config) -> tuple[OpState, tuple[Hold, ...]]:
        """(the states `config` still names, the ones it no longer does)."""
        keep = tuple(h for h in self.holds if h.applies_to(config))
        gone = tuple(h for h in self.holds if not h.applies_to(config))
        return OpState(keep), gone

    def overrides(self) -> dict[tuple[str, str], int]:
        """The weight overrides, as the reconciler's `overrides` table keys them."""
        return {(h.frontend or "", h.backend): int(h.value) for h in self.holds if h.kind == WEIGHT}

    def backend_states(self) -> Mapping[str, str]:
        return {h.backend: str(h.value) for h in self.holds if h.kind == BACKEND}


def backend_after(state: BackendState, action: str, old: Hold | None) -> str | None:
    """The operator state a backend has after `action` from `state` (None: none), mirroring
    what `BackendHealth` does: pause works only on a probed (or already paused) backend, resume
    only on a paused one, enable only on a disabled one; disable always works."""
    was = str(old.value) if old is not None else None
    if action == "pause":
        return "paused" if state in _PROBING or state is BackendState.PAUSED else was
    if action == "resume":  # ends an operator's pause even when the config disabled it since
        return None if state is BackendState.PAUSED or was == "paused" else was
    if action == "disable":
        return "disabled"
    return None if state is BackendState.DISABLED or was == "disabled" else was  # enable


UNDO = {"paused": "resume", "disabled": "enable"}
"""The action that ends a backend state when its time is up."""


# --- parsing (control API threads) -------------------------------------------------------


def iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_until(value: object) -> float:
    """An ISO 8601 time with a zone (`2026-12-02T03:00Z`, `...+01:00`) as wall-clock seconds."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidRequest(f"until: expected a time like 2026-12-02T03:00Z, got {value!r:.70}")
    try:
        t = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"until: {value!r} is not a time like 2026-12-02T03:00Z (ISO 8601)"
        ) from None
    if t.tzinfo is None:  # a bare time would depend on the daemon's zone, not the operator's
        raise InvalidRequest(f"until: {value!r} has no time zone (add Z for UTC)")
    return t.timestamp()


def parse_box(body: Mapping[str, Any], by: str | None, wall: float) -> TimeBox:
    """The time box in a request body (its `for`, `until`, `comment`); InvalidRequest naming
    the offending field. `wall` is now, to refuse an `until` already past."""
    for_seconds = until = None
    if body.get("for") is not None:
        try:
            for_seconds = parse_duration(body["for"])
        except ValueError as e:
            raise InvalidRequest(f"for: {e}") from None
        if for_seconds <= 0:
            raise InvalidRequest(f"for: {body['for']!r:.40} is not a positive duration")
    if body.get("until") is not None:
        if for_seconds is not None:
            raise InvalidRequest("for, until: give one or the other, not both")
        until = parse_until(body["until"])
        if until <= wall:
            raise InvalidRequest(f"until: {body['until']!r} is in the past")
    comment = body.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidRequest(f"comment: expected a string, got {type(comment).__name__}")
        if len(comment) > MAX_COMMENT:
            raise InvalidRequest(
                f"comment: {len(comment)} characters is longer than the maximum of {MAX_COMMENT}"
            )
        if not comment.isprintable():  # one line in logs and tables
            raise InvalidRequest("comment: must be one line of printable characters")
        comment = comment.strip() or None
    return TimeBox(for_seconds, until, comment, by)


def hold_doc(h: Hold, wall: float) -> dict[str, Any]:
    """A state as the API shows it; `expires_in`: seconds from `wall` (None: no end)."""
    return {
        "kind": h.kind,
        "frontend": h.frontend,
        "pool": h.pool,
        "backend": h.backend,
        "value": h.value,
        "set_at": iso(h.set_at),
        "by": h.by,
        "comment": h.comment,
        "expires_at": iso(h.expires) if h.expires is not None else None,
        "expires_in": round(max(0.0, h.expires - wall), 1) if h.expires is not None else None,
    }
