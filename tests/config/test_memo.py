"""A reload validates only what changed (`loader.Memo`): entries written exactly as in the last
good build, with the very healthcheck and backends they were built with, are that build's
objects; anything else is validated anew, so no value ever means something else."""

from __future__ import annotations

import pytest

from maglev.config import diff_configs, load_text
from maglev.config.loader import Memo
from maglev.errors import ConfigInvalid

BASE = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1}}}}
healthchecks:
  hc: {{type: tcp, port: {port}, interval: 1s, rise: 2, fall: 2}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: {a2}}}
  b1: {{address: 10.0.0.3}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {{name: primary, backends: {{a1: {{weight: {weight}}}, a2: {{}}}}}}
  other:
    address: 192.0.2.81
    protocol: tcp
    port: 81
    encap: gre4
    pools:
      - {{name: only, backends: {{b1: {{weight: 10}}}}}}
"""


def text(port: str = "80", a2: str = "10.0.0.2", weight: str = "100") -> str:
    return BASE.format(port=port, a2=a2, weight=weight)


@pytest.mark.parametrize(
    "change",
    [
        {"weight": "60"},
        {"a2": "10.0.0.9"},
        {"port": "8080"},
        {"port": "8080", "weight": "1"},
        {},
    ],
)
def test_the_same_config_as_without_a_memo(change: dict[str, str]) -> None:
    memo = Memo()
    first = load_text(text(), memo=memo)
    again = load_text(text(**change), memo=memo)
    plain = load_text(text(**change))
    assert again == plain
    assert again.frontends["other"] is first.frontends["other"]  # unchanged: not rebuilt
    assert again.backends["b1"] is first.backends["b1"]


def test_dependents_are_rebuilt_when_what_they_use_changes() -> None:
    memo = Memo()
    first = load_text(text(), memo=memo)
    # The healthcheck changes: a1 (checked by it) is rebuilt, though written the same; www
    # (which uses a1) too; a2 and b1 and `other` are kept.
    second = load_text(text(port="8080"), memo=memo)
    assert second.healthchecks["hc"].port == 8080
    assert second.backends["a1"] is not first.backends["a1"]
    assert second.frontends["www"] is not first.frontends["www"]
    assert second.backends["a2"] is first.backends["a2"]
    assert second.frontends["other"] is first.frontends["other"]
    # A backend's address: its frontend is rebuilt, and sees the new address.
    third = load_text(text(port="8080", a2="10.0.0.9"), memo=memo)
    assert third.frontends["www"] is not second.frontends["www"]
    assert str(third.backends["a2"].address) == "10.0.0.9"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("100", "true"),  # equal in Python (True == 1), not in YAML's meaning: refused
        ("1", "1.0"),  # equal in Python; whatever the validator makes of 1.0, the same here
        ("100", '"100"'),
        ("0", "false"),
        ("0", "null"),
    ],
)
def test_a_value_of_another_type_is_validated_again(before: str, after: str) -> None:
    memo = Memo()
    load_text(text(weight=before), memo=memo)
    try:
        plain = load_text(text(weight=after))
    except ConfigInvalid as e:
        with pytest.raises(ConfigInvalid) as got:
            load_text(text(weight=after), memo=memo)
        assert [str(p) for p in got.value.problems] == [str(p) for p in e.problems]
        assert any("weight" in str(p) for p in e.problems)
    else:
        again = load_text(text(weight=after), memo=memo)
        assert again == plain
        w = again.frontends["www"].pools[0].members[0].weight
        assert type(w) is int and w == plain.frontends["www"].pools[0].members[0].weight


def test_a_rejected_build_leaves_the_memo_as_it_was() -> None:
    memo = Memo()
    first = load_text(text(), memo=memo)
    entries = dict(memo.entries)
    with pytest.raises(ConfigInvalid):
        load_text(text(a2="not-an-address"), memo=memo)
    assert memo.entries == entries
    again = load_text(text(), memo=memo)
    assert again.frontends["www"] is first.frontends["www"]


def test_a_new_or_removed_backend_rebuilds_only_the_frontends_naming_it() -> None:
    memo = Memo()
    first = load_text(text(), memo=memo)
    # b1 gone: `other` names it, so it is built again (and refused); www is untouched
    gone = text().replace("  b1: {address: 10.0.0.3}\n", "")
    with pytest.raises(ConfigInvalid) as e:
        load_text(gone, memo=memo)
    assert any("frontends.other" in str(p) and "b1" in str(p) for p in e.value.problems)
    # a backend added that nobody names: every object is the memo's
    added = text().replace(
        "  b1: {address: 10.0.0.3}\n", "  b1: {address: 10.0.0.3}\n  c1: {address: 10.0.0.4}\n"
    )
    again = load_text(added, memo=memo)
    assert again.frontends["www"] is first.frontends["www"]
    assert again.frontends["other"] is first.frontends["other"]
    assert again.backends["a1"] is first.backends["a1"]
    # the healthcheck removed: a1 (checked by it) is refused, not kept from the memo
    unchecked = added.replace("  hc: {type: tcp, port: 80, interval: 1s, rise: 2, fall: 2}\n", "")
    with pytest.raises(ConfigInvalid) as e:
        load_text(unchecked, memo=memo)
    assert any("backends.a1.healthcheck" in str(p) for p in e.value.problems)


def test_the_delta_of_a_build_gives_the_diff_a_full_comparison_gives() -> None:
    """`memo.delta` names what a build took anew against the build before; `diff_configs` with
    it compares only those names and finds what comparing everything finds."""
    variants = [
        text(),
        text(weight="60"),
        text(a2="10.0.0.9"),
        text(port="8080"),
        text().replace(
            "  b1: {address: 10.0.0.3}\n", "  b1: {address: 10.0.0.3}\n  c1: {address: 10.0.0.4}\n"
        ),
        text().replace(
            "  hc: {type: tcp, port: 80, interval: 1s, rise: 2, fall: 2}\n",
            "  hc: {type: tcp, port: 80, interval: 1s, rise: 2, fall: 2}\n  h2: {type: tcp, port: 81}\n",
        ),
        text(),
    ]
    memo = Memo()
    before = load_text(variants[0], memo=memo)
    assert memo.delta is None  # nothing before the first build
    for v in variants[1:] + variants[::-1]:
        after = load_text(v, memo=memo)
        delta = memo.delta
        assert delta is not None and delta.base is before and delta.config is after
        assert diff_configs(before, after, delta) == diff_configs(before, after)
        before = after
    # a delta against another build than the one compared with is not used
    other = load_text(text(weight="7"))
    assert memo.delta is not None
    assert diff_configs(other, before, memo.delta) == diff_configs(other, before)
    assert not diff_configs(other, before, memo.delta).empty


def test_a_rejected_build_leaves_the_delta_as_it_was() -> None:
    memo = Memo()
    load_text(text(), memo=memo)
    second = load_text(text(weight="60"), memo=memo)
    delta = memo.delta
    with pytest.raises(ConfigInvalid):
        load_text(text(a2="not-an-address"), memo=memo)
    assert memo.delta is delta and memo.last is second
