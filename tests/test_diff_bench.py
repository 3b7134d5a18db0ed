"""The diff benchmark keeps running (smoke sizes): both twins timed, inputs agreed on."""

from __future__ import annotations

import importlib.util

from benchmarks import diff as bench
from maglev.reconcile import actual as ra
from maglev.reconcile import decide as rd
from maglev.reconcile import layout as rl


def test_smoke_run_times_both_twins() -> None:
    res = bench.run(smoke=True)
    assert res["suite"] == "diff"
    assert res["figures"]["full comparison, python"]["n"] == 3
    if importlib.util.find_spec("maglev._diff") is not None:
        assert res["figures"]["full comparison, cython"]["median"] > 0
        assert res["ratios"]["cython/python full comparison"]["target"] is None


def test_case_has_about_ten_percent_of_weights_off() -> None:
    config, states, vips, ases = bench.build_case(10, 40)
    assert len(vips) == 10 and len(ases) == 400
    layout = rl.build_layout(config)
    plan = rd.make_plan(rd.evaluate(layout, states), ra.prepare_actual(layout, vips, ases))
    assert plan.counts["set_weight"] == len(plan.ops)
    assert 0.04 <= len(plan.ops) / len(ases) <= 0.2
