"""`maglevd check-config FILE`: exit 0 valid, 1 unreadable/unparsable, 2 invalid."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from maglev.cli.maglevd import cli

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO = REPO / "etc" / "maglev-demo.yaml"

INVALID = """\
healthchecks:
  web: {type: http, port: 80, intervall: 1s}
backends:
  web1: {address: 127.0.0.1, healthcheck: web}
frontends:
  www:
    address: 192.0.2.80
    port: 80
    encap: gre4
    pools:
      - name: primary
        backends: {web1: {weight: 120}}
vpp: {lb: {ip4-src-address: 198.51.100.1}}
"""


def run(path: pathlib.Path | str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_exits_0_with_a_summary() -> None:
    code, out, err = run(DEMO)
    assert code == 0, err
    assert out == f"{DEMO}: ok (2 frontends, 5 backends, 2 healthchecks)\n"
    assert err == ""


def test_unparsable_file_exits_1_naming_file_and_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("vpp:\n  lb: [\n")
    code, out, err = run(path)
    assert code == 1
    assert err.startswith(f"{path}:3:")
    assert out == ""


def test_missing_file_exits_1(tmp_path: pathlib.Path) -> None:
    code, _, err = run(tmp_path / "absent.yaml")
    assert code == 1
    assert "cannot read" in err and "absent.yaml" in err


def test_directory_exits_1(tmp_path: pathlib.Path) -> None:
    code, _, err = run(tmp_path)
    assert code == 1
    assert err.startswith(f"{tmp_path}: cannot read")


def test_invalid_file_exits_2_with_one_problem_per_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "invalid.yaml"
    path.write_text(INVALID)
    code, out, err = run(path)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{path}: healthchecks.web.intervall: unknown key 'intervall' (did you mean 'interval'?)"
        " (line 2)",
        f"{path}: frontends.www.pools[0].backends.web1.weight: 120 is not in 0..100 (line 12)",
        f"{path}: 2 problem(s)",
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("content", "code"),
    [(DEMO.read_text(), 0), ("a: [\n", 1), (None, 1), (INVALID, 2)],
    ids=["valid", "unparsable", "unreadable", "invalid"],
)
def test_real_maglevd_process(tmp_path: pathlib.Path, content: str | None, code: int) -> None:
    maglevd = pathlib.Path(sys.executable).parent / "maglevd"
    if not maglevd.exists():
        pytest.skip(f"{maglevd} is not installed")
    path = tmp_path / "maglev.yaml"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run(
        [str(maglevd), "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 0:
        assert proc.stdout.startswith(f"{path}: ok (")
    else:
        assert proc.stderr.startswith(f"{path}")
