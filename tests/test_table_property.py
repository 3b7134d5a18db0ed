"""Random inputs: the compiled table engine and its pure-Python twin agree on every result.

Both modules are called directly (`maglev._table` and `maglev._table_py`), whatever
`maglev.table` selected; without a compiled engine the test skips, unless
MAGLEV_REQUIRE_EXTENSIONS=1 makes that a failure.
"""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from maglev import _table_py
from maglev.table import churn, compare_owners, maglev_table, owner_table
from tests.test_table import load_engine

_address = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: bytes(12) + n.to_bytes(4, "big")),
    st.binary(min_size=16, max_size=16),
)
# Mostly VPP's range; now and then more weight than buckets (only the first m entries count).
_weight = st.one_of(st.integers(0, 100), st.integers(0, 255), st.integers(0, 5000))
_size = st.sampled_from([1, 2, 4, 16, 64, 256, 1024, 4096])
_weights = st.dictionaries(_address, _weight, max_size=40)


@settings(max_examples=150, deadline=None)
@given(_weights, _size)
def test_twins_agree_on_tables(weights: dict[bytes, int], m: int) -> None:
    compiled = load_engine("cython")
    keys = sorted(weights)
    ws = [weights[k] for k in keys]
    a = owner_table(keys, ws, m, _table_py)
    b = owner_table(keys, ws, m, compiled)
    assert a.typecode == b.typecode == "i"
    assert a == b
    aw = list(weights.items())
    assert maglev_table(aw, m, _table_py) == maglev_table(aw, m, compiled)


@settings(max_examples=100, deadline=None)
@given(_weights, _weights, _size)
def test_twins_agree_on_churn(old: dict[bytes, int], new: dict[bytes, int], m: int) -> None:
    compiled = load_engine("cython")
    # Overlapping pools: half of the old addresses reappear in the new table.
    for k in list(old)[::2]:
        new.setdefault(k, old[k] // 2)
    a = churn(old.items(), new.items(), m, _table_py)
    b = churn(old.items(), new.items(), m, compiled)
    assert a == b
    assert list(a.gained) == list(b.gained) and list(a.lost) == list(b.lost)  # same order


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 20).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(-1, n - 1), st.integers(-1, n - 1)), max_size=300),
        )
    )
)
def test_twins_agree_on_owner_comparisons(case: tuple[int, list[tuple[int, int]]]) -> None:
    compiled = load_engine("cython")
    n, pairs = case
    old = array("i", [x for x, _ in pairs])
    new = array("i", [y for _, y in pairs])
    a = compare_owners(old, new, n, _table_py)
    b = compare_owners(old, new, n, compiled)
    assert a == b
    assert a[1].typecode == b[1].typecode == "q"
    values = [f"v{i}" for i in range(n)]
    assert _table_py.resolve(old, values) == compiled.resolve(old, values)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_twins_agree_on_the_hash(key: int) -> None:
    compiled = load_engine("cython")
    assert _table_py.xxhash_u64(key) == compiled.xxhash_u64(key)
