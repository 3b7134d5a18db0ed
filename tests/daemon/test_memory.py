"""The daemon's garbage-collector policy: settle after a config, tidy when idle."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from maglev.daemon import memory


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.peer, b.peer = b, a  # only the cycle collector frees these
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_collects_then_freezes_and_makes_full_collections_rare() -> None:
    dead = cycle()
    memory.settle(full=True)
    assert dead() is None  # the cycle was collected before freezing
    assert gc.get_freeze_count() > 0  # what is alive is exempt from later collections
    assert gc.get_threshold() == memory.THRESHOLDS


def collections_while_growing(n: int) -> list[int]:
    """The generation of every collection the interpreter runs while n new containers are made
    and kept (a heap growing, as when a config is loaded)."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        keep: list[list[int]] = [[] for _ in range(n)]
    finally:
        gc.callbacks.remove(record)
    del keep
    return seen


def test_after_settle_full_collections_are_rare_and_young_ones_run_as_usual() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's default policy, for comparison
    # Out of the way, what this process holds already (a full collection is skipped while the
    # objects added since the last one are under a quarter of the survivors): the count below
    # then does not depend on which tests ran before.
    gc.freeze()
    gc.collect()
    default = collections_while_growing(1_000_000)
    memory.settle()
    policy = collections_while_growing(1_000_000)
    assert default.count(2) >= 5, default.count(2)  # the measurement sees full collections
    assert policy.count(2) * 5 <= default.count(2), (policy.count(2), default.count(2))
    # Young collections are not held back: as many as before, give or take a few.
    assert abs(policy.count(0) - default.count(0)) <= default.count(0) // 10


def test_a_reload_settle_leaves_frozen_objects_to_the_full_tidy() -> None:
    memory.settle(full=True)
    holder = [Node()]
    holder[0].peer = holder[0]
    ref = weakref.ref(holder[0])
    memory.settle()  # frozen now, like a config
    holder.clear()  # the next reload drops it
    gc.collect()
    assert ref() is not None  # a frozen cycle is not collected by a normal collection...
    fresh = cycle()
    memory.settle()  # ...nor by a reload's settle, which walks only what is not frozen
    assert fresh() is None and ref() is not None
    start = memory._last_tidy
    assert memory.tidy(start + memory.TIDY_INTERVAL + 1)  # not yet a full one
    assert ref() is not None
    assert memory._last_full is not None
    # the hourly full one (a second past it: `(t + 3600) - t` may round below 3600)
    assert memory.tidy(memory._last_full + memory.FULL_INTERVAL + 1)
    assert ref() is None


def test_the_first_settle_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_last_full", None)
    holder = [Node()]
    holder[0].peer = holder[0]
    ref = weakref.ref(holder[0])
    gc.freeze()
    holder.clear()
    memory.settle()
    assert ref() is None and memory._last_full is not None


def test_tidy_runs_at_most_every_interval_and_frees_new_cycles() -> None:
    memory.settle()  # resets the interval
    start = memory._last_tidy
    dead = cycle()
    assert not memory.tidy(start + memory.TIDY_INTERVAL / 2)  # too soon: not run
    frozen = gc.get_freeze_count()
    assert memory.tidy(start + memory.TIDY_INTERVAL + 1)
    assert dead() is None
    assert gc.get_freeze_count() >= frozen  # survivors frozen again
    assert not memory.tidy(start + memory.TIDY_INTERVAL + 2)
