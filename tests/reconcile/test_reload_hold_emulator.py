"""The reload interlocks on the reconciler against the emulator over vpp-papi (the harness of
`test_reconciler`): a held reload leaves VPP's tables alone through a full sync; forced, it
deletes the VIPs maglev made."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MappingProxyType

import pytest

from maglev.vppsim import Emulator
from tests.reconcile.test_reconciler import Harness, apply_config, cfg, make, warm

pytestmark = pytest.mark.integration
__all__ = ["make"]  # the fixture, used by name (emu and files: conftest.py)


def test_a_held_reload_leaves_vpp_alone_until_forced(
    make: Callable[..., Harness], emu: Emulator
) -> None:
    h = make()
    warm(h)
    tables = h.vpp()
    assert set(tables) == {("192.0.2.80/32", 6, 80), ("192.0.2.81/32", 17, 53)}
    empty = dataclasses.replace(cfg(emu), frontends=MappingProxyType({}))
    msg = apply_config(empty)
    h.inbox.put(msg)
    h.turn()
    status = msg.reply.result(1)
    assert status.held and "deletes 2 frontend(s)" in status.problems[0]
    h.turn(31.0)  # past sync-interval: a full sync finds nothing to change
    assert h.vpp() == tables
    assert any(e["type"] == "reload-hold" and e["held"] for e in h.published)

    forced = dataclasses.replace(apply_config(empty), force=True)
    h.inbox.put(forced)
    h.turn()
    assert forced.reply.result(1).forced
    assert h.vpp() == {}
    assert h.rec.snapshot.reload_hold is None
