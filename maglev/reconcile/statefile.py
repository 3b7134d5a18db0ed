"""The state file: operator state (`OpState`) on disk, so a restart forgets nothing.

Format, versioned so a future maglevd can tell what it reads:

    {"version": 1, "saved_at": 1764644400.0,
     "holds": [{"kind": "backend", "backend": "b1", "value": "paused", "set_at": ...,
                "expires": null, "comment": "ticket 123", "by": "operator (uid 0 ...)"},
               {"kind": "weight", "frontend": "web", "pool": "primary", "backend": "b2",
                "value": 30, "set_at": ..., ...}]}

Times are wall-clock seconds (floats: exact, and no zone to get wrong). Writing is an atomic
replace: a temporary file in the same directory, fsync'd, renamed over the old one, then the
directory fsync'd, so a crash or a kill -9 at any point leaves either the old file or the new
one, never a mix. Reading refuses anything it does not fully understand (`StateFileError`): a
daemon that silently started without a drain an operator set would put a backend back in
service. `load` runs on the main thread before the reconciler exists; `save` on the
reconciler thread, which owns the state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from typing import Any

from maglev.errors import MaglevError
from maglev.reconcile.opstate import BACKEND, BACKEND_VALUES, MAX_COMMENT, WEIGHT, Hold, OpState

log = logging.getLogger(__name__)

VERSION = 1
DEFAULT_PATH = "/var/lib/maglev/state.json"
MAX_BYTES = 16 * 1024 * 1024  # far beyond any real state; a larger file is not ours


class StateFileError(MaglevError):
    """The state file cannot be read, parsed or written; the message names file and problem."""


def load(path: str) -> OpState | None:
    """The state in `path`; None when there is no file (a first start)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(f"state file {path}: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise StateFileError(f"state file {path}: larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError as e:  # UnicodeDecodeError included
        raise StateFileError(f"state file {path}: not valid JSON ({e})") from None
    try:
        return from_doc(doc)
    except ValueError as e:
        raise StateFileError(f"state file {path}: {e}") from None


def from_doc(doc: Any) -> OpState:
    """The state a parsed file holds; ValueError naming the first thing wrong."""
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    version = doc.get("version")
    if version != VERSION:
        raise ValueError(f"version {version!r} is not one this maglevd reads (it reads {VERSION})")
    holds = doc.get("holds")
    if not isinstance(holds, list):
        raise ValueError("holds: expected a list")
    out = OpState()
    for i, h in enumerate(holds):
        hold = _hold(h, f"holds[{i}]")
        if out.get(hold.key) is not None:
            raise ValueError(f"holds[{i}]: a second entry for {hold.what()}")
        out = out.put(hold)
    return out


def _str(d: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}.{key}: expected a non-empty string, got {v!r:.40}")
    return v


def _time(d: dict[str, Any], key: str, where: str, optional: bool = False) -> float | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}.{key}: expected a time in seconds, got {v!r:.40}")
    return float(v)


def _hold(h: Any, where: str) -> Hold:
    if not isinstance(h, dict):
        raise ValueError(f"{where}: expected an object, got {type(h).__name__}")
    kind = h.get("kind")
    backend = _str(h, "backend", where)
    assert backend is not None
    set_at = _time(h, "set_at", where)
    assert set_at is not None
    comment = _str(h, "comment", where, optional=True)
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ValueError(f"{where}.comment: longer than {MAX_COMMENT} characters")
    common: dict[str, Any] = {
        "backend": backend,
        "set_at": set_at,
        "expires": _time(h, "expires", where, optional=True),
        "comment": comment,
        "by": _str(h, "by", where, optional=True),
    }
    value = h.get("value")
    if kind == BACKEND:
        if value not in BACKEND_VALUES:
            raise ValueError(f"{where}.value: {value!r:.40} is not one of {list(BACKEND_VALUES)}")
        return Hold(BACKEND, value=value, **common)
    if kind == WEIGHT:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"{where}.value: {value!r:.40} is not a weight in 0..100")
        return Hold(
            WEIGHT,
            value=value,
            frontend=_str(h, "frontend", where),
            pool=_str(h, "pool", where),
            **common,
        )
    raise ValueError(f"{where}.kind: {kind!r:.40} is not one of ['backend', 'weight']")


def to_doc(state: OpState, saved_at: float) -> dict[str, Any]:
    holds = []
    for h in state.holds:
        d: dict[str, Any] = {"kind": h.kind}
        if h.kind == WEIGHT:
            d["frontend"], d["pool"] = h.frontend, h.pool
        d.update(
            backend=h.backend,
            value=h.value,
            set_at=h.set_at,
            expires=h.expires,
            comment=h.comment,
            by=h.by,
        )
        holds.append(d)
    return {"version": VERSION, "saved_at": saved_at, "holds": holds}


def save(path: str, state: OpState, saved_at: float) -> None:
    """Replace `path` with `state`, atomically (see the module docstring); StateFileError on
    any failure, with the old file left as it was and no temporary file left behind."""
    data = (json.dumps(to_doc(state, saved_at), indent=1, sort_keys=True) + "\n").encode()
    parent = os.path.dirname(os.path.abspath(path))
    tmp: str | None = None
    try:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
        tmp = None
        dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)  # the rename itself survives a power cut
        finally:
            os.close(dfd)
    except OSError as e:
        raise StateFileError(f"state file {path}: cannot write: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def discard(path: str, now: float | None = None) -> str:
    """Rename an unreadable state file aside (never delete what an operator may need); returns
    the new name, `<path>.discarded-<UTC timestamp>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    aside = f"{path}.discarded-{stamp}"
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = f"{path}.discarded-{stamp}.{n}"
    try:
        os.rename(path, aside)
    except OSError as e:
        raise StateFileError(f"state file {path}: cannot rename it aside: {e.strerror}") from None
    return aside


def load_or_discard(path: str, discard_bad: bool) -> OpState | None:
    """`load(path)`; with `discard_bad`, a file that cannot be read is renamed aside (WARNING
    naming it and what it held, as far as it can be told) and maglevd starts without it."""
    try:
        state = load(path)
    except StateFileError as e:
        if not discard_bad or not os.path.lexists(path):
            raise
        aside = discard(path)
        log.warning(
            "%s; --discard-state: its operator state (pauses, disables, weight overrides) is "
            "not applied; the file is kept as %s",
            e, aside,
        )  # fmt: skip
        return None
    if state is None:
        log.info("no state file at %s: no operator state to restore", path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.access(parent if os.path.isdir(parent) else os.path.dirname(parent), os.W_OK):
            log.warning(
                "state file %s: its directory is not writable; operator actions will fail until "
                "it is",
                path,
            )
    return state
