"""A compiled engine and its pure-Python twin as test parameters (both run; the compiled one is
skipped where it is not built, except under MAGLEV_REQUIRE_EXTENSIONS=1, where CI proves the
build and a missing engine is a failure)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pytest


def compiled(name: str) -> ModuleType | None:
    """The compiled module `name`, or None when it is not built here."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        return None


def params(name: str, built: ModuleType | None, twin: ModuleType) -> list[Any]:
    """pytest params "cython" (skipped when `built` is None) and "python"."""
    return [
        pytest.param(
            built,
            id="cython",
            marks=pytest.mark.skipif(built is None, reason=f"{name} is not built here"),
        ),
        pytest.param(twin, id="python"),
    ]
