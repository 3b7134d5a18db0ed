"""The reload interlocks' decision (`maglev.reconcile.interlock`), on plain values: each rule,
its limit and either side of it, an empty frontends map, a rename, counters not read yet."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config import diff_configs, load_text
from maglev.errors import ConfigInvalid
from maglev.model import BackendState, Config, ReloadGuardSettings
from maglev.reconcile import interlock as il
from maglev.reconcile.plan import CandidateStates, candidate_states
from maglev.vpp.lb import VipCounters, VipKey

UP, DOWN = BackendState.UP, BackendState.DOWN

HEAD = """
vpp:
  api-socket: /nonexistent
  lb: {{ip4-src-address: 198.51.100.1}}
healthchecks:
  hc: {{type: tcp, port: 80}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: 10.0.0.2, healthcheck: hc}}
  a3: {{address: 10.0.0.3, healthcheck: hc}}
  a4: {{address: 10.0.0.4, healthcheck: hc}}
{guard}
frontends: {frontends}
"""


def fe(addr: str, members: str = "a1: {}, a2: {}, a3: {}, a4: {}", port: int = 80) -> str:
    return (
        f"{{address: {addr}, protocol: tcp, port: {port}, encap: gre4, "
        f"pools: [{{name: p, backends: {{{members}}}}}]}}"
    )


def cfg(frontends: dict[str, str] | None = None, guard: str = "") -> Config:
    fes = frontends if frontends is not None else THREE
    body = "{" + ", ".join(f"{n}: {v}" for n, v in fes.items()) + "}"
    return load_text(HEAD.format(guard=f"reload-guard: {guard}" if guard else "", frontends=body))


THREE = {"www": fe("192.0.2.1"), "api": fe("192.0.2.2"), "dns": fe("192.0.2.3")}
ALL_UP = dict.fromkeys(("a1", "a2", "a3", "a4"), UP)


def key(addr: str, port: int = 80) -> VipKey:
    return (ipaddress.ip_network(f"{addr}/32"), 6, port)


def judge(
    current: Config,
    candidate: Config,
    states: dict[str, BackendState] | None = None,
    busy: frozenset[VipKey] | None = frozenset(),
) -> il.Verdict:
    s = states or ALL_UP
    before = il.capacities(current, s, {}, None)
    after = il.capacities(candidate, s, {}, None)
    return il.judge(current, candidate, before, after, busy)


# --- rule 1: deletions ---------------------------------------------------------------------


def test_an_empty_frontends_map_is_held_naming_every_frontend() -> None:
    v = judge(cfg(), cfg({}))
    assert v.held and v.deleted == ("api", "dns", "www")
    assert v.reasons == ("deletes 3 frontend(s), more than max-deleted-frontends 1: api, dns, www",)


@pytest.mark.parametrize(
    ("limit", "deleted", "held"),
    [(1, 1, False), (1, 2, True), (2, 2, False), (2, 3, True), (0, 1, True), (0, 0, False)],
)
def test_deletions_at_and_around_the_limit(limit: int, deleted: int, held: bool) -> None:
    guard = f"{{max-deleted-frontends: {limit}}}"
    names = list(THREE)
    kept = {n: THREE[n] for n in names[deleted:]}
    v = judge(cfg(guard=guard), cfg(kept, guard=guard))
    assert len(v.deleted) == deleted
    assert v.held is held, v.reasons


def test_a_renamed_frontend_is_one_delete_and_one_add() -> None:
    renamed = {"web": THREE["www"], "api": THREE["api"], "dns": THREE["dns"]}
    v = judge(cfg(), cfg(renamed))
    assert v.deleted == ("www",) and not v.held
    # Same address, protocol and port: VPP keeps the VIP, so nothing in VPP is deleted.
    assert il.deleted_vips(cfg(), cfg(renamed)) == {}
    # Two renames are two deletes: over the default limit of 1.
    two = {"web": THREE["www"], "api2": THREE["api"], "dns": THREE["dns"]}
    assert judge(cfg(), cfg(two)).held


def test_the_running_configs_limits_judge_not_the_candidates() -> None:
    loose = cfg({}, guard="{max-deleted-frontends: 100}")
    assert judge(cfg(), loose).held  # the empty file cannot lift the limit judging it
    assert not judge(cfg(guard="{max-deleted-frontends: 3}"), cfg({})).held


# --- rule 2: capacity ----------------------------------------------------------------------


def test_capacity_is_the_sum_of_the_serving_weights() -> None:
    c = cfg({"www": fe("192.0.2.1", "a1: {weight: 100}, a2: {weight: 50}, a3: {weight: 0}")})
    assert il.capacities(c, ALL_UP, {}, None) == {"www": 150}
    assert il.capacities(c, {**ALL_UP, "a1": DOWN}, {}, None) == {"www": 50}
    assert il.capacities(c, ALL_UP, {("www", "a2"): 10}, None) == {"www": 110}


@pytest.mark.parametrize(
    ("members", "held"),
    [
        ("a1: {}, a2: {}", False),  # 400 -> 200: exactly 50% passes
        ("a1: {}, a2: {}, a3: {weight: 1}", False),  # 400 -> 201
        ("a1: {}, a2: {weight: 99}", True),  # 400 -> 199: just past 50%
        ("a1: {}", True),  # 400 -> 100
        ("a1: {weight: 0}", True),  # 400 -> 0
    ],
)
def test_capacity_loss_at_and_around_the_limit(members: str, held: bool) -> None:
    cand = cfg({**THREE, "www": fe("192.0.2.1", members)})
    v = judge(cfg(), cand)
    assert v.held is held, v.reasons
    if held:
        (loss,) = v.losses
        assert loss.frontend == "www" and loss.before == 400
        assert v.reasons[0].startswith("takes more than max-capacity-loss 50% of 1 frontend")
        assert f"frontend www: capacity 400 -> {loss.after}" in v.reasons[0]


def test_capacity_limit_is_configurable_and_100_percent_turns_it_off() -> None:
    cand = cfg({**THREE, "www": fe("192.0.2.1", "a1: {}, a2: {}, a3: {}")})  # -25%
    assert judge(cfg(guard="{max-capacity-loss: 25%}"), cand).held is False
    assert judge(cfg(guard="{max-capacity-loss: 24.9%}"), cand).held is True
    assert judge(cfg(guard="{max-capacity-loss: 0}"), cand).held is True
    empty = cfg({**THREE, "www": fe("192.0.2.1", "a1: {weight: 0}")})
    assert judge(cfg(guard="{max-capacity-loss: 100%}"), empty).held is False


def test_capacity_is_judged_with_the_current_health() -> None:
    # a2..a4 are down: www serves 100 now, and a candidate without them loses nothing.
    states = {**ALL_UP, "a2": DOWN, "a3": DOWN, "a4": DOWN}
    cand = cfg({**THREE, "www": fe("192.0.2.1", "a1: {}")})
    assert not judge(cfg(), cand, states).held
    assert judge(cfg(), cand).held  # with every backend up it would lose 75%


def test_a_frontend_with_no_capacity_before_cannot_lose_any() -> None:
    down = dict.fromkeys(ALL_UP, DOWN)
    cand = cfg({**THREE, "www": fe("192.0.2.1", "a1: {weight: 0}")})
    assert il.capacities(cfg(), down, {}, None)["www"] == 0
    assert not judge(cfg(), cand, down).held


def test_new_frontends_are_not_judged_for_capacity() -> None:
    cand = cfg({**THREE, "new": fe("192.0.2.9", "a1: {weight: 0}")})
    assert not judge(cfg(), cand).held


# --- rule 3: traffic -----------------------------------------------------------------------


def reads(*moves: tuple[str, int]) -> tuple[tuple[VipCounters, ...], tuple[VipCounters, ...]]:
    """Two counter reads; each named VIP's first-session counter moves by the given amount."""
    prev = tuple(VipCounters(key(a), "ip4-gre4", (("first session packet", 10),)) for a, _ in moves)
    latest = tuple(
        VipCounters(key(a), "ip4-gre4", (("first session packet", 10 + d),)) for a, d in moves
    )
    return prev, latest


def test_busy_vips_are_those_whose_counters_moved() -> None:
    prev, latest = reads(("192.0.2.1", 5), ("192.0.2.2", 0))
    assert il.busy_vips(prev, latest) == {key("192.0.2.1")}
    assert il.busy_vips(None, latest) is None  # read once: cannot tell
    assert il.busy_vips(None, None) is None
    # Counters that went down (VPP restarted) moved; a VIP new since the last read counts from 0.
    assert il.busy_vips(latest, prev) == {key("192.0.2.1")}
    assert il.busy_vips((), latest) == {key("192.0.2.1"), key("192.0.2.2")}
    assert il.busy_vips((), reads(("192.0.2.3", -10))[1]) == frozenset()


def test_deleting_a_frontend_carrying_traffic_is_held() -> None:
    cand = cfg({n: v for n, v in THREE.items() if n != "dns"})  # one delete: rule 1 passes
    prev, latest = reads(("192.0.2.3", 7))
    v = judge(cfg(), cand, busy=il.busy_vips(prev, latest))
    assert v.held and v.busy == ("dns",)
    assert v.reasons == ("deletes frontend(s) carrying traffic: dns",)
    idle = il.busy_vips(*reads(("192.0.2.3", 0), ("192.0.2.1", 3)))
    assert not judge(cfg(), cand, busy=idle).held  # www has traffic, but stays
    assert not judge(cfg(guard="{protect-busy-frontends: false}"), cand, busy=v.busy and {
        key("192.0.2.3")
    }).held  # fmt: skip


def test_moving_a_frontend_to_another_address_deletes_its_old_vip() -> None:
    cand = cfg({**THREE, "dns": fe("192.0.2.33")})
    assert il.deleted_vips(cfg(), cand) == {"dns": key("192.0.2.3")}
    v = judge(cfg(), cand, busy=frozenset({key("192.0.2.3")}))
    assert v.deleted == () and v.busy == ("dns",) and v.held


def test_without_two_counter_reads_the_traffic_rule_holds_nothing_and_says_so() -> None:
    cand = cfg({n: v for n, v in THREE.items() if n != "dns"})
    v = judge(cfg(), cand, busy=None)
    assert not v.held
    assert v.notes == (
        "protect-busy-frontends could not judge the deleted frontend(s) dns: VPP's counters "
        "have not been read twice yet",
    )
    assert judge(cfg(), cfg(), busy=None).notes == ()  # nothing deleted: nothing to say
    assert judge(cfg(guard="{protect-busy-frontends: false}"), cand, busy=None).notes == ()


def test_every_broken_rule_is_a_reason() -> None:
    cand = cfg({"www": fe("192.0.2.1", "a1: {}")})
    v = judge(cfg(), cand, busy=frozenset({key("192.0.2.2")}))
    assert len(v.reasons) == 3, v.reasons
    assert [r.split(" ")[0] for r in v.reasons] == ["deletes", "takes", "deletes"]


def test_defaults() -> None:
    assert cfg().reload_guard == ReloadGuardSettings(1, 0.5, True)


def test_only_the_frontends_a_reload_touches_are_judged() -> None:
    current = cfg({**THREE, "two": fe("192.0.2.4", "a3: {}, a4: {}")})
    changed = {
        **THREE,
        "www": fe("192.0.2.1", "a1: {weight: 10}, a2: {}, a3: {}, a4: {}"),  # reweighted
        "two": fe("192.0.2.4", "a3: {}, a4: {}"),
        "new": fe("192.0.2.9"),  # added: nothing to lose
    }
    candidate = cfg(changed)
    starts = candidate_states(current, candidate, ALL_UP)
    d = diff_configs(current, candidate)
    assert il.touched_frontends(d, candidate, ALL_UP, starts) == {"www"}
    # A backend that would start from another state touches every frontend that uses it.
    starts = {**starts, "a4": BackendState.UNKNOWN}
    assert il.touched_frontends(d, candidate, ALL_UP, starts) == set(changed) - {"new"}
    # The running config's index gives the same frontends without looking at every one.
    fe_of: dict[str, list[str]] = {}
    for name, f in current.frontends.items():
        for b in f.backend_names():
            fe_of.setdefault(b, []).append(name)
    for begin in (candidate_states(current, candidate, ALL_UP), starts):
        assert il.touched_frontends(d, candidate, ALL_UP, begin, fe_of) == il.touched_frontends(
            d, candidate, ALL_UP, begin
        )
    # Judging only those gives the same capacities as judging everything.
    full = il.capacities(candidate, starts, {}, None)
    part = il.capacities(candidate, starts, {}, None, (), {"www", "api"})
    assert part == {n: full[n] for n in ("www", "api")}


_MEMBERS = st.lists(st.sampled_from(["a1", "a2", "a3", "a4"]), min_size=1, max_size=4, unique=True)
_FRONTENDS = st.dictionaries(
    st.sampled_from(["www", "api", "dns", "ntp"]),
    st.tuples(st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]), _MEMBERS),
    min_size=1,
    max_size=4,
    dict_class=dict,
).filter(lambda d: len({a for a, _ in d.values()}) == len(d))


@settings(max_examples=150, deadline=None)
@given(
    _FRONTENDS,
    _FRONTENDS,
    st.dictionaries(
        st.sampled_from(list(ALL_UP)),
        st.sampled_from([BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN]),
    ),
)
def test_the_running_configs_index_touches_the_same_frontends(
    before: dict[str, tuple[str, list[str]]],
    after: dict[str, tuple[str, list[str]]],
    moved: dict[str, BackendState],
) -> None:
    def made(fes: dict[str, tuple[str, list[str]]]) -> Config:
        return cfg({n: fe(a, ", ".join(f"{m}: {{}}" for m in ms)) for n, (a, ms) in fes.items()})

    current, candidate = made(before), made(after)
    starts = {**candidate_states(current, candidate, ALL_UP), **moved}
    fe_of: dict[str, list[str]] = {}
    for name, f in current.frontends.items():
        for b in f.backend_names():
            fe_of.setdefault(b, []).append(name)
    d = diff_configs(current, candidate)
    assert il.touched_frontends(d, candidate, ALL_UP, starts, fe_of) == il.touched_frontends(
        d, candidate, ALL_UP, starts
    )


_BACKEND = st.tuples(
    st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
    st.sampled_from(["hc", "hc2", None]),
    st.booleans(),
)
_BACKENDS = st.dictionaries(st.sampled_from(["a1", "a2", "a3", "a4"]), _BACKEND, min_size=1)


def backends_cfg(backends: dict[str, tuple[str, str | None, bool]], members: list[str]) -> Config:
    rows = "\n".join(
        f"  {n}: {{address: {a}{f', healthcheck: {hc}' if hc else ''}, enabled: {str(on).lower()}}}"
        for n, (a, hc, on) in backends.items()
    )
    listed = ", ".join(f"{m}: {{}}" for m in members if m in backends) or next(iter(backends))
    text = (
        "vpp:\n  api-socket: /nonexistent\n  lb: {ip4-src-address: 198.51.100.1}\n"
        "healthchecks:\n  hc: {type: tcp, port: 80}\n  hc2: {type: tcp, port: 81}\n"
        f"backends:\n{rows}\nfrontends:\n"
        f"  www: {fe('192.0.2.1', listed)}\n"
    )
    return load_text(text)


@settings(max_examples=150, deadline=None)
@given(
    _BACKENDS,
    _BACKENDS,
    st.dictionaries(
        st.sampled_from(["a1", "a2", "a3", "a4"]),
        st.sampled_from(list(BackendState)),
    ),
)
def test_candidate_states_read_through_touch_what_the_dict_touches(
    before: dict[str, tuple[str, str | None, bool]],
    after: dict[str, tuple[str, str | None, bool]],
    drawn: dict[str, BackendState],
) -> None:
    """`CandidateStates` (the reconciler's, read per backend) is `candidate_states`, and the
    shortcut it allows `touched_frontends` (only changed, added and disabled backends asked)
    touches the frontends the backend-by-backend comparison touches, for states that name
    every backend of the running config (as the reconciler's health machines do)."""
    states = {**dict.fromkeys(before, BackendState.UNKNOWN), **drawn}
    members = ["a1", "a2", "a3", "a4"]
    if len({a for a, _, _ in before.values()}) < len(before):
        members = members[:1]  # two backends of one frontend may not share an address
    try:
        current, candidate = backends_cfg(before, members), backends_cfg(after, members)
    except ConfigInvalid:  # a drawn pair the validator refuses: nothing to compare
        return
    lazy = CandidateStates(current, candidate, states)
    eager = candidate_states(current, candidate, states)
    assert dict(lazy) == eager
    d = diff_configs(current, candidate)
    assert il.touched_frontends(d, candidate, states, lazy) == il.touched_frontends(
        d, candidate, states, eager
    )
