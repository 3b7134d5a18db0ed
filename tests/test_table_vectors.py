"""The full fill against a real VPP 26.10 (../shared/vpp-lb-vectors): after every recorded step,
each live AS owns exactly its recorded `num_buckets` of the table, on both twins.

The emulator's replay (tests/vppsim/test_vectors.py) checks the closed-form counts; this checks
the full table the planner's churn preview is computed from, and the churn between consecutive
steps. One owner table per step, over one key list per case (every address the case uses,
weight 0 where not live), so consecutive tables compare index by index.
"""

from __future__ import annotations

import collections
import json
import pathlib
from types import ModuleType

import pytest

from maglev.table import churn, compare_owners, ip46, maglev_table, owner_table
from tests.test_table import engine

__all__ = ["engine"]  # the fixture, imported for the tests below
pytestmark = pytest.mark.shared


def test_every_step_fills_the_recorded_buckets(
    shared_dir: pathlib.Path, engine: ModuleType | None
) -> None:
    with open(shared_dir / "vpp-lb-vectors" / "lb-vectors-seed1.json") as f:
        cases = json.load(f)["cases"]
    steps = 0
    for n, case in enumerate(cases):
        m = case["new_flows_table_length"]
        keys = sorted({ip46(r["as"]) for step in case["steps"] for r in step["dump"]})
        index = {k: i for i, k in enumerate(keys)}
        before = owner_table(keys, [0] * len(keys), m, engine)
        held = [0] * len(keys)  # buckets per key, kept up to date from the churn alone
        first: list[tuple[bytes, int]] = []
        live: list[tuple[bytes, int]] = []
        for i, step in enumerate(case["steps"]):
            live = [(ip46(r["as"]), r["weight"]) for r in step["dump"] if r["flags"] & 1]
            first = first or live
            want = {index[ip46(r["as"])]: r["num_buckets"] for r in step["dump"] if r["flags"] & 1}
            weights = [0] * len(keys)
            for a, w in live:
                weights[index[a]] = w
            owners = owner_table(keys, weights, m, engine)
            got = collections.Counter(owners)
            assert {k: got.get(k, 0) for k in want} == want, f"case {n} step {i}"
            moved, gained, lost = compare_owners(before, owners, len(keys), engine)
            held = [h + g - x for h, g, x in zip(held, gained, lost, strict=True)]
            assert {k: held[k] for k in want} == want, f"case {n} step {i}: churn"
            assert moved == sum(gained) or not any(w > 0 for w in weights)
            before = owners
            steps += 1
        # The public forms once per case: the whole case's change, first step to last.
        table = maglev_table(live, m, engine)
        assert [None if k < 0 else keys[k] for k in before] == table
        c = churn(first, live, m, engine)
        start = collections.Counter(a for a in maglev_table(first, m, engine) if a is not None)
        end = collections.Counter(a for a in table if a is not None)
        for a in {*start, *end}:
            assert start[a] + c.gained.get(a, 0) - c.lost.get(a, 0) == end[a]
    assert steps == 1258
