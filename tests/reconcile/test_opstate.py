"""Operator state as values and its state file: expiry order, parsing of time boxes, the file's
round trip, its atomic replace, and the refusal of files it does not understand."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from maglev.errors import InvalidRequest
from maglev.model import BackendState
from maglev.reconcile import statefile
from maglev.reconcile.opstate import (
    BACKEND,
    WEIGHT,
    Hold,
    OpState,
    TimeBox,
    backend_after,
    parse_box,
    parse_until,
)
from maglev.reconcile.statefile import StateFileError

NOW = 1_800_000_000.0


def sample() -> OpState:
    return (
        OpState()
        .put(Hold(BACKEND, "b1", "paused", NOW, expires=NOW + 60, comment="ticket 1", by="u0"))
        .put(Hold(WEIGHT, "b2", 30, NOW, frontend="web", pool="primary", expires=NOW + 10))
        .put(Hold(BACKEND, "b3", "disabled", NOW - 5))
    )


def test_due_is_earliest_first_and_next_expiry_is_the_earliest() -> None:
    s = sample()
    assert s.next_expiry() == NOW + 10
    assert s.due(NOW + 9.99) == []
    assert [h.backend for h in s.due(NOW + 10)] == ["b2"]
    assert [h.backend for h in s.due(NOW + 1e6)] == ["b2", "b1"]  # b3 never expires
    assert s.drop(("weight", "web", "b2")).next_expiry() == NOW + 60
    assert OpState().next_expiry() is None


def test_put_replaces_the_same_key_and_keeps_key_order() -> None:
    s = sample().put(Hold(BACKEND, "b1", "disabled", NOW + 1))
    assert [h.key for h in s.holds] == [
        ("backend", "b1"),
        ("backend", "b3"),
        ("weight", "web", "b2"),
    ]
    assert s.get(("backend", "b1")) == Hold(BACKEND, "b1", "disabled", NOW + 1)


@pytest.mark.parametrize(
    ("state", "action", "old", "after"),
    [
        (BackendState.UP, "pause", None, "paused"),
        (BackendState.DISABLED, "pause", None, None),  # pause does nothing to a disabled one
        (BackendState.PAUSED, "resume", "paused", None),
        (BackendState.DISABLED, "resume", "paused", None),  # an operator's resume ends a pause
        (BackendState.UP, "resume", None, None),
        (BackendState.PAUSED, "disable", "paused", "disabled"),
        (BackendState.DISABLED, "enable", "disabled", None),
        (BackendState.PAUSED, "enable", "paused", "paused"),  # enable is not resume
    ],
)
def test_backend_after_mirrors_the_health_machine(
    state: BackendState, action: str, old: str | None, after: str | None
) -> None:
    h = Hold(BACKEND, "b", old, NOW) if old else None
    assert backend_after(state, action, h) == after


def test_parse_box_names_the_offending_field() -> None:
    assert parse_box({}, "u", NOW) == TimeBox(by="u")
    assert parse_box({"for": "30m", "comment": " ticket 123 "}, "u", NOW) == TimeBox(
        1800.0, None, "ticket 123", "u"
    )
    assert parse_box({"until": "2030-01-01T00:00Z"}, None, NOW).until == parse_until(
        "2030-01-01T01:00:00+01:00"
    )
    bad = [
        ({"for": "0s"}, r"^for: .* not a positive duration"),
        ({"for": -5}, r"^for: "),
        ({"for": "soon"}, r"^for: expected a duration"),
        ({"for": "30d"}, r"^for: "),
        ({"until": "2020-01-01T00:00Z"}, r"^until: .* in the past"),
        ({"until": "2030-01-01T00:00"}, r"^until: .* no time zone"),
        ({"until": "tomorrow"}, r"^until: .* not a time"),
        ({"until": 5}, r"^until: expected a time"),
        ({"for": "1m", "until": "2030-01-01T00:00Z"}, r"^for, until: "),
        ({"comment": "x" * 201}, r"^comment: 201 characters"),
        ({"comment": "two\nlines"}, r"^comment: must be one line"),
        ({"comment": 7}, r"^comment: expected a string"),
    ]
    for body, match in bad:
        with pytest.raises(InvalidRequest, match=match):
            parse_box(body, None, NOW)


def test_an_until_past_on_the_reconcilers_clock_is_refused() -> None:
    box = TimeBox(until=NOW + 5)
    assert box.expires(NOW) == NOW + 5
    with pytest.raises(InvalidRequest, match=r"^until: .* in the past"):
        box.expires(NOW + 5)
    assert TimeBox(for_seconds=2.0).expires(NOW) == NOW + 2


# --- the file ----------------------------------------------------------------------------


def test_round_trip(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "sub" / "state.json")  # the directory is made when missing
    assert statefile.load(path) is None  # a missing file: a first start
    statefile.save(path, sample(), NOW)
    assert statefile.load(path) == sample()
    doc = json.loads(pathlib.Path(path).read_text())
    assert doc["version"] == 1 and doc["saved_at"] == NOW
    assert os.listdir(tmp_path / "sub") == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_intact(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "state.json")
    statefile.save(path, sample(), NOW)
    before = pathlib.Path(path).read_bytes()

    def no_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(statefile.os, "fsync", no_fsync)
    with pytest.raises(StateFileError, match=r"state\.json: cannot write: Input/output error"):
        statefile.save(path, OpState(), NOW + 1)
    assert pathlib.Path(path).read_bytes() == before
    assert os.listdir(tmp_path) == ["state.json"]
    monkeypatch.undo()
    monkeypatch.setattr(statefile.os, "replace", lambda a, b: no_fsync(0))
    with pytest.raises(StateFileError):
        statefile.save(path, OpState(), NOW + 1)
    assert pathlib.Path(path).read_bytes() == before
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object, got list"),
        ('{"version": 2, "holds": []}', "version 2 is not one this maglevd reads"),
        ('{"holds": []}', "version None"),
        ('{"version": 1, "holds": {}}', "holds: expected a list"),
        ('{"version": 1, "holds": [{"kind": "backend", "backend": "b", "value": "gone",'
         ' "set_at": 1}]}', r"holds\[0\]\.value: 'gone'"),
        ('{"version": 1, "holds": [{"kind": "weight", "backend": "b", "value": 101,'
         ' "frontend": "f", "pool": "p", "set_at": 1}]}', r"holds\[0\]\.value: 101"),
        ('{"version": 1, "holds": [{"kind": "weight", "backend": "b", "value": 1,'
         ' "pool": "p", "set_at": 1}]}', r"holds\[0\]\.frontend"),
        ('{"version": 1, "holds": [{"kind": "backend", "backend": "b", "value": "paused",'
         ' "set_at": "yesterday"}]}', r"holds\[0\]\.set_at"),
        ('{"version": 1, "holds": [{"kind": "other", "backend": "b", "set_at": 1}]}',
         r"holds\[0\]\.kind"),
    ],
)  # fmt: skip
def test_unreadable_files_are_refused_naming_file_and_problem(
    tmp_path: pathlib.Path, text: str, match: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=rf"^state file {path}: .*{match}"):
        statefile.load(str(path))


def test_discard_renames_aside_and_starts_clean(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 99}')
    with pytest.raises(StateFileError):
        statefile.load_or_discard(str(path), False)
    assert path.exists()
    assert statefile.load_or_discard(str(path), True) is None
    assert not path.exists()
    (aside,) = tmp_path.glob("state.json.discarded-*")
    assert aside.read_text() == '{"version": 99}'  # kept, not deleted
    (warn,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "version 99" in warn.getMessage() and str(aside) in warn.getMessage()
