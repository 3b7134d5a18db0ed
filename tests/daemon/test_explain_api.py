"""`GET /v1/frontends/F/explain`, `.../backends/B/explain` and `maglevc explain` through the real
control server (a real reconciler over MemoryLb, as `test_control_api`)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from maglev.cli.maglevc import cli
from maglev.vpp.memory import MemoryLb
from tests.daemon.test_control_api import Daemon

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, MemoryLb())
    yield d
    d.stop()


def test_explain_a_frontend_and_one_backend(daemon: Daemon) -> None:
    c = daemon.client
    doc = c.request("GET", "/v1/frontends/www/explain")
    assert doc["frontend"] == "www" and [b["backend"] for b in doc["backends"]] == ["a1", "b1"]
    view = {b.name: b.weight for b in daemon.rec.snapshot.frontends["www"].backends}
    for b in doc["backends"]:
        assert b["consistent"] is True
        assert b["steps"][0]["rule"] == "configured" and b["steps"][-1]["rule"] == "effective"
        assert b["steps"][-1]["weight"] == b["weight"] == view[b["backend"]]
    one = c.request("GET", "/v1/frontends/www/backends/b1/explain")
    assert one["backends"] == [doc["backends"][1]]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/frontends/nope/explain", "no frontend named 'nope' (HTTP 404)"),
        ("/v1/frontends/nope/backends/a1/explain", "no frontend named 'nope' (HTTP 404)"),
        (
            "/v1/frontends/www/backends/zz/explain",
            "frontend 'www' has no backend named 'zz' (HTTP 404)",
        ),
    ],
)
def test_unknown_names_are_404(daemon: Daemon, path: str, expected: str) -> None:
    assert daemon.error("GET", path) == expected


def test_maglevc_explain(daemon: Daemon) -> None:
    run = CliRunner().invoke
    r = run(cli, ["--socket", daemon.path, "explain", "frontend", "www"])
    assert r.exit_code == 0, r.output
    blocks = r.output.strip().split("\n\n")
    assert len(blocks) == 2 and blocks[0].startswith("www / a1: weight ")
    assert any(line.split()[0] == "configured" for line in blocks[0].splitlines()[1:])
    r = run(cli, ["--socket", daemon.path, "--json", "ex", "frontend", "www", "backend", "a1"])
    assert r.exit_code == 0, r.output
    assert [b["backend"] for b in json.loads(r.output)["backends"]] == ["a1"]
    r = run(cli, ["--socket", daemon.path, "explain", "frontend", "www", "b1"])
    assert r.exit_code != 0
    r = run(cli, ["--socket", daemon.path, "explain", "frontend", "nope"])
    assert r.exit_code == 1 and "no frontend named 'nope'" in r.output
