"""The engine selections (diff, Maglev table, the config's fast loader and the probes' socket
calls): each environment gets exactly the engine it names.

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

from maglev import diff, table
from maglev.config import fastload
from maglev.health import sockops

TRUE = ("1", "true", "yes")
# The selector's module path under maglev -> the selector.
SELECTORS = {
    "diff": diff,
    "table": table,
    "config.fastload": fastload,
    "health.sockops": sockops,
}


def modules(selector: str) -> dict[str, str]:
    package, _, name = f"maglev.{selector}".rpartition(".")
    return {"cython": f"{package}._{name}", "python": f"{package}._{name}_py"}


def report(selector: str) -> str:
    return f"import maglev.{selector} as s; print(s.IMPLEMENTATION, s._engine.__name__)"


def block(selector: str) -> str:
    """Prepended to `report`: a broken or missing build (the compiled module fails to import)."""
    name = modules(selector)["cython"]
    return (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {name!r}:\n"
        f"            raise ImportError('{name} blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
    )


def compiled_importable(selector: str) -> bool:
    try:
        importlib.import_module(modules(selector)["cython"])
    except ImportError:
        return False
    return True


def select(
    selector: str, env: dict[str, str], blocked: bool = False
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAGLEV_")}
    return subprocess.run(
        [sys.executable, "-c", (block(selector) if blocked else "") + report(selector)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


@pytest.mark.parametrize("selector", sorted(SELECTORS))
def test_this_process_has_the_engine_its_environment_names(selector: str) -> None:
    if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in TRUE:
        expected = "python"
    elif os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in TRUE:
        expected = "cython"
    else:
        expected = "cython" if compiled_importable(selector) else "python"
    chosen = SELECTORS[selector]
    assert expected == chosen.IMPLEMENTATION
    assert chosen._engine.__name__ == modules(selector)[expected]
    assert chosen.engine_name() == expected
    if expected == "cython":
        path = chosen._engine.__file__
        assert path is not None and path.endswith(".so")


@pytest.mark.integration
@pytest.mark.parametrize("selector", sorted(SELECTORS))
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
def test_each_environment_selects_its_engine(
    selector: str, env: dict[str, str], expected: str
) -> None:
    if expected == "cython" and not compiled_importable(selector):
        pytest.skip("the compiled engine is not built here (CI runs with it required)")
    r = select(selector, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expected, modules(selector)[expected]]


@pytest.mark.integration
@pytest.mark.parametrize("selector", sorted(SELECTORS))
def test_without_the_compiled_engine_it_falls_back_unless_required(selector: str) -> None:
    twin = modules(selector)["python"]
    r = select(selector, {}, blocked=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", twin]
    r = select(selector, {"MAGLEV_REQUIRE_EXTENSIONS": "1"}, blocked=True)
    assert r.returncode != 0
    assert f"ImportError: {modules(selector)['cython']} blocked by the test" in r.stderr
    r = select(
        selector, {"MAGLEV_REQUIRE_EXTENSIONS": "1", "MAGLEV_NO_EXTENSIONS": "1"}, blocked=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", twin]
