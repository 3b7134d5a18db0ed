"""diff_configs: names added, changed and removed between two configs."""

from __future__ import annotations

from maglev.config import ConfigDiff, NamedChanges, diff_configs
from maglev.config.changes import SHOWN
from tests.config.sample import BASE, DELETE, load, mutate


def test_identical_configs_have_no_changes() -> None:
    diff = diff_configs(load(BASE), load(BASE))
    assert diff == ConfigDiff()
    assert diff.empty and diff.summary() == "no changes"


def test_added_changed_removed_per_section() -> None:
    old = load(BASE)
    data = mutate(BASE, "frontends.www.pools[0].backends.web1.weight", 10)
    data = mutate(data, "frontends.api", {**BASE["frontends"]["www"], "port": 8080})
    data = mutate(data, "backends.web4", {"address": "127.0.0.14"})
    data = mutate(data, "backends.web2.enabled", False)
    data = mutate(data, "healthchecks.i", DELETE)
    data = mutate(data, "healthchecks.h.interval", "3s")
    data = mutate(data, "health.workers", 4)
    new = load(data)
    diff = diff_configs(old, new)
    assert diff.frontends == NamedChanges(added=("api",), changed=("www",))
    assert diff.backends == NamedChanges(added=("web4",), changed=("web2",))
    assert diff.healthchecks == NamedChanges(changed=("h",), removed=("i",))
    assert diff.settings == ("health",)
    assert not diff.empty
    assert diff.summary() == (
        "frontends: + api; ~ www | backends: + web4; ~ web2 | healthchecks: ~ h; - i"
        " | settings: health"
    )
    back = diff_configs(new, old)
    assert back.frontends == NamedChanges(removed=("api",), changed=("www",))


def test_names_come_out_sorted() -> None:
    data = BASE
    for name in ("zeta", "alpha", "mid"):
        data = mutate(data, f"backends.{name}", {"address": "127.0.0.20"})
    diff = diff_configs(load(BASE), load(data))
    assert diff.backends.added == ("alpha", "mid", "zeta")


def test_vpp_setting_change() -> None:
    diff = diff_configs(load(BASE), load(mutate(BASE, "vpp.lb.sync-interval", "5s")))
    assert diff.settings == ("vpp",)
    assert not diff.frontends and not diff.backends and not diff.healthchecks


def test_a_summary_lists_at_most_twenty_names_per_verb() -> None:
    many = NamedChanges(added=tuple(f"f{i:03}" for i in range(250)), removed=("old",))
    text = many.summary("frontends")
    assert text.startswith("frontends: + f000, f001, ")
    assert f"f{SHOWN - 1:03} and {250 - SHOWN} more; - old" in text
    assert f"f{SHOWN:03}" not in text
    assert NamedChanges(changed=("a", "b")).summary("backends") == "backends: ~ a, b"
