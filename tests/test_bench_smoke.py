"""The benchmark runner at smoke size: every suite runs, and the JSON and plots are written.

This keeps `maglev-bench` from rotting; the figures of a smoke run mean nothing and are not
checked (timing is never asserted in tests). It installs nothing: a recording `apt-get` (and
`apt`, `dpkg`, `sudo`) comes first on PATH and must not be called; the checker suite skips its
nginx/HAProxy parts when those are absent (`make bench-deps` installs them) and runs the rest.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks import checker
from benchmarks.runner import SUITES
from tests.test_bench_deps import fake_package_tools

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]
BIN = pathlib.Path(sys.executable).parent


def test_every_suite_runs_at_smoke_size(tmp_path: pathlib.Path) -> None:
    fakes = tmp_path / "fakes"
    calls = fake_package_tools(fakes)
    results = tmp_path / "results"
    r = subprocess.run(
        [str(BIN / "maglev-bench"), "all", "--smoke", "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, PATH=f"{fakes}{os.pathsep}{os.environ.get('PATH', os.defpath)}"),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not calls.exists(), calls.read_text()
    (run_dir,) = list(results.iterdir())
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["smoke"] is True
    assert [res["suite"] for res in doc["results"]] == list(SUITES)
    for res in doc["results"]:
        assert res["figures"], res["suite"]
        for f in res["figures"].values():
            assert {"median", "min", "max", "unit"} <= set(f)
    # The reload suite timed a backend stopped during a rejected reload, and with none.
    (res,) = [res for res in doc["results"] if res["suite"] == "reload"]
    for name in ("alias bomb: backend stopped at the rename -> weight 0 in VPP",
                 "no reload: backend stopped -> weight 0 in VPP (same run)"):  # fmt: skip
        assert name in res["figures"], sorted(res["figures"])
    # ... and read the lateness farm's probes over the changing reloads, against its target.
    late = "probes within 100 ms of schedule during the changing reloads (%)"
    assert res["ratios"][late]["target"] == 99.0, sorted(res["ratios"])
    assert 0.0 <= res["figures"][late]["median"] <= 100.0
    assert res["figures"]["no reload: probes recorded in the quiet window"]["median"] > 0
    # ... and its larger tier (at smoke size: 60 frontends): startup, reloads, peak RSS.
    tier = {k: f for k, f in res["figures"].items() if k.startswith("1,200 backends: ")}
    assert len(tier) == 3, sorted(res["figures"])
    assert tier["1,200 backends: peak RSS of maglevd"]["median"] > 10  # MiB: a Python process
    # The checker ran its nginx/HAProxy parts exactly when this machine has them.
    (res,) = [res for res in doc["results"] if res["suite"] == "checker"]
    absent = [tool for tool in checker.TOOLS if checker.find_tool(tool) is None]
    assert res["skipped"] == absent
    for tool in absent:
        assert any(n.startswith(f"{tool} skipped: ") for n in res["notes"]), res["notes"]
        assert f"checker: {tool} skipped" in r.stdout
    has_haproxy = "checker_cpu_vs_haproxy" in " ".join(res["ratios"])
    assert has_haproxy == ("haproxy" not in absent), res["ratios"]
    assert (run_dir / "program.png").stat().st_size > 1000
    # --compare reads an earlier run (threshold wide open: smoke timings are noise)
    again = subprocess.run(
        [str(BIN / "maglev-bench"), "diff", "--smoke", "--results", str(tmp_path / "again"),
         "--compare", str(run_dir / "results.json"), "--threshold", "0.99"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "compared with" in again.stdout
