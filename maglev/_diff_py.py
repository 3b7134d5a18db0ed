"""Placeholder; replaced by the diff engine's pure-Python twin."""

from __future__ import annotations


def engine_name() -> str:
    return "python"
