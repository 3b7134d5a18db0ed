"""maglevd shortens the interpreter's switch interval, so the check workers get the GIL while
a big reload is read and applied (`runtime.SWITCH_INTERVAL`; measured by `maglev-bench reload`)."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

from maglev.daemon import runtime


@pytest.fixture
def interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("interval")
def test_run_sets_the_switch_interval_first(tmp_path: pathlib.Path) -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    missing = tmp_path / "absent.yaml"
    assert runtime.run(runtime.Settings(config_path=str(missing))) == 1  # refused at once...
    # ...and set before anything else ran: a shorter interval than the default's
    assert sys.getswitchinterval() == pytest.approx(runtime.SWITCH_INTERVAL)
    assert runtime.SWITCH_INTERVAL < 0.005
