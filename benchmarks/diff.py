"""Diff engine benchmark: a full comparison on the compiled engine and its pure-Python twin.

A full comparison = VPP's weight per backend (`current_weights`) + desired weights from backend
states (`compute_desired` with every engine rule in play: each frontend's mass-failure guard on
(the default, fail-static at min-healthy 50%), flap-damping suppression, operator overrides and
slow-start ramps on a few percent of the backends) + the diff against VPP's tables (`diff_tables`), for 1,000 frontends x 64
backends (two pools of 32; every backend its own address) where about 10% of VPP's weights
differ from the desired ones. Both twins run
side by side in one run (interleaved repetitions) on identical inputs, prepared once the way
the reconciler holds them (the config compiled per load, states and VPP rows converted per
sync). The conversions are pure Python shared by both twins, so they are reported separately,
not in the ratio.

`python -m benchmarks.diff [--smoke]`, or through `maglev-bench diff`.
"""

from __future__ import annotations

import gc
import importlib
import ipaddress
import random
import time
from array import array
from types import ModuleType
from typing import Any

from benchmarks.common import ratio, stat, suite_main, suite_result, timeit
from maglev import _diff_py
from maglev.model import (
    Backend,
    BackendState,
    Config,
    Encap,
    Frontend,
    Pool,
    PoolMember,
    Protocol,
    VppSettings,
)
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp import lb
from maglev.vpp.lb import ENCAP_CODE, AsInfo, VipInfo

TARGET_RATIO = 20.0


def build_case(
    n_frontends: int, n_backends: int, seed: int = 1
) -> tuple[Config, dict[str, BackendState], list[VipInfo], list[AsInfo]]:
    """A config, backend states (~5% down) and VPP rows where ~10% of the weights differ."""
    rnd = random.Random(seed)
    backends: dict[str, Backend] = {}
    frontends: dict[str, Frontend] = {}
    states: dict[str, BackendState] = {}
    half = max(1, n_backends // 2)
    for f in range(n_frontends):
        names = []
        for b in range(n_backends):
            name = f"f{f}b{b}"
            addr = ipaddress.IPv4Address((10 << 24) + f * 256 + b + 1)
            backends[name] = Backend(name, addr)
            names.append(name)
            states[name] = BackendState.DOWN if rnd.random() < 0.05 else BackendState.UP
        pools = (
            Pool("primary", tuple(PoolMember(n, 100) for n in names[:half])),
            Pool("backup", tuple(PoolMember(n, 50) for n in names[half:])),
        )
        frontends[f"fe{f}"] = Frontend(
            f"fe{f}",
            ipaddress.IPv4Network((0xC6120000 + f, 32)),
            Protocol.TCP,
            80,
            Encap.GRE4,
            pools,
        )
    config = Config(VppSettings(), {}, backends, frontends)
    layout = rl.build_layout(config)
    ev = rd.evaluate(layout, states)
    vips: list[VipInfo] = []
    ases: list[AsInfo] = []
    for i, fe in enumerate(layout.frontends):
        key = lb.frontend_key(fe)
        vips.append(VipInfo(*key, ENCAP_CODE[fe.encap], fe.dscp, 1024, fe.src_ip_sticky))
        start, end = layout.topology.fe_slot_start[i], layout.topology.fe_slot_start[i + 1]
        for s in range(start, end):
            w = ev.desired.slot_weight[s]
            if rnd.random() < 0.10:
                w = 0 if w else 100
            ases.append(AsInfo(key, layout.slot_address[s], w, 0, 1, 0))
    return config, states, vips, ases


def _full(
    engine: ModuleType, layout: rl.Layout, table: ra.ActualTable, st: Any, ov: Any, ramp: Any
) -> Any:
    owned = array("b", bytes(len(table.vip_ids)))
    selected = array("b", [1]) * len(layout.frontends)
    current = engine.current_weights(layout.topology, table.actual)
    desired = engine.compute_desired(layout.topology, st, ov, current, ramp)
    return engine.diff_tables(layout.topology, desired, table.actual, owned, selected)


def run(smoke: bool = False) -> dict[str, Any]:
    n_fe, n_be = (20, 8) if smoke else (1000, 64)
    warmup, reps = (1, 3) if smoke else (2, 9)
    config, states, vips, ases = build_case(n_fe, n_be)
    layout = rl.build_layout(config)
    # Every rule the engine applies is in play: flap damping holds out 2% of the up backends,
    # 2% of the slots carry an operator override, 5% are slow-starting (a quarter, half or three
    # quarters of their weight), and every frontend's mass-failure guard is on.
    rnd = random.Random(7)
    suppressed = {
        n for n, s in sorted(states.items()) if s is BackendState.UP and rnd.random() < 0.02
    }
    overrides = {
        key: rnd.choice((0, 10, 100)) for key in sorted(layout.slot_index) if rnd.random() < 0.02
    }
    st = rl.encode_states(layout, states, suppressed)
    ov = rl.encode_overrides(layout, overrides)
    ramp = array("i", [250 * rnd.randrange(1, 4) if rnd.random() < 0.05 else 1000
                       for _ in range(len(layout.topology.slot_as))])  # fmt: skip
    table = ra.prepare_actual(layout, vips, ases)

    engines: dict[str, ModuleType] = {"python": _diff_py}
    notes: list[str] = []
    try:
        engines["cython"] = importlib.import_module("maglev._diff")
    except ImportError:
        notes.append("compiled engine maglev._diff is absent: no ratio")
    results = {name: _full(e, layout, table, st, ov, ramp) for name, e in engines.items()}
    if len(results) == 2 and results["python"] != results["cython"]:
        raise AssertionError("the twins disagree on the benchmark input")
    n_ops = len(results["python"][0])

    figures: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {f"full_{name}": [] for name in engines}
    # Interleaved repetitions with the collector paused (as `timeit` does): both twins see the
    # same machine load, so the ratio holds even when absolute times drift.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for rep in range(warmup + reps):
            for name, e in engines.items():
                t0 = time.perf_counter()
                _full(e, layout, table, st, ov, ramp)
                if rep >= warmup:
                    samples[f"full_{name}"].append(time.perf_counter() - t0)
    finally:
        if gc_was_on:
            gc.enable()
    for name in engines:
        figures[f"full comparison, {name}"] = stat(samples[f"full_{name}"], "s")
    # Shared pure-Python conversions, for scale (not part of the engine ratio).
    conv = {
        "compile config (per load)": lambda: rl.build_layout(config),
        "encode states (per sync)": lambda: rl.encode_states(layout, states),
        "rank VPP rows (per sync)": lambda: ra.prepare_actual(layout, vips, ases),
    }
    for label, fn in conv.items():
        figures[label] = stat(timeit(fn, warmup=1, reps=max(3, reps // 3)), "s")
    ratios = {}
    if "cython" in engines:
        value = figures["full comparison, python"]["median"] / max(
            figures["full comparison, cython"]["median"], 1e-12
        )
        ratios["cython/python full comparison"] = ratio(value, None if smoke else TARGET_RATIO)
        # For scale only: a sync also converts states and VPP's rows in shared Python code.
        shared = sum(
            figures[k]["median"] for k in ("encode states (per sync)", "rank VPP rows (per sync)")
        )
        ratios["incl. per-sync conversions (no target)"] = ratio(
            (shared + figures["full comparison, python"]["median"])
            / (shared + figures["full comparison, cython"]["median"])
        )
    notes.append(f"{n_fe} frontends x {n_be} backends, {len(ases)} ASes, {n_ops} ops")
    return suite_result(
        "diff",
        f"{n_fe} frontends x {n_be} backends, ~10% of weights differ",
        figures,
        ratios,
        samples,
        notes,
    )


def main() -> None:
    suite_main(run, __doc__)


if __name__ == "__main__":
    main()
