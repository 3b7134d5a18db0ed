"""The diff engine selection: CI proves the compiled engine really loads."""

from __future__ import annotations

import os

from maglev import diff


def test_engine_matches_environment() -> None:
    if os.environ.get("MAGLEV_NO_EXTENSIONS") == "1":
        assert diff.IMPLEMENTATION == "python"
    elif os.environ.get("MAGLEV_REQUIRE_EXTENSIONS") == "1":
        assert diff.IMPLEMENTATION == "cython"
        assert diff._engine.__file__.endswith(".so")
    else:
        assert diff.IMPLEMENTATION in ("python", "cython")
