"""Shared fixtures: paths to the reference data in ../shared (tests using it skip when absent)."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_dir() -> pathlib.Path:
    if not SHARED.is_dir():
        pytest.skip("../shared reference data is absent")
    return SHARED
