"""The control API's time-box bodies: each bad value is a 400 naming its field, before anything
reaches the reconciler; the caller (SO_PEERCRED) rides along as `by`."""

from __future__ import annotations

from typing import Any

import pytest

from maglev.daemon.bodies import _box_body
from maglev.daemon.control import ApiError
from maglev.reconcile.opstate import TimeBox

BY = "operator (uid 0 gid 0 pid 1)"


def test_no_body_is_no_time_box_but_keeps_the_caller() -> None:
    assert _box_body(None, BY) == TimeBox(by=BY)
    box = _box_body({"for": "90s", "comment": "ticket 9"}, BY)
    assert (box.for_seconds, box.comment, box.by) == (90.0, "ticket 9", BY)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "body must be a JSON object"),
        ({"for": "1m", "forr": 1}, "unknown key(s) ['forr']"),
        ({"for": 0}, "for: 0 is not a positive duration"),
        ({"for": "-1s"}, "for: expected a duration"),
        ({"until": "2001-01-01T00:00Z"}, "until: '2001-01-01T00:00Z' is in the past"),
        ({"comment": "c" * 201}, "comment: 201 characters"),
    ],
)
def test_bad_values_name_their_field(body: Any, message: str) -> None:
    with pytest.raises(ApiError) as e:
        _box_body(body, BY)
    assert e.value.status == 400 and message in str(e.value), str(e.value)


def test_the_weight_body_may_carry_a_time_box() -> None:
    keys = ("weight", "for", "until", "comment")
    assert _box_body({"weight": 5, "until": "2099-01-01T00:00Z"}, BY, keys).until is not None
    with pytest.raises(ApiError, match=r"unknown key\(s\) \['weight'\]"):
        _box_body({"weight": 5}, BY)
