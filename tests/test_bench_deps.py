"""Tests install nothing: the benchmarks never call a package manager (`make bench-deps` does).

The checker suite runs with nginx and haproxy hidden and a recording `apt-get` (and `apt`, `dpkg`,
`sudo`) first on PATH: a smoke run skips the parts that need them and says so, a real run fails
and names `make bench-deps`, and neither calls the fakes.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent
ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_TOOLS = ("apt-get", "apt", "dpkg", "sudo")


def fake_package_tools(bindir: pathlib.Path) -> pathlib.Path:
    """Recording stand-ins for the package tools in bindir; returns the file they append to."""
    bindir.mkdir(parents=True, exist_ok=True)
    calls = bindir / "calls.log"
    for name in PACKAGE_TOOLS:
        tool = bindir / name
        tool.write_text(f'#!/bin/sh\necho "$0 $*" >> {calls}\nexit 0\n')
        tool.chmod(0o755)
    return calls


def bare_env(bindir: pathlib.Path) -> dict[str, str]:
    """PATH with the fakes and the venv only, and the checker told to look for nginx and haproxy
    only there too (they are otherwise also looked for in /usr/sbin)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGLEV_BENCH_")}
    env["PATH"] = f"{bindir}{os.pathsep}{BIN}"
    env["MAGLEV_BENCH_TOOL_PATH"] = str(bindir)
    return env


@pytest.mark.integration
@pytest.mark.slow
def test_checker_smoke_without_nginx_and_haproxy_skips_them_and_installs_nothing(
    tmp_path: pathlib.Path,
) -> None:
    bindir = tmp_path / "bin"
    calls = fake_package_tools(bindir)
    r = subprocess.run(
        [str(BIN / "maglev-bench"), "checker", "--smoke", "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        timeout=120,
        env=bare_env(bindir),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not calls.exists(), calls.read_text()
    # The skips are on stdout (the suite's own line, and the runner's notes)...
    for tool in ("nginx", "haproxy"):
        assert f"checker: {tool} skipped" in r.stdout, r.stdout
        assert f"note: {tool} skipped" in r.stdout, r.stdout
    # ... and in the results, with their reason.
    ((run_dir),) = list((tmp_path / "res").iterdir())
    (res,) = json.loads((run_dir / "results.json").read_text())["results"]
    assert res["suite"] == "checker"
    assert res["skipped"] == ["nginx", "haproxy"]
    reasons = [n for n in res["notes"] if " skipped: " in n]
    assert len(reasons) == 2
    assert all(f"not found in {bindir}" in n and "make bench-deps" in n for n in reasons)
    # HAProxy's side is absent; maglev's side ran (on the stand-in farm).
    assert not [k for k in [*res["figures"], *res["ratios"]] if "haproxy" in k]
    for kind in ("tcp", "http"):
        assert res["figures"][f"{kind}.100.probes_per_s"]["median"] > 0
        assert f"{kind}.100.within_100ms_pct" in res["ratios"]
    assert "HAProxy" not in res["setup"] and "stand-in farm" in res["setup"]


@pytest.mark.integration
def test_checker_real_run_without_them_fails_naming_bench_deps(tmp_path: pathlib.Path) -> None:
    bindir = tmp_path / "bin"
    calls = fake_package_tools(bindir)
    r = subprocess.run(
        [str(BIN / "maglev-bench"), "checker", "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        timeout=60,
        env=bare_env(bindir),
        cwd=ROOT,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert not calls.exists(), calls.read_text()
    assert "needs nginx and haproxy, not found in" in r.stdout, r.stdout
    assert "run `make bench-deps`" in r.stdout, r.stdout


def test_no_python_code_runs_a_package_manager() -> None:
    """Beside the run above (which covers the checker): no module names a package tool as a
    command (`"apt-get"` as an argv element), in maglev/, benchmarks/ or tests/."""
    command = re.compile(r"""["'](apt-get|apt|dpkg|yum|dnf)["']""")
    found = []
    for tree in ("maglev", "benchmarks", "tests"):
        for path in sorted((ROOT / tree).rglob("*.py")):
            if path == pathlib.Path(__file__).resolve():
                continue  # this file names them to fake them
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if command.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not found, found
