"""Log set-up: chatty libraries stay one notch quieter than maglev's own level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from maglev.daemon import logsetup


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("vpp_papi", "watchdog")}
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        for n, lv in quiet.items():
            logging.getLogger(n).setLevel(lv)


@pytest.mark.usefixtures("restored")
def test_at_debug_watchdog_and_vpp_papi_stay_at_info() -> None:
    # watchdog logs each inotify event at DEBUG: with the log file in the config's directory
    # every line it wrote would be another event (the observer thread spun on its own output).
    logsetup.configure("debug")
    assert logging.getLogger("maglev.daemon").isEnabledFor(logging.DEBUG)
    for name in ("watchdog", "watchdog.observers.inotify_buffer", "vpp_papi"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert logging.getLogger(name).isEnabledFor(logging.INFO), name


@pytest.mark.usefixtures("restored")
def test_above_info_they_follow_the_level() -> None:
    logsetup.configure("warning")
    for name in ("watchdog", "vpp_papi"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
