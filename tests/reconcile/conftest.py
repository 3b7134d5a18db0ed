"""Fixtures the reconciler's emulator tests share: an emulator on its real socket per test, and
the VPP API files generated once per module."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from maglev.vpp import apidefs
from maglev.vppsim import Emulator


@pytest.fixture
def emu(tmp_path: pathlib.Path) -> Iterator[Emulator]:
    e = Emulator(str(tmp_path / "api.sock"))
    e.start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return apidefs.generate(tmp_path_factory.mktemp("defs"))
