"""Packaging: MAGLEV_NO_EXTENSIONS=1 builds the pure-Python package; a broken engine (any of
them) fails the build."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _tree(dst: pathlib.Path) -> pathlib.Path:
    src = dst / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("maglev", "benchmarks"):
        shutil.copytree(
            ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__")
        )
    return src


def _wheel(src: pathlib.Path, out: pathlib.Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip


def test_no_extensions_builds_the_python_twin(tmp_path: pathlib.Path) -> None:
    src = _tree(tmp_path)
    r = _wheel(src, tmp_path / "out", MAGLEV_NO_EXTENSIONS="1")
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = (tmp_path / "out").glob("maglev-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "maglev/_diff_py.py" in names and "maglev/diff.py" in names
    assert "maglev/_table_py.py" in names and "maglev/table.py" in names
    assert "maglev/config/_fastload_py.py" in names and "maglev/config/fastload.py" in names
    assert "maglev/health/_sockops_py.py" in names and "maglev/health/sockops.py" in names
    assert not [n for n in names if n.endswith(".so")]


@pytest.mark.parametrize("engine", ["_diff", "_table", "config/_fastload", "health/_sockops"])
def test_a_broken_engine_fails_the_build(tmp_path: pathlib.Path, engine: str) -> None:
    src = _tree(tmp_path)
    pyx = src / "maglev" / f"{engine}.pyx"
    pyx.write_text(pyx.read_text() + "\ncdef int broken = \n")
    r = _wheel(src, tmp_path / "out", MAGLEV_NO_EXTENSIONS="")
    assert r.returncode != 0
    assert not list((tmp_path / "out").glob("*.whl"))
    assert f"{engine}.pyx" in r.stdout + r.stderr
