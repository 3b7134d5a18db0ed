"""The weighted Maglev table: full fill against the closed-form bucket counts, and known splits."""

from __future__ import annotations

import collections
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.table import bucket_counts, churn, ip46, maglev_table, xxhash_u64


def _aw(pairs: list[tuple[str, int]]) -> list[tuple[bytes, int]]:
    return [(ip46(a), w) for a, w in pairs]


def _fill_counts(aw: list[tuple[bytes, int]], m: int) -> dict[bytes, int]:
    return dict(collections.Counter(a for a in maglev_table(aw, m) if a is not None))


def test_known_splits() -> None:
    cases = [
        ([("10.0.0.1", 100)], 1024, [1024]),
        ([("10.0.0.1", 100), ("10.0.0.2", 1)], 1024, [1013, 11]),
        ([("10.0.0.1", 100), ("10.0.0.2", 1), ("10.0.0.3", 50)], 1024, [667, 7, 350]),
        ([("10.0.0.1", 7), ("10.0.0.2", 100)], 1024, [70, 954]),
    ]
    for pairs, m, want in cases:
        aw = _aw(pairs)
        counts = bucket_counts(aw, m)
        assert [counts[a] for a, _ in aw] == want
        assert _fill_counts(aw, m) == counts


def test_more_weight_than_buckets_is_not_proportional() -> None:
    hi = [(f"10.0.1.{i}", 100) for i in range(16)]
    lo = [(f"10.0.2.{i}", 10) for i in range(16)]
    counts = bucket_counts(_aw(hi + lo), 1024)
    assert {counts[ip46(a)] for a, _ in hi} == {54}
    assert {counts[ip46(a)] for a, _ in lo} == {10}
    same = bucket_counts(_aw([(f"10.0.1.{i}", 100) for i in range(32)]), 1024)
    assert set(same.values()) == {32}


def test_no_live_as_drops_everything() -> None:
    assert maglev_table([], 8) == [None] * 8
    assert maglev_table(_aw([("10.0.0.1", 0)]), 8) == [None] * 8
    assert bucket_counts(_aw([("10.0.0.1", 0)]), 8) == {}


def test_order_of_input_does_not_matter() -> None:
    aw = _aw([(f"2001:db8::{i:x}", (i * 37) % 101) for i in range(20)])
    shuffled = aw[:]
    random.Random(7).shuffle(shuffled)
    assert maglev_table(aw, 256) == maglev_table(shuffled, 256)


def test_xxhash_is_64_bit() -> None:
    values = {xxhash_u64(k) for k in range(1000)}
    assert len(values) == 1000
    assert all(0 <= v < 2**64 for v in values)


_address = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: bytes(12) + n.to_bytes(4, "big")),
    st.binary(min_size=16, max_size=16),
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(_address, st.integers(0, 255), max_size=24),
    st.sampled_from([1, 2, 8, 64, 256, 1024]),
)
def test_full_fill_matches_closed_form(weights: dict[bytes, int], m: int) -> None:
    aw = list(weights.items())
    table = maglev_table(aw, m)
    assert len(table) == m
    counts = bucket_counts(aw, m)
    assert _fill_counts(aw, m) == {a: n for a, n in counts.items() if n}
    if counts:
        assert sum(counts.values()) == m
        assert None not in table


def test_accepts_ipaddress_objects_and_iterators() -> None:
    import ipaddress

    addrs = [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")]
    table = maglev_table(iter(zip(addrs, [100, 1], strict=True)), 1024)
    assert set(table) == set(addrs)
    counts = bucket_counts(zip(addrs, [100, 1], strict=True), 1024)
    assert counts == {addrs[0]: 1013, addrs[1]: 11}
    raw = maglev_table([(ip46(a), w) for a, w in zip(addrs, [100, 1], strict=True)], 1024)
    assert [None if a is None else ipaddress.ip_address(a[12:]) for a in raw] == table


def test_churn_counts_buckets_that_change_owner() -> None:
    a, b, c = (bytes(15) + bytes([i]) for i in (1, 2, 3))
    old = [(a, 100), (b, 100)]
    new = [(a, 100), (b, 100), (c, 100)]
    t0, t1 = maglev_table(old, 256), maglev_table(new, 256)
    got = churn(old, new, 256)
    assert got.size == 256 and got.moved == sum(x != y for x, y in zip(t0, t1, strict=True))
    # The newcomer gains all its buckets; the others swap some too (Maglev is not minimal).
    assert got.gained[c] == t1.count(c)
    assert sum(got.gained.values()) == sum(got.lost.values()) == got.moved
    assert got.share == got.moved / 256
    assert churn(new, new, 256).moved == 0
    drop = churn(old, [], 64)  # to drop counts as moved
    assert drop.moved == 64 and drop.gained == {}
