"""Reading a config file: YAML text -> the frozen `maglev.model.Config`.

Owns the YAML layer (safe loading, duplicate-key detection, syntax errors with file and line,
the size limits of `maglev.config.limits` checked before anything is built) and the assembly of
the validated pieces into one `Config`. File-level failures raise `ConfigError`; everything the
validators find is raised together as one `ConfigInvalid`. Called by `maglevd check-config`, and
by the daemon at startup, on reload and for `config check` (on whichever thread does that, while
probes and VPP writes run on others); it holds no state between calls.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import yaml

from maglev.config import fastbuild, fastload, limits, reloadguard, schema, validate, vantage
from maglev.config import healthchecks as healthchecks_mod
from maglev.config.changes import Delta
from maglev.config.fields import KEY_IN_PATH_MAX, Node, Problems, got, show
from maglev.errors import ConfigError, ConfigInvalid, Problem
from maglev.model import (
    Config,
    ControlSettings,
    HealthSettings,
    MetricsSettings,
    VppSettings,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BYTES = limits.MAX_BYTES
"""A config this large is a mistake (a wrong path, a log file); refuse it before parsing."""


PLAIN_TYPED_MAX = 1000
"""Unquoted scalars longer than this are strings, not numbers, booleans or null."""

Lines = dict[int, dict[object, int] | list[int]]
"""id(mapping) -> {key: 1-based line}, id(list) -> [the line of each item]; valid while the
parsed document lives (`maglev.config._fastload_types.Lines`)."""


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    # libyaml's parser when PyYAML was built with it (about 3x faster on big files); the
    # constructor on top, where the checks below live, is the same Python code either way.
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """SafeLoader that refuses duplicate keys and remembers the line of every key and item."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: Lines = {}

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        # A plain scalar this long is text: YAML's number patterns backtrack over it in one regex
        # call that holds the GIL (160 ms for 4 MiB of digits), and no number a config takes is
        # this long (an integer of over 4300 digits is refused by Python anyway).
        if kind is yaml.ScalarNode and implicit[0] and len(value) > PLAIN_TYPED_MAX:
            return "tag:yaml.org,2002:str"
        tag: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def construct_yaml_map(self, node: yaml.MappingNode) -> Generator[dict[Any, Any], None, None]:
        data: dict[Any, Any] = {}
        yield data  # before filling, so aliases to this mapping resolve (PyYAML's protocol)
        data.update(self.construct_mapping(node))
        lines: dict[object, int] = {}
        for key_node, _ in node.value:  # merged keys first, so explicit keys win
            key = self.construct_object(key_node)
            if isinstance(key, str | int | float | bool):
                lines[key] = key_node.start_mark.line + 1
        self.lines[id(data)] = lines

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Generator[list[Any], None, None]:
        data: list[Any] = []
        yield data
        data.extend(self.construct_sequence(node))
        self.lines[id(data)] = [item.start_mark.line + 1 for item in node.value]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it with its position
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {show(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)

# Dates are not a config type; without this, `2024-02-30` would fail deep inside PyYAML with no
# line number, and a valid date would arrive as a datetime where a string was meant.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


def load_file(path: str, memo: Memo | None = None, keep: list[object] | None = None) -> Config:
    """Read, parse and validate the config file at `path` (`memo`: see `build`; `keep`: see
    `load_text`)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB; is this a config file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return load_text(text, source=path, memo=memo, keep=keep)


def load_text(
    text: str, source: str = "<string>", memo: Memo | None = None, keep: list[object] | None = None
) -> Config:
    """Parse and validate config text; `source` names it in messages (`memo`: see `build`).
    The parsed document is appended to `keep` if given (a process about to exit need not free
    it: `maglevd check-config`)."""
    with _collector_paused():
        data, lines = _parse(text, source, with_lines=False)
        if keep is not None:
            keep.append(data)
        return build(data, source, lines, memo, relines=lambda: _parse(text, source))


_paused = 0
_paused_lock = threading.Lock()
_was_enabled = False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Run without Python's cyclic garbage collector (process-wide, for the whole load).

    Loading allocates a node, a value and two marks per key and item, and each full collection
    then walks every object in the process (the running config included) in one go with the GIL
    held: with the collector running, loading the 2.4 MiB benchmark config took 6 s and stopped
    the other threads for up to 800 ms at a time; paused, 2.8 s and about 70 ms. Nothing the load
    allocates is cyclic garbage, and what other threads leave meanwhile waits a few seconds.
    Counted, because `config check` (a control thread) and a reload (the main thread) may
    overlap: the collector comes back when the last load ends, if it was on before the first.
    """
    global _paused, _was_enabled
    with _paused_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


def parse(text: str, source: str = "<string>") -> dict[str, object]:
    """YAML text -> the top-level mapping, or ConfigError naming the source and line."""
    with _collector_paused():
        return _parse(text, source, with_lines=False)[0]


def _parse(
    text: str, source: str, with_lines: bool = True
) -> tuple[dict[str, object], Lines | None]:
    """(the top-level mapping, its lines); without `with_lines` the lines may be None (not
    kept by the fast path: `build` asks for them again only when it has problems to place)."""
    if len(text) > MAX_BYTES:  # the file was checked in bytes; text from the API arrives here
        raise ConfigError(f"{source}: longer than {MAX_BYTES >> 20} Mi characters")
    try:
        data, fast_lines = fastload.load(
            text,
            _Loader.yaml_implicit_resolvers,
            _construct_plain,
            PLAIN_TYPED_MAX,
            with_lines=with_lines,
        )
        lines: Lines | None = fast_lines if with_lines else None
    except fastload.TooMany as e:
        raise ConfigError(
            f"{source}:{e.line}:{e.column}: the document has more than {limits.MAX_NODES:,} "
            f"keys, values and items (the limit), at {e.where}"
        ) from None
    except fastload.Unsupported:
        # Anchors, aliases, tags, merge keys, duplicates and errors: the node graph's loader
        # gives them their meaning, their bounds and their messages.
        data, lines = _parse_composed(text, source)
    if data is None:
        raise ConfigError(f"{source}: the file is empty; expected a mapping of sections")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections "
            f"({', '.join(schema.TOP)}), {got(data)}"
        )
    return data, lines


_PLAIN_TAGS = frozenset("tag:yaml.org,2002:" + name for name in ("bool", "int", "float", "null"))


def _construct_plain(tag: str, value: str) -> object:
    """A resolved plain scalar, built by the full loader's own constructor for its tag."""
    if tag not in _PLAIN_TAGS:
        raise fastload.Unsupported(tag)  # e.g. `=` (YAML's value tag): the full loader says why
    try:
        return _Loader.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, value))
    except (ValueError, OverflowError):
        raise fastload.Unsupported("a number Python refuses") from None


_CONSTRUCTOR = _Loader("")
"""Scalar constructors read nothing but the node they are given; this one is never run."""


def _parse_composed(text: str, source: str) -> tuple[object, Lines]:
    try:
        loader = _Loader(text)  # the reader checks the characters right here
        try:
            # Composing shares an aliased node instead of copying it, so the graph is no bigger
            # than the text; it is measured, aliases expanded, before a value is constructed.
            node = loader.get_single_node()
            try:
                if node is not None:
                    limits.measure(node, source)
                data = loader.construct_document(node) if node is not None else None
            finally:
                if node is not None:
                    limits.release(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_message(source, e)) from None
    except yaml.reader.ReaderError as e:
        before = _text_before(text, e.position)
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        code = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "?")
        raise ConfigError(f"{source}:{line}:{column}: {e.reason} (#x{code:04x})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: the document is nested too deeply") from None
    except (ValueError, OverflowError) as e:
        # e.g. an integer of 5000 digits (Python's int-from-string limit)
        raise ConfigError(f"{source}: {e}") from None
    return data, loader.lines


def _text_before(text: str, position: int) -> str:
    """The text before a reader error; libyaml counts UTF-8 bytes, PyYAML characters."""
    if _SafeLoader is yaml.SafeLoader:
        return text[:position]
    return text.encode("utf-8")[:position].decode("utf-8", errors="ignore")


def _yaml_message(source: str, e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark or e.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    what = " ".join(str(p) for p in (e.context, e.problem) if p)
    return f"{where}: {what or 'YAML syntax error'}"


def build(
    data: dict[str, object],
    source: str = "<string>",
    lines: Lines | None = None,
    memo: Memo | None = None,
    relines: Callable[[], tuple[object, Lines | None]] | None = None,
) -> Config:
    """Validate a parsed document and assemble the frozen Config (ConfigInvalid lists all).

    With `lines` (from parsing), each problem's message ends with the line of its key. With a
    `memo` (the daemon keeps one across reloads), a healthcheck, backend or frontend whose
    entry is parsed exactly as in the last good build, and whose healthcheck or backends were
    not built anew in this one, is that build's object again, not validated anew: a
    reload that changes a few entries validates those; the memo then holds this build.
    Without `lines`, `relines()` (if given) parses the text again with them, only when there
    are problems to place.
    """
    problems = Problems()
    top = Node.of(data, "", problems)
    if top is None:  # parse() guarantees a dict; kept for callers passing other data
        raise ConfigInvalid(problems)
    top.check_keys(schema.TOP)

    fresh = Memo() if memo is not None else None
    healthchecks, new_checks, checks_whole = _named(
        top, "healthchecks", fastbuild.HEALTHCHECKS, healthchecks_mod.healthcheck, {}, memo, fresh
    )
    backends, new_backends, backends_whole = _named(
        top, "backends", fastbuild.BACKENDS,
        lambda n, node: validate.backend(n, node, healthchecks), healthchecks, memo, fresh,
        new_checks,
    )  # fmt: skip
    frontends, new_frontends, frontends_whole = _named(
        top, "frontends", fastbuild.FRONTENDS,
        lambda n, node: validate.frontend(n, node, backends), backends, memo, fresh,
        new_backends,
    )  # fmt: skip
    vpp_node = top.child("vpp")
    control_node = top.child("control")
    metrics_node = top.child("metrics")
    health_node = top.child("health")
    # A section that is not a mapping was reported by child(); its defaults stand in.
    vpp = validate.vpp_settings(vpp_node) if vpp_node is not None else VppSettings()
    control = (
        validate.control_settings(control_node) if control_node is not None else ControlSettings()
    )
    metrics = (
        validate.metrics_settings(metrics_node) if metrics_node is not None else MetricsSettings()
    )
    health = validate.health_settings(health_node) if health_node is not None else HealthSettings()
    health = vantage.with_vantage(health, health_node, healthchecks)
    reload_guard = reloadguard.reload_guard_settings(top.child("reload-guard"))

    built_frontends = {n: f for n, f in frontends.items() if f is not None}
    validate.gre_sources(top, vpp, built_frontends)
    validate.shared_prefixes(top, built_frontends)

    if problems:
        log.debug("%s: %d config problem(s)", source, len(problems) + problems.dropped)
        placed_in: object = data
        if lines is None and relines is not None:
            placed_in, lines = relines()
        found = _in_file_order(problems, placed_in, lines) if lines else list(problems)
        if problems.dropped:
            found.append(Problem("", f"... and {problems.dropped} more problem(s) not listed"))
        raise ConfigInvalid(found)
    config = Config(
        vpp=vpp,
        healthchecks=MappingProxyType(_complete(healthchecks, checks_whole)),
        backends=MappingProxyType(_complete(backends, backends_whole)),
        frontends=MappingProxyType(_complete(frontends, frontends_whole)),
        control=control,
        metrics=metrics,
        health=health,
        reload_guard=reload_guard,
    )
    if memo is not None and fresh is not None:  # the last good build, for the next
        last, memo.entries, memo.last = memo.last, fresh.entries, config
        memo.delta = Delta(last, config, new_checks, new_backends, new_frontends) if last else None
    return config


class Memo:
    """The entries of the last good build: section -> name -> (the entry as parsed, the object
    built from it). An entry is reused only when it is parsed the same (`fastbuild.same`: equal
    and of the same type at every level, so `1`, `1.0`, `true` and `"1"` differ) and nothing it
    names in the section before it (a backend's healthcheck, a frontend's backends) was built
    anew, so its text means exactly what it meant. Used by one thread at a time."""

    __slots__ = ("delta", "entries", "last")

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[object, object]]] = {}
        self.last: Config | None = None  # that build; `delta`: what it changed from the one before
        self.delta: Delta | None = None


def _named(
    top: Node,
    section: str,
    kind: int,
    validator: Callable[[str, Node], T | None],
    context: Mapping[str, object],
    memo: Memo | None = None,
    fresh: Memo | None = None,
    rebuilt: set[str] | None = None,
) -> tuple[dict[str, T | None], set[str], bool]:
    """Run `validator` over a named map: (every name -> its object, or None if broken; the
    names whose object is not the memo's: new, changed, broken or gone; whether every entry
    was built).

    `fastbuild.section` (of `kind`, with `context`: what the plain entries are checked
    against) takes first what needs no validator: with `memo`, an entry parsed the same as then
    is its object from then, unless it names one of `rebuilt` (what `_named` gave for the
    section it refers to); a plainly valid backend or frontend is built directly. `validator`
    decides the rest, in place and so in order; `fresh` collects this build's entries."""
    node = top.child(section)
    old = memo.entries.get(section) if memo is not None else None
    new: dict[str, tuple[object, object]] | None = None
    if fresh is not None:
        new = fresh.entries[section] = {}
    if node is None:
        return {}, set(old) if old else set(), True
    built_out, changed, rest = fastbuild.section(
        kind, cast(dict[str, object], node.data), context, old, new, rebuilt
    )
    out = cast(dict[str, T | None], built_out)
    whole = True
    for name in rest:
        if not validate.check_name(node, name):
            del out[name]
            whole = False
            continue
        value = node.data[name]
        child = Node.of(value, node.at(name), node.problems)
        built = validator(name, child) if child is not None else None
        out[name] = built
        if built is None:
            whole = False
        elif new is not None:
            new[name] = (value, built)
    if old:
        changed.update(old.keys() - out.keys())
    return out, changed, whole


def _in_file_order(problems: list[Problem], data: object, lines: Lines) -> list[Problem]:
    """Each problem with ` (line N)` appended, sorted by line (stable; unplaced ones last)."""
    placed = [(line_of(p.path, data, lines), p) for p in problems]
    placed.sort(key=lambda lp: lp[0] if lp[0] is not None else float("inf"))
    return [Problem(p.path, f"{p.message} (line {line})") if line else p for line, p in placed]


def line_of(path: str, data: object, lines: Lines) -> int | None:
    """The line of the deepest key of `path` (`a.b[2].c`) found in the parsed document.

    Names may contain dots, so at each mapping the longest key matching the rest of the path
    wins.
    """
    node, rest, line = data, path, None
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if not isinstance(node, list) or end < 0 or not rest[1:end].isdigit():
                break
            index = int(rest[1:end])
            if index >= len(node):
                break
            at = lines.get(id(node))
            if isinstance(at, list) and index < len(at):
                line = at[index]
            node, rest = node[index], rest[end + 1 :]
            continue
        rest = rest.removeprefix(".")
        if not isinstance(node, dict):
            break
        key = _longest_key(node, rest)
        if key is None:
            break
        at = lines.get(id(node))
        if isinstance(at, dict):
            line = at.get(key, line)
        node, rest = node[key], rest[len(key) :]
    return line


def _longest_key(mapping: dict[object, object], path: str) -> str | None:
    """The longest key of `mapping` that `path` starts with, followed by `.`, `[` or nothing.

    Looked up by the places the path could be cut rather than by scanning the keys: this runs
    once per problem, and a section can hold a hundred thousand keys.
    """
    cut = len(path)
    while cut >= 0:
        if path[:cut] in mapping:
            return path[:cut]
        # A key in a path is at most KEY_IN_PATH_MAX long (Node.at cuts longer ones).
        end = min(cut, KEY_IN_PATH_MAX + 1)
        cut = max(path.rfind(".", 0, end), path.rfind("[", 0, end)) if cut else -1
    return None


def _complete(objects: dict[str, T | None], whole: bool) -> dict[str, T]:
    """Only called once there are no problems, so every object was built (`whole` says so
    without looking at each)."""
    if whole:
        return cast(dict[str, T], objects)
    return {name: obj for name, obj in objects.items() if obj is not None}
