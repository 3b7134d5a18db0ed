"""`maglev.table.churn`: the bucket moves between two weighted Maglev tables, bucket by bucket."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.table import Churn, churn, ip46, maglev_table

A = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 7)]


def test_draining_one_of_two_equal_backends_moves_its_half() -> None:
    c = churn([(A[0], 100), (A[1], 100)], [(A[0], 100), (A[1], 0)], 1024)
    assert (c.size, c.moved, c.share) == (1024, 512, 0.5)
    assert c.gained == {A[0]: 512} and c.lost == {A[1]: 512}


def test_nothing_moves_when_nothing_changes_and_an_empty_table_has_no_share() -> None:
    same = [(A[0], 3), (A[1], 5)]
    assert churn(same, list(reversed(same)), 64) == Churn(64, 0, {}, {})
    assert churn([], [], 0).share == 0.0
    created = churn([], same, 64)
    assert created.moved == 64 and not created.lost and sum(created.gained.values()) == 64


def test_addresses_come_back_as_given() -> None:
    c = churn([(ip46(A[0]), 1)], [(ip46(A[1]), 1)], 8)
    assert c.gained == {ip46(A[1]): 8} and c.lost == {ip46(A[0]): 8}


weights = st.dictionaries(st.sampled_from(A), st.integers(0, 100), max_size=len(A))


@settings(max_examples=60, deadline=None)
@given(old=weights, new=weights, m=st.sampled_from([1, 8, 64, 256]))
def test_churn_is_the_bucket_by_bucket_difference(
    old: dict[ipaddress.IPv4Address, int], new: dict[ipaddress.IPv4Address, int], m: int
) -> None:
    c = churn(old.items(), new.items(), m)
    before, after = maglev_table(old.items(), m), maglev_table(new.items(), m)
    changed = [i for i in range(m) if before[i] != after[i]]
    assert c.moved == len(changed) and c.share == len(changed) / m
    for a in A:
        assert c.gained.get(a, 0) == sum(1 for i in changed if after[i] == a)
        assert c.lost.get(a, 0) == sum(1 for i in changed if before[i] == a)
    assert all(n > 0 for n in (*c.gained.values(), *c.lost.values()))
