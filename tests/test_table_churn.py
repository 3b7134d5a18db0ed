"""Churn between two Maglev tables: its counts against a direct comparison of the two full
tables, and its invariants; on both twins explicitly and through `maglev.table`'s selection."""

from __future__ import annotations

import ipaddress
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.table import Churn, churn, ip46
from tests.test_table import NAMES, engine, load_engine, reference_table

__all__ = ["engine"]  # the fixture, imported for the tests below

Pairs = list[tuple[bytes, int]]


def direct(old: Pairs, new: Pairs, m: int) -> tuple[int, dict[bytes, int], dict[bytes, int]]:
    """moved, gained, lost from the two full tables, bucket by bucket; the tables are the plain
    reference fill's, so no engine checks itself."""
    before, after = reference_table(old, m), reference_table(new, m)
    moved = 0
    gained: dict[bytes, int] = {}
    lost: dict[bytes, int] = {}
    for x, y in zip(before, after, strict=True):
        if x != y:
            moved += 1
            if y is not None:
                gained[y] = gained.get(y, 0) + 1
            if x is not None:
                lost[x] = lost.get(x, 0) + 1
    return moved, gained, lost


def test_no_change_moves_nothing(engine: ModuleType | None) -> None:
    aw = [(ip46(f"10.0.0.{i}"), i * 7 % 100 + 1) for i in range(1, 33)]
    c = churn(aw, list(reversed(aw)), 1024, engine)
    assert c == Churn(1024, 0, {}, {})
    assert c.share == 0.0


def test_adding_one_as(engine: ModuleType | None) -> None:
    old = [(ip46(f"10.0.0.{i}"), 100) for i in range(1, 9)]
    new = [*old, (ip46("10.0.0.9"), 100)]
    c = churn(old, new, 1024, engine)
    assert c.size == 1024
    # The newcomer takes its ninth and loses nothing; Maglev is not minimally disruptive, so a
    # few buckets also change hands among the others, and more than its ninth moves.
    nine = ip46("10.0.0.9")
    assert c.gained[nine] in (113, 114) and nine not in c.lost
    assert c.moved >= c.gained[nine]
    assert c.moved == sum(c.gained.values()) == sum(c.lost.values())
    assert (c.moved, c.gained, c.lost) == direct(old, new, 1024)
    assert c.share == c.moved / 1024
    assert 0 < c.moved < 1024


def test_from_and_to_an_empty_table(engine: ModuleType | None) -> None:
    aw = [(ip46("10.0.0.1"), 3), (ip46("10.0.0.2"), 1)]
    up = churn([], aw, 64, engine)
    assert up.moved == 64 and sum(up.gained.values()) == 64 and up.lost == {}
    down = churn(aw, [(a, 0) for a, _ in aw], 64, engine)
    assert down.moved == 64 and down.gained == {} and down.lost == up.gained
    assert churn([], [], 64, engine) == Churn(64, 0, {}, {})
    assert churn(aw, [], 0, engine) == Churn(0, 0, {}, {})
    assert Churn(0, 0, {}, {}).share == 0.0


def test_addresses_come_back_as_given(engine: ModuleType | None) -> None:
    a, b = ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")
    c = churn([(a, 10), (b, 10)], [(a, 10), (b, 0)], 256, engine)
    assert c.moved == sum(c.lost.values()) == 128
    assert c.lost == {b: 128} and c.gained == {a: 128}
    # The same address given as bytes before and as an object after: one key, the new form.
    d = churn([(ip46(a), 10), (ip46(b), 10)], [(a, 10), (b, 1)], 256, engine)
    assert set(d.gained) <= {a, b} and set(d.lost) <= {a, b}


def test_size_must_be_a_power_of_two(engine: ModuleType | None) -> None:
    with pytest.raises(ValueError, match="power of two"):
        churn([(ip46("10.0.0.1"), 1)], [], 1000, engine)


_addresses = st.lists(
    st.integers(1, 2**32 - 1).map(lambda n: bytes(12) + n.to_bytes(4, "big")),
    min_size=1,
    max_size=16,
    unique=True,
)


@st.composite
def _change(draw: st.DrawFn) -> tuple[Pairs, Pairs, int]:
    """Two weightings of one address pool: some ASes added, removed or reweighted."""
    pool = draw(_addresses)
    weight = st.integers(0, 100)
    old = [(a, draw(weight)) for a in pool if draw(st.booleans())]
    new = [(a, draw(weight)) for a in pool if draw(st.booleans())]
    return old, new, draw(st.sampled_from([1, 4, 64, 256, 1024]))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(_change())
def test_churn_is_the_bucket_by_bucket_comparison(
    name: str, change: tuple[Pairs, Pairs, int]
) -> None:
    engine = load_engine(name)
    old, new, m = change
    c = churn(old, new, m, engine)
    assert (c.moved, c.gained, c.lost) == direct(old, new, m)
    assert c.size == m and 0 <= c.moved <= m
    assert all(v > 0 for v in (*c.gained.values(), *c.lost.values()))
    assert churn(old, old, m, engine).moved == 0
    back = churn(new, old, m, engine)
    assert (back.moved, back.gained, back.lost) == (c.moved, c.lost, c.gained)
    if any(w > 0 for _, w in old) and any(w > 0 for _, w in new):
        # Neither table has a dropping bucket: every move is one AS's loss and another's gain.
        assert c.moved == sum(c.gained.values()) == sum(c.lost.values())
