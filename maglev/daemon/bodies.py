"""Request bodies and query parameters of the control API, checked: each problem is an `ApiError`
(a 4xx naming the offending key or value). Pure functions, called on the control server's
threads by `maglev.daemon.control`.
"""

from __future__ import annotations

import json
import reprlib
import time
from typing import Any
from urllib.parse import parse_qs

from maglev.daemon.http1 import ApiError
from maglev.errors import InvalidRequest
from maglev.reconcile.opstate import BOX_KEYS, TimeBox, parse_box

MAX_DEPTH = 32  # JSON nesting a request body may have (ours need 2)
_repr = reprlib.Repr()  # client values in messages: short, and shallow however deep they are
_repr.maxlevel, _repr.maxstring, _repr.maxother = 2, 40, 40
_show = _repr.repr


def _weight_body(body: Any) -> int:
    if not isinstance(body, dict) or "weight" not in body:
        raise ApiError(400, 'body must be a JSON object {"weight": 0..100}')
    w = body["weight"]
    if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
        raise ApiError(400, f"weight: {_show(w)} is not an integer in 0..100")
    return w


def _box_body(body: Any, by: str, keys: tuple[str, ...] = BOX_KEYS) -> TimeBox:
    """The time box of an operator action: `for` (a duration) or `until` (ISO 8601 with a zone),
    and a `comment`; an absent or empty body is none. 400 naming the field otherwise."""
    if body is None:
        return TimeBox(by=by)
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be a JSON object with any of {list(BOX_KEYS)}")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise ApiError(400, f"unknown key(s) {_show(unknown)}; use {list(keys)}")
    try:
        return parse_box(body, by, time.time())
    except InvalidRequest as e:
        raise ApiError(400, str(e)) from None


def _config_body(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        raise ApiError(400, 'body must be a JSON object {"config": "<YAML text>"}')
    return str(body["config"])


def _reload_body(body: Any) -> bool:
    """`POST /v1/reload`'s body: none, or {"force": true|false}; whether to force."""
    if body is None:
        return False
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be empty or a JSON object {"force": true}')
    unknown = sorted(str(k) for k in body if k != "force")
    if unknown:
        raise ApiError(400, f"unknown key {_show(unknown[0])} (expected: force)")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, f"force: {_show(force)} is not true or false")
    return force


def _too_deep(doc: Any, limit: int) -> bool:
    """Whether `doc` nests containers deeper than `limit` (iterative: no recursion to exhaust)."""
    todo: list[tuple[Any, int]] = [(doc, 0)]
    while todo:
        node, depth = todo.pop()
        if not isinstance(node, dict | list):
            continue
        if depth >= limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def json_body(raw: bytes) -> Any:
    """A request body as JSON (None when empty); 400 naming the problem otherwise."""
    if not raw.strip():
        return None
    try:
        doc = json.loads(raw)
    except RecursionError:  # the parser recurses per level: `[` x 1000 exhausts the stack
        raise ApiError(
            400, f"body is not valid JSON: nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as e:  # UnicodeDecodeError included
        raise ApiError(400, f"body is not valid JSON: {e}") from None
    if _too_deep(doc, MAX_DEPTH):
        raise ApiError(400, f"body is not valid JSON: nested deeper than {MAX_DEPTH} levels")
    return doc


BACKEND_ACTIONS = ("pause", "resume", "enable", "disable")
DRY_RUN = "dry-run"
_YES, _NO = ("1", "true", "yes"), ("0", "false", "no")


def _dry_run(query: str, allowed: bool, what: str) -> bool:
    """The `dry-run` query parameter (other parameters are ignored, as ever). It is refused
    where it is not supported: a write that ignored it would apply what was meant as a test."""
    if not query:
        return False
    try:
        parsed = parse_qs(query, keep_blank_values=True, max_num_fields=16)
    except ValueError as e:
        raise ApiError(400, f"query: {e}") from None
    values = parsed.get(DRY_RUN)
    if values is None:
        return False
    if not allowed:
        raise ApiError(400, f"{DRY_RUN}: not supported by {what}")
    v = values[-1].strip().lower()
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise ApiError(400, f"{DRY_RUN}: {_show(values[-1])} is not one of 1, true, yes, 0, false, no")
