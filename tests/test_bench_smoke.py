"""The benchmark runner at smoke size: every suite runs, and the JSON and plots are written.

This keeps `maglev-bench` from rotting; the figures of a smoke run mean nothing and are not
checked (timing is never asserted in tests).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks.runner import SUITES

# The checker suite installs nginx and haproxy with apt-get when missing: allow for it.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]
BIN = pathlib.Path(sys.executable).parent


def test_every_suite_runs_at_smoke_size(tmp_path: pathlib.Path) -> None:
    r = subprocess.run(
        [str(BIN / "maglev-bench"), "all", "--smoke", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["smoke"] is True
    assert [res["suite"] for res in doc["results"]] == list(SUITES)
    for res in doc["results"]:
        assert res["figures"], res["suite"]
        for f in res["figures"].values():
            assert {"median", "min", "max", "unit"} <= set(f)
    assert (run_dir / "program.png").stat().st_size > 1000
    # --compare reads an earlier run (threshold wide open: smoke timings are noise)
    again = subprocess.run(
        [str(BIN / "maglev-bench"), "diff", "--smoke", "--results", str(tmp_path / "again"),
         "--compare", str(run_dir / "results.json"), "--threshold", "0.99"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "compared with" in again.stdout
