# cython: language_level=3
"""Placeholder; replaced by the diff engine."""


def engine_name():
    return "cython"
