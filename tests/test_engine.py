"""The diff engine selection: each environment gets exactly the engine it names.

MAGLEV_NO_EXTENSIONS=1 -> the Python twin (it wins over MAGLEV_REQUIRE_EXTENSIONS);
MAGLEV_REQUIRE_EXTENSIONS=1 -> the compiled engine, or an ImportError (CI proves the build really
loaded); neither -> the compiled engine when it imports, else the twin. Fresh interpreters are
started with each environment, and with the compiled module made unimportable.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from maglev import diff

TRUE = ("1", "true", "yes")
MODULE = {"cython": "maglev._diff", "python": "maglev._diff_py"}
REPORT = "from maglev import diff; print(diff.IMPLEMENTATION, diff._engine.__name__)"
# Prepended to REPORT: a broken or missing build (the import of maglev._diff fails).
BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'maglev._diff':\n"
    "            raise ImportError('maglev._diff blocked by the test')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def compiled_importable() -> bool:
    try:
        importlib.import_module("maglev._diff")
    except ImportError:
        return False
    return True


def select(env: dict[str, str], blocked: bool = False) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAGLEV_")}
    return subprocess.run(
        [sys.executable, "-c", (BLOCK if blocked else "") + REPORT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_this_process_has_the_engine_its_environment_names() -> None:
    if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in TRUE:
        expected = "python"
    elif os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in TRUE:
        expected = "cython"
    else:
        expected = "cython" if compiled_importable() else "python"
    assert expected == diff.IMPLEMENTATION
    assert diff._engine.__name__ == MODULE[expected]
    if expected == "cython":
        assert diff._engine.__file__ is not None and diff._engine.__file__.endswith(".so")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "cython"),
        ({"MAGLEV_REQUIRE_EXTENSIONS": "1"}, "cython"),
        ({"MAGLEV_NO_EXTENSIONS": "1"}, "python"),
        ({"MAGLEV_NO_EXTENSIONS": "true"}, "python"),
        ({"MAGLEV_NO_EXTENSIONS": "0"}, "cython"),
        ({"MAGLEV_NO_EXTENSIONS": "1", "MAGLEV_REQUIRE_EXTENSIONS": "1"}, "python"),
    ],
)
def test_each_environment_selects_its_engine(env: dict[str, str], expected: str) -> None:
    if expected == "cython" and not compiled_importable():
        pytest.skip("the compiled engine is not built here (CI runs with it required)")
    r = select(env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expected, MODULE[expected]]


@pytest.mark.integration
def test_without_the_compiled_engine_it_falls_back_unless_required() -> None:
    r = select({}, blocked=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", "maglev._diff_py"]
    r = select({"MAGLEV_REQUIRE_EXTENSIONS": "1"}, blocked=True)
    assert r.returncode != 0
    assert "ImportError: maglev._diff blocked by the test" in r.stderr
    r = select({"MAGLEV_REQUIRE_EXTENSIONS": "1", "MAGLEV_NO_EXTENSIONS": "1"}, blocked=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", "maglev._diff_py"]
