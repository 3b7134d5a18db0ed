"""Short lb calls through vpp-papi shared by the emulator tests."""

from __future__ import annotations

from typing import Any

VIP = {"pfx": "10.0.0.1/32", "protocol": 6, "port": 80}
V4_FILTER = {"pfx": "::10.0.0.1/128", "protocol": 6, "port": 80}


def add_vip(vpp: Any, **kw: Any) -> int:
    args = {**VIP, "encap": 0, "new_flows_table_length": 1024, **kw}
    return int(vpp.api.lb_add_del_vip_v2(**args).retval)


def add_as(vpp: Any, address: str, weight: int = 100, **kw: Any) -> int:
    args = {**VIP, "as_address": address, "weight": weight, **kw}
    return int(vpp.api.lb_add_del_as_v2(**args).retval)


def del_as(vpp: Any, address: str, flush: bool = False, **kw: Any) -> int:
    args = {**VIP, "as_address": address, "is_del": True, "is_flush": flush, **kw}
    return int(vpp.api.lb_add_del_as_v2(**args).retval)


def rows(vpp: Any, **flt: Any) -> list[tuple[str, int, int, int]]:
    return [
        (str(r.app_srv), r.weight, r.num_buckets, r.flags) for r in vpp.api.lb_as_v2_dump(**flt)
    ]
