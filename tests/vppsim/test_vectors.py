"""Replay of behaviour recorded on a real VPP 26.10 (../shared/vpp-lb-vectors) through vpp-papi.

Every case and every step: the retval, and after each step every `lb_as_v2_dump` row of the VIP
(address, weight, num_buckets, flags) in order; then every error probe's retval. One connection
is reused throughout so the ~1,300 operations take seconds.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib
import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vpp_papi import VPPApiClient

from maglev.vppsim import Emulator

pytestmark = [pytest.mark.shared, pytest.mark.integration]

ENCAPS = {"gre4": 0, "gre6": 1, "l3dsr": 2, "nat4": 3, "nat6": 4}


def _load(shared: pathlib.Path) -> dict[str, Any]:
    with open(shared / "vpp-lb-vectors" / "lb-vectors-seed1.json") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _raw_filter(vip: str) -> str:
    """The dump filter that matches a VIP: the plugin compares raw ip46 bytes, so an IPv4 VIP
    must be given in its IPv4-compatible IPv6 form."""
    net = ipaddress.ip_network(vip, strict=False)
    if net.version == 4:
        return f"::{net.network_address}/128"
    return vip


def _arg(value: str) -> Any:
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        return value


class AsyncVpp:
    """vpp-papi in async mode: replies arrive on its reader thread without the sync mode's
    multiprocessing queue, which makes the ~18,000 dump rows of the replay several times
    faster. `call` sends a request (and for dumps the closing control_ping) and waits."""

    def __init__(self, emulator: Emulator, api_files: list[str]) -> None:
        self.replies: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.client = VPPApiClient(apifiles=api_files, server_address=emulator.socket_path)
        self.client.register_event_callback(lambda name, msg: self.replies.put((name, msg)))
        self.client.connect("replay", do_async=True)

    def _next(self, context: int) -> tuple[str, Any]:
        name, msg = self.replies.get(timeout=5)
        assert msg.context == context, (name, msg)
        return name, msg

    def call(self, fn: Callable[..., int], **kw: Any) -> Any:
        return self._next(fn(**kw))[1]

    def dump(self, fn: Callable[..., int], **kw: Any) -> list[Any]:
        context = fn(**kw)
        self.client.api.control_ping(context=context)
        rows = []
        while True:
            name, msg = self._next(context)
            if name == "control_ping_reply":
                return rows
            rows.append(msg)


@pytest.fixture
def avpp(emulator: Emulator, api_files: list[str]) -> Iterator[AsyncVpp]:
    a = AsyncVpp(emulator, api_files)
    yield a
    a.client.disconnect()


def test_replay_every_case_and_step(
    shared_dir: pathlib.Path, avpp: AsyncVpp, emulator: Emulator
) -> None:
    data = _load(shared_dir)
    api = avpp.client.api
    steps = 0
    for n, case in enumerate(data["cases"]):
        key = {"pfx": case["vip"], "protocol": case["protocol"], "port": case["port"]}
        r = avpp.call(
            api.lb_add_del_vip,
            **key,
            encap=ENCAPS[case["encap"]],
            new_flows_table_length=case["new_flows_table_length"],
        )
        assert r.retval == case["vip_retval"], f"case {n}: add vip"
        dump_filter = {**key, "pfx": _raw_filter(case["vip"])}
        for i, step in enumerate(case["steps"]):
            where = f"case {n} step {i} {step}"
            op = step["op"]
            if op == "add":
                r = avpp.call(
                    api.lb_add_del_as_v2, **key, as_address=step["as"], weight=step["weight"]
                )
            elif op == "set_weight":
                r = avpp.call(
                    api.lb_as_set_weight,
                    **key,
                    as_address=step["as"],
                    weight=step["weight"],
                    is_flush=step["is_flush"],
                )
            else:
                assert op == "del"
                r = avpp.call(
                    api.lb_add_del_as_v2,
                    **key,
                    as_address=step["as"],
                    is_del=True,
                    is_flush=step["is_flush"],
                )
            assert r.retval == step["retval"], where
            rows = avpp.dump(api.lb_as_v2_dump, **dump_filter)
            got = [
                {
                    "as": str(x.app_srv),
                    "weight": x.weight,
                    "num_buckets": x.num_buckets,
                    "flags": x.flags,
                }
                for x in rows
            ]
            assert got == step["dump"], where
            steps += 1
    assert steps == sum(len(c["steps"]) for c in data["cases"]) == 1258
    assert emulator.write_count == steps + len(data["cases"])


def test_replay_error_probes(shared_dir: pathlib.Path, vpp: Any) -> None:
    data = _load(shared_dir)
    for probe in data["errors"]:
        args = {k: _arg(v) for k, v in probe["args"].items()}
        if "encap" in args:
            r = vpp.api.lb_add_del_vip(**args)
        elif probe["desc"].startswith("set weight"):
            r = vpp.api.lb_as_set_weight(**args)
        else:
            r = vpp.api.lb_add_del_as_v2(**args)
        assert r.retval == probe["retval"], probe["desc"]
    assert len(data["errors"]) == 20
