"""The short way for plain backends, pool members and frontends against the general validators.

Whatever the fast path takes must be exactly what the general validator builds from the same
entry, with no problem; whatever it declines goes the general way. Both engines (the compiled
`_fastbuild`, skipped when it is not built, except under MAGLEV_REQUIRE_EXTENSIONS=1, and its
twin `_fastbuild_py`) are held to that on random entries, and a whole config loads to the same
`Config` with the fast path and without it.
"""

from __future__ import annotations

import ipaddress
import os
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config import _fastbuild_py, fastbuild, fields, loader, validate
from maglev.config.fields import Node, Problems
from maglev.model import Backend, Encap
from tests import twins

COMPILED = twins.compiled("maglev.config._fastbuild")
ENGINES = twins.params("maglev.config._fastbuild", COMPILED, _fastbuild_py)
BOTH = [e for e in (COMPILED, _fastbuild_py) if e is not None]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


# --- names and addresses ---------------------------------------------------------------------

NAMES = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,66}", fullmatch=True),
    st.text(alphabet="aZ9_.-é ٣\n", max_size=70),
)


@settings(max_examples=500, deadline=None)
@given(NAMES)
def test_a_plain_name_is_what_the_name_pattern_accepts(name: str) -> None:
    expected = validate._NAME.fullmatch(name) is not None
    for eng in BOTH:
        assert eng.plain_name(name) is expected, (eng.engine_name(), name)


QUADS = st.one_of(
    st.builds(
        lambda parts: ".".join(parts),
        st.lists(
            st.one_of(st.integers(0, 300).map(str), st.sampled_from(["", "00", "01", "1 ", "٣"])),
            min_size=1,
            max_size=5,
        ),
    ),
    st.text(alphabet="0123456789.:/ a", max_size=18),
    st.sampled_from(["0.0.0.0", "255.255.255.255", "256.0.0.1", "1.2.3.4.", ".1.2.3", "1..2.3"]),
)


@settings(max_examples=800, deadline=None)
@given(QUADS)
def test_an_address_is_taken_only_as_ipaddress_takes_it(text: str) -> None:
    for eng in BOTH:
        n = eng.ipv4(text)
        if fields._IPV4.fullmatch(text):
            assert n == int(ipaddress.IPv4Address(text)), (eng.engine_name(), text)
        else:
            assert n == -1, (eng.engine_name(), text)


# --- backends ---------------------------------------------------------------------------------

HEALTHCHECKS: dict[str, object] = {"web": object(), "broken": None}
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 101),
    st.floats(allow_nan=False, width=16),
    st.sampled_from(["10.0.0.1", " 10.0.0.1", "10.0.0.01", "2001:db8::1", "10.0.0.0/8", "x"]),
    st.sampled_from(["web", "broken", "nope", "", " ", "web "]),
    st.just({"a": 1}),
    st.just([1]),
)
BACKEND_KEYS = st.sampled_from(["address", "healthcheck", "enabled", "weight", "Address"])
ENTRIES: st.SearchStrategy[object] = st.one_of(
    st.dictionaries(BACKEND_KEYS, VALUES, max_size=4),
    st.fixed_dictionaries(
        {"address": st.sampled_from(["10.0.0.1", "192.0.2.255", "1.2.3.4"])},
        optional={
            "healthcheck": st.sampled_from(["web", "broken", None, "nope"]),
            "enabled": st.sampled_from([True, False, None, 1]),
        },
    ),
    VALUES,
)


def _general_backend(name: str, value: object) -> tuple[Backend | None, list[str]]:
    problems = Problems()
    section = Node({name: value}, "backends", problems)
    built = None
    if validate.check_name(section, name):
        node = Node.of(value, section.at(name), problems)
        if node is not None:
            built = validate.backend(name, node, HEALTHCHECKS)  # type: ignore[arg-type]
    return built, [str(p) for p in problems]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.just("b1"), NAMES), ENTRIES)
def test_a_backend_taken_is_the_one_the_validator_builds(name: str, value: object) -> None:
    general, problems = _general_backend(name, value)
    for eng in BOTH:
        fast = eng.backend(name, value, HEALTHCHECKS)
        if fast is None:
            continue
        assert problems == [], (eng.engine_name(), name, value)
        assert fast == general
        assert type(fast.address) is type(general.address)  # type: ignore[union-attr]
        assert hash(fast.address) == hash(general.address)  # type: ignore[union-attr]
        assert str(fast.address) == str(general.address)  # type: ignore[union-attr]


def test_the_plainest_backends_are_taken(engine: ModuleType) -> None:
    taken: list[object] = [
        {"address": "10.0.0.1"},
        {"address": "10.0.0.1", "healthcheck": "web", "enabled": False},
        {"address": "0.0.0.0", "healthcheck": None, "enabled": None},
    ]
    for value in taken:
        assert engine.backend("b1", value, HEALTHCHECKS) is not None, value
    declined: list[object] = [
        {"address": "2001:db8::1"},  # declined, not refused: the general way builds it
        {"address": "10.0.0.1", "healthcheck": "nope"},
        {"address": "10.0.0.1", "weight": 1},
        {"address": "10.0.0.1", "enabled": "yes"},
        None,
    ]
    for value in declined:
        assert engine.backend("b1", value, HEALTHCHECKS) is None, value


# --- pool members -----------------------------------------------------------------------------

BACKENDS: dict[str, Backend | None] = {
    "v4a": Backend("v4a", ipaddress.IPv4Address("10.0.0.1")),
    "v4b": Backend("v4b", ipaddress.IPv4Address("10.0.0.2")),
    "v6": Backend("v6", ipaddress.IPv6Address("2001:db8::1")),
    "broken": None,
}
MEMBER_NAMES = st.sampled_from(["v4a", "v4b", "v6", "broken", "nope"])
SPECS = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries({"weight": st.one_of(st.integers(-2, 102), st.none(), st.just(50.0))}),
    st.dictionaries(st.sampled_from(["weight", "slow-start", "x"]), VALUES, max_size=2),
    st.integers(0, 100),
    st.just("100"),
)
ENCAPS = st.sampled_from([None, Encap.GRE4, Encap.GRE6, Encap.L3DSR])


@settings(max_examples=1000, deadline=None)
@given(
    st.dictionaries(MEMBER_NAMES, SPECS, min_size=1, max_size=4),
    ENCAPS,
    st.dictionaries(MEMBER_NAMES, st.just("earlier"), max_size=2),
)
def test_members_taken_are_the_ones_the_validator_builds(
    data: dict[str, object], encap: Encap | None, seen: dict[str, str]
) -> None:
    problems = Problems()
    bnode = Node(data, "frontends.f.pools[0].backends", problems)
    general_seen = dict(seen)
    general = validate.members_of(bnode, "p", encap, BACKENDS, general_seen)
    version = encap.backend_version if encap is not None else 0
    for eng in BOTH:
        before = dict(seen)
        fast = eng.members(data, version, BACKENDS, seen)
        assert seen == before  # the caller records the members, not the engine
        if fast is None:
            continue
        assert [str(p) for p in problems] == [], (eng.engine_name(), data, encap, seen)
        assert fast == general
        assert isinstance(fast, tuple)


def test_the_plainest_members_are_taken(engine: ModuleType) -> None:
    plain = {"v4a": None, "v4b": {"weight": 0}}
    assert engine.members(plain, 4, BACKENDS, {}) is not None
    assert engine.members({"v4a": {}}, 0, BACKENDS, {}) is not None
    for data, version, seen in (
        ({"v4a": {"weight": 50.0}}, 4, {}),  # an integral float: the general way says so
        ({"v4a": {"slow-start": {"duration": "1s"}}}, 4, {}),
        ({"v6": {}}, 4, {}),  # the wrong family
        ({"v4a": {}}, 4, {"v4a": "p0"}),  # already in a pool
        ({"broken": {}}, 4, {}),
        ({}, 4, {}),
    ):
        assert engine.members(data, version, BACKENDS, seen) is None, data


# --- frontends ---------------------------------------------------------------------------------

FE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 65536),
    st.sampled_from([80, 443, 0, 65535, 80.0, "80"]),
    st.sampled_from(["tcp", "udp", "any", "TCP", " tcp", "sctp"]),
    st.sampled_from(["gre4", "gre6", "nat4", "nat6", "l3dsr", "GRE4", "x"]),
    st.sampled_from(["192.0.2.1", "192.0.2.0/24", "192.0.2.1/32", "2001:db8::1", "192.0.2.01"]),
)
POOLS = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["p", "q", "", " ", 1]),
                "backends": st.one_of(
                    st.dictionaries(MEMBER_NAMES, SPECS, min_size=0, max_size=3), st.none()
                ),
            },
            optional={"slow-start": st.just({"duration": "1s"}), "x": st.just(1)},
        ),
        st.just("p"),
    ),
    max_size=3,
)
FRONTENDS: st.SearchStrategy[object] = st.one_of(
    st.dictionaries(
        st.sampled_from(["address", "protocol", "port", "encap", "pools", "dscp", "Port"]),
        st.one_of(FE_VALUES, POOLS),
        max_size=6,
    ),
    st.fixed_dictionaries(
        {
            "address": st.sampled_from(["192.0.2.1", "198.18.0.7", "2001:db8::1"]),
            "port": st.sampled_from([80, 1, 65535, 0]),
            "encap": st.sampled_from(["gre4", "gre6", "nat4", "l3dsr"]),
            "pools": POOLS,
        },
        optional={
            "protocol": st.sampled_from(["tcp", "udp", "any", None]),
            "flow-table-length": st.just(1024),
            "target-port": st.just(8080),
        },
    ),
)


def _general_frontend(name: str, value: object) -> tuple[object, list[str]]:
    problems = Problems()
    section = Node({name: value}, "frontends", problems)
    built = None
    if validate.check_name(section, name):
        node = Node.of(value, section.at(name), problems)
        if node is not None:
            built = validate.frontend(name, node, BACKENDS)
    return built, [str(p) for p in problems]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.just("f1"), NAMES), FRONTENDS)
def test_a_frontend_taken_is_the_one_the_validator_builds(name: str, value: object) -> None:
    general, problems = _general_frontend(name, value)
    for eng in BOTH:
        fast = eng.frontend(name, value, BACKENDS)
        if fast is None:
            continue
        assert problems == [], (eng.engine_name(), name, value)
        assert fast == general
        assert repr(fast) == repr(general)
        assert hash(fast) == hash(general)
        assert type(fast.address) is type(general.address)  # type: ignore[attr-defined]


def test_the_plainest_frontends_are_taken(engine: ModuleType) -> None:
    plain = {
        "address": "192.0.2.1",
        "protocol": "tcp",
        "port": 80,
        "encap": "gre4",
        "pools": [{"name": "p", "backends": {"v4a": None}}, {"name": "q", "backends": {"v4b": {}}}],
    }
    fe = engine.frontend("f1", plain, BACKENDS)
    assert fe is not None
    assert [m.backend for p in fe.pools for m in p.members] == ["v4a", "v4b"]
    no_protocol = {k: v for k, v in plain.items() if k != "protocol"}
    assert engine.frontend("f1", no_protocol, BACKENDS) == fe
    for change in (
        {"protocol": "TCP"},  # the general way takes it, case-insensitively
        {"protocol": "any", "port": None},
        {"port": 0},
        {"port": True},
        {"encap": "l3dsr"},
        {"encap": "nat6"},
        {"address": "192.0.2.0/32"},
        {"dscp": 0},
        {"pools": []},
        {
            "pools": [
                {"name": "p", "backends": {"v4a": None}},
                {"name": "p", "backends": {"v4b": {}}},
            ]
        },
        {
            "pools": [
                {"name": "p", "backends": {"v4a": None}},
                {"name": "q", "backends": {"v4a": {}}},
            ]
        },
        {"pools": [{"name": "p", "backends": {"v6": None}}]},  # gre4 needs IPv4 backends
    ):
        assert engine.frontend("f1", {**plain, **change}, BACKENDS) is None, change
    assert engine.frontend("f 1", plain, BACKENDS) is None


# --- section: one loop over a named section, with the memo ------------------------------------

SECTION_ENTRIES = st.dictionaries(
    st.sampled_from(["v4a", "v4b", "v6", "b 1", "x"]),
    st.one_of(
        st.sampled_from([{"address": "10.0.0.1"}, {"address": "10.0.0.2", "healthcheck": "web"}]),
        st.sampled_from([{"address": "2001:db8::1"}, {"address": 1}, None]),
    ),
    max_size=5,
)


@settings(max_examples=500, deadline=None)
@given(
    SECTION_ENTRIES,
    st.one_of(st.none(), SECTION_ENTRIES),
    st.one_of(st.none(), st.sets(st.sampled_from(["web", "other"]), max_size=2)),
)
def test_section_is_the_same_loop_in_both_engines(
    data: dict[str, object], before: dict[str, object] | None, rebuilt: set[str] | None
) -> None:
    results = []
    for eng in BOTH:
        old = None
        if before is not None:  # the memo of an earlier build of `before`
            old = {}
            prev, _, _ = eng.section(fastbuild.BACKENDS, before, HEALTHCHECKS, None, old, None)
            old = {n: (before[n], o) for n, o in prev.items() if o is not None}
        new: dict[str, tuple[object, object]] | None = {} if old is not None else None
        out, changed, rest = eng.section(fastbuild.BACKENDS, data, HEALTHCHECKS, old, new, rebuilt)
        assert list(out) == list(data)  # in order, every name
        assert rest == [n for n in data if out[n] is None]
        for n, obj in out.items():
            if obj is None:
                continue
            assert obj == eng.backend(n, data[n], HEALTHCHECKS)
            reused = old is not None and n in old and old[n][1] is obj
            assert reused != (n in changed)
            if reused:
                assert not (rebuilt and obj.healthcheck in rebuilt)  # type: ignore[attr-defined]
            if new is not None:
                assert new[n][1] is obj
        results.append((out, changed, rest, new))
    if len(results) == 2:
        assert results[0][0] == results[1][0]
        assert results[0][1:] == results[1][1:]


def test_section_takes_the_memo_only_for_an_entry_parsed_the_same(engine: ModuleType) -> None:
    kept = Backend("a", ipaddress.IPv4Address("10.0.0.1"), "web")
    old: dict[str, tuple[object, object]] = {
        "a": ({"address": "10.0.0.1", "healthcheck": "web"}, kept)
    }
    same = {"a": {"address": "10.0.0.1", "healthcheck": "web"}}
    new: dict[str, tuple[object, object]] = {}
    out, changed, rest = engine.section(fastbuild.BACKENDS, same, HEALTHCHECKS, old, new, None)
    assert out["a"] is kept and changed == set() and rest == [] and new["a"] is old["a"]
    out, changed, _ = engine.section(fastbuild.BACKENDS, same, HEALTHCHECKS, old, {}, {"web"})
    assert out["a"] is not kept and out["a"] == kept and changed == {"a"}
    moved = {"a": {"address": "10.0.0.9", "healthcheck": "web"}}
    out, changed, _ = engine.section(fastbuild.BACKENDS, moved, HEALTHCHECKS, old, {}, None)
    assert out["a"] != kept and changed == {"a"}
    out, changed, rest = engine.section(fastbuild.HEALTHCHECKS, {"web": {}}, {}, None, None, None)
    assert out == {"web": None} and rest == ["web"]  # healthchecks always go the general way


# --- a whole config ---------------------------------------------------------------------------

CONFIG = """\
vpp: {lb: {ip4-src-address: 198.51.100.1, ip6-src-address: 2001:db8::100}}
healthchecks:
  web: {type: tcp, port: 80}
backends:
  a1: {address: 10.0.0.1, healthcheck: web}
  a2: {address: 10.0.0.2, enabled: false}
  a3: {address: 10.0.0.3}
  a6: {address: 2001:db8::1}
  a7: {address: " 10.0.0.7 "}
frontends:
  f1:
    address: 192.0.2.1
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {name: main, backends: {a1: {}, a2: {weight: 20}}}
      - {name: spare, backends: {a3: {weight: 5.0}, a7: }}
  f2:
    address: 2001:db8:1::1
    port: 443
    encap: gre6
    pools: [{name: p, backends: {a6: {slow-start: {duration: 10s}}}}]
"""


def test_a_config_loads_to_the_same_objects_with_and_without_the_short_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = loader.load_text(CONFIG)
    monkeypatch.setattr(fastbuild, "members", lambda *a: None)
    # Every entry to the validators (no memo here, so nothing is taken from it).
    monkeypatch.setattr(
        fastbuild,
        "section",
        lambda kind, data, *a: ({n: None for n in data}, set(data), list(data)),
    )
    general = loader.load_text(CONFIG)
    assert fast == general
    assert dict(fast.backends) == dict(general.backends)
    assert dict(fast.frontends) == dict(general.frontends)


def test_the_selected_engine_is_named() -> None:
    assert fastbuild.engine_name() == fastbuild.IMPLEMENTATION
    if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
        assert fastbuild.IMPLEMENTATION == "python"
    elif os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
        assert fastbuild.IMPLEMENTATION == "cython"


# --- same: how the memo tells an entry parsed as before ---------------------------------------

PARSED = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-2, 2),
        st.floats(allow_nan=True, allow_infinity=True, width=16),
        st.sampled_from(["", "1", "a", "true", "10.0.0.1"]),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(["a", "b", "1"]), st.integers(0, 1)), kids,
                        max_size=3),
    ),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(PARSED, PARSED)
def test_same_is_equal_reprs(a: object, b: object) -> None:
    # repr tells every type apart (1, 1.0, True, "1"), -0.0 from 0.0, and keeps mapping order
    expected = repr(a) == repr(b)
    for eng in BOTH:
        assert eng.same(a, b) is expected, (eng.engine_name(), a, b)
        assert eng.same(a, a)


def test_same_tells_apart_what_python_calls_equal() -> None:
    for eng in BOTH:
        assert not eng.same({"w": 1}, {"w": True})
        assert not eng.same({"w": 1}, {"w": 1.0})
        assert not eng.same([0.0], [-0.0])
        assert not eng.same({"a": 1, "b": 2}, {"b": 2, "a": 1})  # members keep their order
        assert eng.same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
        assert eng.same(float("nan"), float("nan"))


def test_the_section_kinds_are_the_engines_own() -> None:
    assert (_fastbuild_py.HEALTHCHECKS, _fastbuild_py.BACKENDS, _fastbuild_py.FRONTENDS) == (
        fastbuild.HEALTHCHECKS,
        fastbuild.BACKENDS,
        fastbuild.FRONTENDS,
    )
    for eng in BOTH:  # the compiled engine's are C constants: seen through what it builds
        value = {"address": "10.0.0.1"}
        assert eng.section(fastbuild.BACKENDS, {"a": value}, {}, None, None, None)[0]["a"]
        assert eng.section(fastbuild.HEALTHCHECKS, {"a": value}, {}, None, None, None)[2] == ["a"]
