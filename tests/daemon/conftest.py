"""Every maglevd a daemon test starts keeps its operator state in that test's own directory
(MAGLEV_STATE_FILE, inherited by subprocesses), never in /var/lib/maglev: tests must neither
share state nor leave it behind."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def own_state_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    path = tmp_path_factory.mktemp("state") / "state.json"
    monkeypatch.setenv("MAGLEV_STATE_FILE", str(path))
    yield path
