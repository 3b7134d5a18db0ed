"""Architecture guards: the folder tree is the architecture (see STYLE.md), so check it.

These tests read the package's source with `ast` and never import it: a guard must not depend on
the code it guards being importable, and parsing ~100 files takes a few tens of milliseconds.
Every failure names the offending file, line and edge (importer -> imported, or the word used).

The rules are data, at the top of this file. Decisions taken here:
- Every import statement counts, wherever it is: module level, inside functions, inside
  `if TYPE_CHECKING:` blocks. A `.pyx` (`_diff.pyx`, `_table.pyx`) is Cython, not Python: its
  Python-level import
  statements (`import x`, `from x import y`; not `cimport`) are cut out of the text and parsed
  one by one; the VPP-word rule does not look inside it.
- An import names one module: `import a.b.c` -> `a.b.c`; `from a.b import c` -> `a.b.c` when
  `a/b/c.py` (or `a/b/c/__init__.py`, `a/b/c.pyx`) exists, else `a.b`. Parent packages that Python
  imports on the way are not edges.
- Cycles: an edge from a package `__init__` to one of its own submodules is left out (re-exporting
  submodules is the usual package shape), and so is a module importing itself.
- VPP words: string constants and identifiers (`Name`, `Attribute`, and names in import
  statements, so importing `ENCAP_CODE` counts as using it). A string constant that is a whole
  statement of its own (a docstring, or the attribute docstring under an assignment) is prose
  and exempt: it has no run-time effect, and prose may say which VPP message a thing maps onto.
  Every other string counts, log messages included; a string counts when one of its `\\w+`
  tokens is a VPP word, so `"lb_conf failed: %s"` counts and `"maglev_vpp_lb_errors"` does not.
  The VPP words are the message names listed below plus every message defined in the bundled
  definitions under `maglev/vpp/` (tuples `(name, "0x<crc>", ...)`), so a message added there is
  covered without editing this file. A bare `lb_` prefix is deliberately not the rule: it would
  flag `lb_settings` (the parser of the config's `vpp.lb` section), which names no message.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "maglev"

# --- the rules ---------------------------------------------------------------------------------

SUBPACKAGES = ("config", "health", "vpp", "vppsim", "reconcile", "daemon", "cli")
CORE = "core"  # every top-level maglev/*.py module (and the engines' .pyx files)

# Which other layers a layer may import; its own layer is always allowed. Edges never import
# each other; reconcile joins them; daemon wires; cli calls; only daemon and cli start the emulator.
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    CORE: frozenset(),
    "config": frozenset({CORE}),
    "health": frozenset({CORE}),
    "vpp": frozenset({CORE}),
    "vppsim": frozenset({CORE}),
    "reconcile": frozenset({CORE, "config", "health", "vpp"}),
    "daemon": frozenset({CORE, "config", "health", "vpp", "vppsim", "reconcile"}),
    "cli": frozenset({CORE, "config", "health", "vpp", "vppsim", "reconcile", "daemon"}),
}

# Module-precise exceptions, (importer, imported): each covers the module and its submodules.
ALLOWED_EDGES: Mapping[tuple[str, str], str] = {
    ("maglev.vppsim", "maglev.vpp.apidefs"): "the emulator speaks the bundled message definitions",
    ("maglev.__main__", "maglev.cli"): "`python -m maglev` runs maglevd",
}

# Only these two packages speak VPP's binary API; nothing else names its messages.
VPP_PACKAGES = frozenset({"vpp", "vppsim"})
VPP_MESSAGES = frozenset(
    {
        "lb_conf",
        "lb_conf_get",
        "lb_add_del_vip",
        "lb_add_del_vip_v2",
        "lb_add_del_as",
        "lb_add_del_as_v2",
        "lb_as_set_weight",
        "lb_flush_vip",
        "lb_vip_dump",
        "lb_as_dump",
        "lb_as_v2_dump",
        "lb_add_del_intf_nat4",
        "lb_add_del_intf_nat6",
        "cli_inband",
        "show_version",
        "control_ping",
    }
)
VPP_WORDS_EXTRA = frozenset({"ENCAP_CODE"})  # VPP's encap numbers belong to vpp/

MAX_LINES = 500
MARKER = "py.typed"

# Each compiled engine `maglev/_NAME.pyx` has a pure-Python twin `maglev/_NAME_py.py` with the
# same public functions, and a selector `maglev/NAME.py` importing both and exporting
# IMPLEMENTATION; neither twin imports the other.
TWIN_SUFFIX = "_py"

# --- reading the source ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    module: str  # dotted name: maglev.config.loader; a package's __init__ is maglev.config
    path: str  # as shown in messages: maglev/config/loader.py
    text: str
    is_package: bool


@dataclass(frozen=True, slots=True)
class Edge:
    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported}"


def _module_name(rel: pathlib.PurePath) -> tuple[str, bool]:
    parts = list(rel.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


@functools.cache
def package_sources() -> tuple[Source, ...]:
    files = sorted(
        p
        for p in PACKAGE.rglob("*")
        if p.suffix in (".py", ".pyx") and p.is_file() and "__pycache__" not in p.parts
    )
    out = []
    for p in files:
        rel = p.relative_to(ROOT)
        module, is_package = _module_name(rel)
        out.append(Source(module, rel.as_posix(), p.read_text(encoding="utf-8"), is_package))
    return tuple(out)


# Python-level imports in a Cython file: `import x`, `from x import (a, b)`; `cimport` is C-level.
_PYX_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]*(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.M
)


def parse(src: Source) -> ast.Module:
    if not src.path.endswith(".pyx"):
        return ast.parse(src.text, filename=src.path)
    tree = ast.Module(body=[], type_ignores=[])
    for m in _PYX_IMPORT.finditer(src.text):
        try:
            snippet = ast.parse(m.group(0).strip())
        except SyntaxError:  # a line of prose that happens to start with "import"
            continue
        ast.increment_lineno(snippet, src.text.count("\n", 0, m.start()))
        tree.body.extend(snippet.body)
    return tree


@functools.cache
def parsed(src: Source) -> ast.Module:
    return parse(src)


# --- the import graph --------------------------------------------------------------------------


def _is_ours(module: str) -> bool:
    return module == "maglev" or module.startswith("maglev.")


def import_edges(src: Source, tree: ast.Module, known: frozenset[str]) -> list[Edge]:
    """Every import of a maglev module in `src`, one edge per imported module per statement."""
    found: dict[tuple[str, int], None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.name, node.lineno] = None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = src.module.split(".")
                package = here if src.is_package else here[:-1]
                base_parts = package[: len(package) - (node.level - 1)]
                if node.module:
                    base_parts = [*base_parts, *node.module.split(".")]
                base = ".".join(base_parts)
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found[candidate if candidate in known else base, node.lineno] = None
    return [
        Edge(src.module, target, src.path, line)
        for target, line in found
        if target and _is_ours(target)
    ]


@functools.cache
def all_edges() -> tuple[Edge, ...]:
    sources = package_sources()
    known = frozenset(s.module for s in sources)
    edges = [e for s in sources for e in import_edges(s, parsed(s), known)]
    return tuple(sorted(edges, key=lambda e: (e.path, e.line, e.imported)))


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else CORE


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def edge_violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the edge is allowed."""
    a, b = layer_of(importer), layer_of(imported)
    if a == b or b in MAY_IMPORT[a]:
        return None
    for (src, dst), _why in ALLOWED_EDGES.items():
        if _within(importer, src) and _within(imported, dst):
            return None
    allowed = ", ".join(sorted(MAY_IMPORT[a] - {a})) or "nothing outside itself"
    return f"layer {a} -> layer {b} (a {a} module may import {allowed})"


def cycle_graph(
    edges: Iterable[Edge], packages: frozenset[str]
) -> dict[str, dict[str, list[Edge]]]:
    """importer -> imported -> its import statements; no self-imports, no `__init__` -> own
    submodule."""
    graph: dict[str, dict[str, list[Edge]]] = {}
    for e in edges:
        if e.importer == e.imported:
            continue
        if e.importer in packages and e.imported.startswith(e.importer + "."):
            continue
        graph.setdefault(e.importer, {}).setdefault(e.imported, []).append(e)
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle, each sorted; Tarjan, iterative."""
    succ = {n: sorted(set(vs)) for n, vs in graph.items()}
    for vs in list(succ.values()):
        for v in vs:
            succ.setdefault(v, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(succ):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: list[str] = []
                while True:
                    v = stack.pop()
                    on_stack.discard(v)
                    comp.append(v)
                    if v == node:
                        break
                if len(comp) > 1 or node in succ[node]:
                    out.append(sorted(comp))
    return sorted(out)


def cycle_path(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """One shortest loop through the component's first module: [a, b, ..., a]."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for v in sorted(graph.get(node, ())):
                if v == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if v in members and v not in previous:
                    previous[v] = node
                    nxt_frontier.append(v)
        frontier = nxt_frontier
    raise AssertionError(f"no loop through {start} in {component}")


# --- VPP words ---------------------------------------------------------------------------------

_CRC = re.compile(r"0x[0-9a-f]{8}")
_IDENT = re.compile(r"[a-z][a-z0-9_]*")
_TOKEN = re.compile(r"\w+")


def bundled_messages(sources: Iterable[Source]) -> frozenset[str]:
    """Message names the bundled definitions declare: tuples `(name, "0x<crc>", ...)`."""
    names = set()
    for src in sources:
        if layer_of(src.module) != "vpp" or src.path.endswith(".pyx"):
            continue
        for node in ast.walk(parsed(src)):
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
                name, crc = node.elts[0], node.elts[1]
                if (
                    isinstance(name, ast.Constant)
                    and isinstance(name.value, str)
                    and _IDENT.fullmatch(name.value)
                    and isinstance(crc, ast.Constant)
                    and isinstance(crc.value, str)
                    and _CRC.fullmatch(crc.value)
                ):
                    names.add(name.value)
    return frozenset(names)


def vpp_word_hits(src: Source, tree: ast.Module, words: frozenset[str]) -> list[str]:
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in prose:
                continue
            for token in sorted(set(_TOKEN.findall(node.value)) & words):
                hits.append((node.lineno, f"string {node.value!r} names {token}"))
        elif isinstance(node, ast.Name) and node.id in words:
            hits.append((node.lineno, f"identifier {node.id}"))
        elif isinstance(node, ast.Attribute) and node.attr in words:
            hits.append((node.lineno, f"attribute .{node.attr}"))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                for name in {*alias.name.split("."), alias.asname or ""} & words:
                    hits.append((node.lineno, f"imported name {name}"))
    return [f"{src.path}:{line}: {src.module} -> {what}" for line, what in sorted(hits)]


# --- the tests ---------------------------------------------------------------------------------


def test_every_subpackage_is_a_known_layer() -> None:
    # layer_of() maps any unknown name to the core; a new folder must be placed in the rules.
    found = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert found == set(SUBPACKAGES), (
        f"subpackages not in the rules: {sorted(found ^ set(SUBPACKAGES))}"
    )


def test_layers_import_only_what_they_may() -> None:
    problems = [
        f"{e}: {why}"
        for e in all_edges()
        if (why := edge_violation(e.importer, e.imported)) is not None
    ]
    assert not problems, f"{len(problems)} forbidden import(s):\n" + "\n".join(problems)


def test_no_import_cycles() -> None:
    packages = frozenset(s.module for s in package_sources() if s.is_package)
    graph = cycle_graph(all_edges(), packages)
    problems = []
    for component in find_cycles(graph):
        loop = " -> ".join(cycle_path(graph, component))
        inside = [
            f"    {e}"
            for a in component
            for b, edges in sorted(graph.get(a, {}).items())
            if b in component
            for e in edges
        ]
        problems.append(
            f"cycle among {component} (e.g. {loop}); the imports inside it:\n" + "\n".join(inside)
        )
    assert not problems, f"{len(problems)} import cycle(s):\n" + "\n".join(problems)


def test_vpp_words_stay_in_vpp_and_vppsim() -> None:
    sources = package_sources()
    words = VPP_MESSAGES | bundled_messages(sources) | VPP_WORDS_EXTRA
    problems = [
        hit
        for src in sources
        if layer_of(src.module) not in VPP_PACKAGES and not src.path.endswith(".pyx")
        for hit in vpp_word_hits(src, parsed(src), words)
    ]
    assert not problems, f"{len(problems)} VPP word(s) outside vpp/ and vppsim/:\n" + "\n".join(
        problems
    )


def test_no_module_over_the_line_limit() -> None:
    long = [(n, s.path) for s in package_sources() if (n := len(s.text.splitlines())) > MAX_LINES]
    lines = [f"{path}:{n}: {n} lines > {MAX_LINES}" for n, path in sorted(long, reverse=True)]
    assert not long, f"{len(long)} module(s) to split:\n" + "\n".join(lines)


# `def name(` or `cpdef [return type] name(`; `cdef` functions are C-level only.
_PYX_DEF = re.compile(r"^(?:def|cpdef(?:[ \t]+[\w.]+\*?)*?)[ \t]+([A-Za-z]\w*)[ \t]*\(", re.M)


def pyx_functions(text: str) -> set[str]:
    """Public functions a Cython module exposes to Python (`def` and `cpdef` at top level)."""
    return set(_PYX_DEF.findall(text))


def py_functions(tree: ast.Module) -> set[str]:
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }


def twin_problems(sources: Iterable[Source], edges: Iterable[Edge]) -> list[str]:
    by_path = {s.path: s for s in sources}
    imports = {(e.importer, e.imported) for e in edges}
    problems = []
    for src in by_path.values():
        if not src.path.endswith(".pyx"):
            continue
        compiled = src.module
        twin_path = src.path.removesuffix(".pyx") + TWIN_SUFFIX + ".py"
        head, _, tail = src.path.rpartition("/")
        selector_path = f"{head}/{tail.removeprefix('_').removesuffix('.pyx')}.py"
        twin, selector = by_path.get(twin_path), by_path.get(selector_path)
        if twin is None or selector is None:
            problems.append(f"{src.path}: needs its twin {twin_path} and selector {selector_path}")
            continue
        want, got = pyx_functions(src.text), py_functions(parsed(twin))
        if want != got:
            problems.append(
                f"{twin_path}: public functions differ from {src.path}: "
                f"only compiled {sorted(want - got)}, only twin {sorted(got - want)}"
            )
        for a, b in ((compiled, twin.module), (twin.module, compiled)):
            if (a, b) in imports:
                problems.append(f"{a} imports its twin {b}")
        for b in (compiled, twin.module):
            if (selector.module, b) not in imports:
                problems.append(f"{selector_path}: does not import {b}")
        assigned = {
            t.id
            for node in ast.walk(parsed(selector))
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        if "IMPLEMENTATION" not in assigned:
            problems.append(f"{selector_path}: does not export IMPLEMENTATION")
    return sorted(problems)


def test_each_compiled_engine_has_its_twin_and_selector() -> None:
    assert any(s.path.endswith(".pyx") for s in package_sources())
    problems = twin_problems(package_sources(), all_edges())
    assert not problems, f"{len(problems)} twin problem(s):\n" + "\n".join(problems)


def test_twin_checker_sees_a_missing_function_and_a_missing_twin() -> None:
    files = {
        "maglev/_eng.pyx": "def run(x):\n    pass\ncpdef int step(int x):\n    return x\n",
        "maglev/_eng_py.py": "def run(x):\n    pass\ndef _helper():\n    pass\n",
        "maglev/eng.py": "from maglev import _eng_py as _engine\nIMPLEMENTATION = 'python'\n",
        "maglev/_lone.pyx": "def f():\n    pass\n",
    }
    sources = [
        Source(_module_name(pathlib.PurePosixPath(p))[0], p, t, False) for p, t in files.items()
    ]
    known = frozenset(s.module for s in sources)
    edges = [e for s in sources for e in import_edges(s, parse(s), known)]
    assert twin_problems(sources, edges) == [
        "maglev/_eng_py.py: public functions differ from maglev/_eng.pyx: "
        "only compiled ['step'], only twin []",
        "maglev/_lone.pyx: needs its twin maglev/_lone_py.py and selector maglev/lone.py",
        "maglev/eng.py: does not import maglev._eng",
    ]


def test_py_typed_marker() -> None:
    assert (PACKAGE / MARKER).is_file(), f"maglev/{MARKER} is missing (PEP 561 marker)"


# --- the guard's own tests, on synthetic in-memory input ---------------------------------------


def _synthetic(files: Mapping[str, str]) -> list[Edge]:
    sources = []
    for path, text in files.items():
        module, is_package = _module_name(pathlib.PurePosixPath(path))
        sources.append(Source(module, path, text, is_package))
    known = frozenset(s.module for s in sources)
    return [e for s in sources for e in import_edges(s, parse(s), known)]


def test_import_extraction_sees_every_kind_of_import() -> None:
    edges = _synthetic(
        {
            "maglev/__init__.py": "",
            "maglev/model.py": "",
            "maglev/vpp/__init__.py": "from . import papi\nfrom .papi import Client\n",
            "maglev/vpp/papi.py": "",
            "maglev/reconcile/__init__.py": "",
            "maglev/reconcile/plan.py": (
                "from __future__ import annotations\n"
                "import os\n"
                "from typing import TYPE_CHECKING\n"
                "import maglev.model as m\n"
                "from maglev.vpp import papi, Client\n"
                "from ..config import Config\n"
                "if TYPE_CHECKING:\n"
                "    from maglev.daemon.runtime import Runtime\n"
                "def f() -> None:\n"
                "    from maglev import vppsim\n"
            ),
            "maglev/_diff.pyx": (
                "from cpython cimport array\n"
                "import array as _array\n"
                "from maglev.model import (\n    A,\n    B,\n)\n"
                "cdef int x = 1\n"
            ),
        }
    )
    got = {(e.importer, e.imported, e.line) for e in edges}
    assert got == {
        ("maglev.vpp", "maglev.vpp.papi", 1),
        ("maglev.vpp", "maglev.vpp.papi", 2),
        ("maglev.reconcile.plan", "maglev.model", 4),
        ("maglev.reconcile.plan", "maglev.vpp.papi", 5),  # a submodule
        ("maglev.reconcile.plan", "maglev.vpp", 5),  # a name defined in the package
        ("maglev.reconcile.plan", "maglev.config", 6),  # relative, not a known submodule
        ("maglev.reconcile.plan", "maglev.daemon.runtime", 8),  # under TYPE_CHECKING
        ("maglev.reconcile.plan", "maglev", 10),  # inside a function; vppsim is unknown here
        ("maglev._diff", "maglev.model", 3),  # Cython, multi-line
    }


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("maglev.config.loader", "maglev.model", True),
        ("maglev.config.loader", "maglev.config.schema", True),
        ("maglev.config.loader", "maglev.health.state", False),
        ("maglev.health.state", "maglev.vpp.papi", False),
        ("maglev.vpp.papi", "maglev.config", False),
        ("maglev.vpp.papi", "maglev.reconcile.plan", False),
        ("maglev.reconcile.plan", "maglev.vpp.dumper", True),
        ("maglev.reconcile.plan", "maglev.config.schema", True),
        ("maglev.reconcile.plan", "maglev.daemon.runtime", False),
        ("maglev.reconcile.plan", "maglev.cli", False),
        ("maglev.reconcile.plan", "maglev.vppsim.server", False),
        ("maglev.daemon.runtime", "maglev.vppsim", True),
        ("maglev.daemon.runtime", "maglev.cli.maglevd", False),
        ("maglev.cli.maglevd", "maglev.daemon.runtime", True),
        ("maglev.vppsim.codec", "maglev.vpp.apidefs", True),
        ("maglev.vppsim.codec", "maglev.vpp.apidefs.schema", True),
        ("maglev.vppsim.codec", "maglev.vpp", False),
        ("maglev.vppsim.codec", "maglev.vpp.papi", False),
        ("maglev.vppsim.codec", "maglev.clock", True),
        ("maglev.vppsim.codec", "maglev.config", False),
        ("maglev.vpp.apidefs", "maglev.vppsim.codec", False),
        ("maglev.model", "maglev.errors", True),
        ("maglev.model", "maglev.config", False),
        ("maglev.diff", "maglev.cli", False),
        ("maglev.__main__", "maglev.cli.maglevd", True),
        ("maglev.__main__", "maglev.daemon", False),
        ("maglev", "maglev.vpp", False),
    ],
)
def test_edge_classifier(importer: str, imported: str, allowed: bool) -> None:
    assert (edge_violation(importer, imported) is None) is allowed


def test_cycle_finder() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["e"], "f": ["a"]}
    assert find_cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert find_cycles({"a": ["b", "c"], "b": ["c"], "c": []}) == []
    # two loops sharing a node are one component
    assert find_cycles({"x": ["y", "z"], "y": ["x"], "z": ["x"]}) == [["x", "y", "z"]]


def test_cycle_graph_drops_init_to_own_submodule() -> None:
    edges = _synthetic(
        {
            "maglev/config/__init__.py": "from maglev.config.loader import load\n",
            "maglev/config/loader.py": "from maglev.config import Problem\n",
            "maglev/vpp/__init__.py": "",
            "maglev/vpp/a.py": "from maglev.vpp import b\n",
            "maglev/vpp/b.py": "import maglev.vpp.a\nimport maglev.vpp.b\n",
        }
    )
    graph = cycle_graph(edges, frozenset({"maglev.config", "maglev.vpp"}))
    assert find_cycles(graph) == [["maglev.vpp.a", "maglev.vpp.b"]]


def test_vpp_word_scanner() -> None:
    text = (
        '"""Module docstring: lb_conf is prose."""\n'
        "from maglev.reconcile.plan import ENCAP_CODE\n"
        "X = 1\n"
        '"""Attribute docstring: lb_as_set_weight."""\n'
        "def f(conn):\n"
        '    """Calls show_version."""\n'
        '    conn.call("lb_add_del_vip_v2", x=1)\n'
        '    log.error("lb_conf failed: %s", conn.show_version())\n'
        '    return ["maglev_vpp_lb_errors", lb_settings, ENCAP_CODE, f"{x} control_ping"]\n'
    )
    src = Source("maglev.reconcile.x", "maglev/reconcile/x.py", text, False)
    words = VPP_MESSAGES | VPP_WORDS_EXTRA
    assert vpp_word_hits(src, parse(src), words) == [
        "maglev/reconcile/x.py:2: maglev.reconcile.x -> imported name ENCAP_CODE",
        "maglev/reconcile/x.py:7: maglev.reconcile.x -> string 'lb_add_del_vip_v2' names lb_add_del_vip_v2",
        "maglev/reconcile/x.py:8: maglev.reconcile.x -> attribute .show_version",
        "maglev/reconcile/x.py:8: maglev.reconcile.x -> string 'lb_conf failed: %s' names lb_conf",
        "maglev/reconcile/x.py:9: maglev.reconcile.x -> identifier ENCAP_CODE",
        "maglev/reconcile/x.py:9: maglev.reconcile.x -> string ' control_ping' names control_ping",
    ]


def test_bundled_messages_scanner() -> None:
    text = 'M = (("lb_conf", "0x56cd3261", "@req"), ("lb", "1.2.0", "0x487dee0a"))\n'
    src = Source("maglev.vpp.apidefs.definitions", "maglev/vpp/apidefs/definitions.py", text, False)
    assert bundled_messages([src]) == {"lb_conf"}
