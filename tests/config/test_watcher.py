"""The config watcher against a real directory: in-place edits, rename replacement, debounce."""

from __future__ import annotations

import os
import pathlib
import threading

from maglev.config.watcher import ConfigWatcher


def _watch(path: pathlib.Path) -> tuple[ConfigWatcher, list[str], threading.Event]:
    seen: list[str] = []
    fired = threading.Event()

    def cb() -> None:
        seen.append(path.read_text())
        fired.set()

    w = ConfigWatcher(str(path), cb, debounce=0.2)
    w.start()
    return w, seen, fired


def test_edit_in_place_and_rename_replace(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text("v: 1\n")
    w, seen, fired = _watch(cfg)
    try:
        with open(cfg, "w") as f:  # in place: truncate + several writes = one burst
            f.write("v: ")
            f.flush()
            f.write("2\n")
        assert fired.wait(10)
        fired.clear()
        assert seen == ["v: 2\n"]
        tmp = tmp_path / ".maglev.yaml.tmp"
        tmp.write_text("v: 3\n")
        os.rename(tmp, cfg)  # how editors and config management replace files
        assert fired.wait(10)
        assert seen[-1] == "v: 3\n"
        assert len(seen) == 2
    finally:
        w.stop()


def test_other_files_are_ignored(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text("v: 1\n")
    w, seen, fired = _watch(cfg)
    try:
        (tmp_path / "other.yaml").write_text("x\n")
        assert not fired.wait(1.0)
        cfg.write_text("v: 4\n")
        assert fired.wait(10)
        assert seen == ["v: 4\n"]
    finally:
        w.stop()


def test_complete_files_need_no_quiet_period(tmp_path: pathlib.Path) -> None:
    """A rename into place or a close after writing says the file is complete: the callback
    comes at once, long before a quiet period of 60 s would end; a write still open waits."""
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text("v: 1\n")
    seen: list[str] = []
    fired = threading.Event()

    def cb() -> None:
        seen.append(cfg.read_text())
        fired.set()

    w = ConfigWatcher(str(cfg), cb, debounce=60.0)
    w.start()
    try:
        tmp = tmp_path / ".maglev.yaml.tmp"
        tmp.write_text("v: 2\n")
        os.rename(tmp, cfg)
        assert fired.wait(20)
        assert seen == ["v: 2\n"]
        fired.clear()
        with open(cfg, "w") as f:  # open for writing: not complete until it is closed
            f.write("v: 3\n")
            f.flush()
            assert not fired.wait(1.0)
        assert fired.wait(20)
        assert seen == ["v: 2\n", "v: 3\n"]
    finally:
        w.stop()
