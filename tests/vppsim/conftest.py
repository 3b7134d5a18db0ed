"""Fixtures: a running emulator on a Unix socket in tmp_path and real vpp-papi clients of it."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vpp_papi import VPPApiClient

from maglev.clock import ManualClock
from maglev.vpp import apidefs
from maglev.vppsim import Emulator


@pytest.fixture(scope="session")
def api_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return apidefs.generate(tmp_path_factory.mktemp("apidefs"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emulator(tmp_path: pathlib.Path, clock: ManualClock) -> Iterator[Emulator]:
    emu = Emulator(str(tmp_path / "api.sock"), clock=clock)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def connect(emulator: Emulator, api_files: list[str]) -> Iterator[Callable[..., Any]]:
    clients: list[Any] = []

    def make(name: str = "test", read_timeout: float = 5) -> Any:
        c = VPPApiClient(
            apifiles=api_files, server_address=emulator.socket_path, read_timeout=read_timeout
        )
        c.connect(name)
        clients.append(c)
        return c

    yield make
    for c in clients:
        if c.transport.connected:
            c.disconnect()


@pytest.fixture
def vpp(connect: Callable[..., Any]) -> Any:
    return connect()
