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
