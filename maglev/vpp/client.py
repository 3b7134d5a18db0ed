"""The lb plugin as the reconciler uses it: the `LbClient` port and its vpp-papi implementation.

`LbClient` is everything the reconciler needs of VPP: connect, read the lb tables (with what
`show lb vips verbose` adds), set the global lb conf, apply plan ops and record what succeeded,
read the per-VIP counters, and the per-message call counts for metrics. `PapiLb` does it over
one `VppConnection` (owned by the reconciler thread: vpp_papi is not safe to share); applying a
plan is `maglev.vpp.applier`'s: each op becomes its one lb API request, the plan goes out as one
pipelined batch, and only the ops that succeeded are recorded.
`maglev.vpp.memory.MemoryLb` is the in-memory implementation pure planning tests use.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from maglev.errors import VppError
from maglev.model import LbSettings
from maglev.vpp import showlb
from maglev.vpp.applier import apply_ops
from maglev.vpp.dumper import read_lb
from maglev.vpp.lb import Actual, LbConf, LbState, VipCounters, actual_from_state
from maglev.vpp.ops import Op
from maglev.vpp.papi import VersionInfo, VppConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LbRead:
    """One full read of VPP: its tables, their record, and the per-VIP counters."""

    state: LbState
    actual: Actual
    counters: tuple[VipCounters, ...]


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of a plan: the ops VPP carried out (in order) and how many did not happen
    (refused, or unanswered when the connection failed)."""

    done: Sequence[Op]
    failed: int


class LbClient(Protocol):
    """The reconciler's port to VPP's lb plugin (one owner thread)."""

    @property
    def connected(self) -> bool: ...
    @property
    def version(self) -> VersionInfo | None: ...
    def connect(self) -> VersionInfo: ...
    def disconnect(self) -> None: ...
    def read(self) -> LbRead: ...
    def read_counters(self) -> tuple[VipCounters, ...]: ...
    def ensure_conf(self, conf: LbConf | None, lb: LbSettings) -> bool: ...
    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied: ...
    def call_counts(self) -> Mapping[tuple[str, str], int]: ...


def wanted_conf(conf: LbConf, lb: LbSettings) -> LbConf:
    """The global lb conf `lb` asks for; an unset source address keeps VPP's (lb_conf always
    overwrites both)."""
    return LbConf(
        lb.ip4_src_address or conf.ip4_src_address,
        lb.ip6_src_address or conf.ip6_src_address,
        lb.sticky_buckets_per_core,
        int(lb.flow_timeout),
    )


def log_conf(want: LbConf) -> None:
    log.info(
        "setting VPP lb conf: ip4-src %s, ip6-src %s, sticky-buckets-per-core %d, "
        "flow-timeout %ds",
        want.ip4_src_address, want.ip6_src_address, want.sticky_buckets_per_core,
        want.flow_timeout,
    )  # fmt: skip


class PapiLb:
    """`LbClient` over vpp-papi. Reconciler thread only."""

    def __init__(self, conn: VppConnection) -> None:
        self.conn = conn
        self.version: VersionInfo | None = None

    @property
    def connected(self) -> bool:
        return self.conn.connected

    def connect(self) -> VersionInfo:
        self.conn.connect()
        try:
            self.version = self.conn.show_version()
        except VppError as e:
            log.warning("VPP connected but show_version failed: %s", e)
            self.version = VersionInfo("vpp", "unknown", "")
        return self.version

    def disconnect(self) -> None:
        self.conn.disconnect()

    def read(self) -> LbRead:
        state, shown = read_lb(self.conn)
        return LbRead(state, actual_from_state(state), tuple(v.counts() for v in shown))

    def read_counters(self) -> tuple[VipCounters, ...]:
        return tuple(v.counts() for v in showlb.parse(self.conn.cli(showlb.COMMAND)))

    def ensure_conf(self, conf: LbConf | None, lb: LbSettings) -> bool:
        """Send lb_conf when VPP's global lb settings differ from the config; True if sent."""
        if conf is None:
            return False
        want = wanted_conf(conf, lb)
        if want == conf:
            return False
        log_conf(want)
        self.conn.call(
            "lb_conf",
            ip4_src_address=ipaddress.IPv4Address(want.ip4_src_address),
            ip6_src_address=ipaddress.IPv6Address(want.ip6_src_address),
            sticky_buckets_per_core=want.sticky_buckets_per_core,
            flow_timeout=want.flow_timeout,
        )
        return True

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        """Send `ops` as one pipelined batch; record in `actual` the ones that succeeded.

        Every failure is logged with its message and arguments. Raises VppError when the batch
        could not be sent at all (the connection is then dropped).
        """
        done = apply_ops(self.conn, ops, actual)
        return Applied(done, len(ops) - len(done))

    def call_counts(self) -> Mapping[tuple[str, str], int]:
        return dict(self.conn.results)
