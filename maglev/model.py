"""Frozen value types shared by every layer: the validated config, probe results, states.

Pure data, no I/O. The config loader (`maglev.config`) builds these from YAML; the health
checkers read `HealthCheck`, the reconciler reads everything. Instances are immutable and safe to
hand between threads.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

EMBEDDED = "embedded"
"""`vpp.api-socket` value that runs the built-in lb emulator inside maglevd."""


def frozen_map(items: Mapping[str, object] | None = None) -> Mapping[str, object]:
    """A read-only view of a fresh dict (config maps must not change after loading)."""
    return MappingProxyType(dict(items or {}))


class Encap(enum.Enum):
    GRE4 = "gre4"
    GRE6 = "gre6"
    L3DSR = "l3dsr"
    NAT4 = "nat4"
    NAT6 = "nat6"

    @property
    def backend_version(self) -> int:
        """IP version the backends (VPP's ASes) must have for this encapsulation."""
        return 6 if self in (Encap.GRE6, Encap.NAT6) else 4


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"
    ANY = "any"

    @property
    def number(self) -> int:
        """IP protocol number as VPP's API carries it (255 = any)."""
        return _PROTOCOL_NUMBER[self.value]


_PROTOCOL_NUMBER = {"tcp": 6, "udp": 17, "any": 255}


class CheckType(enum.Enum):
    TCP = "tcp"
    HTTP = "http"
    HTTPS = "https"
    ICMP = "icmp"
    DNS = "dns"
    EXEC = "exec"


DEFAULT_PORTS: Mapping[CheckType, int] = MappingProxyType(
    {CheckType.HTTP: 80, CheckType.HTTPS: 443, CheckType.DNS: 53}
)
"""Well-known ports a check uses when it names none (tcp has no sensible default)."""


def netns_name_ok(name: str) -> bool:
    """Whether `name` can name a network namespace: a file name in /run/netns, not a path."""
    return bool(name) and "/" not in name and name not in (".", "..")


class BackendState(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"
    DISABLED = "disabled"
    REMOVED = "removed"


class FrontendState(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class UnmanagedPolicy(enum.Enum):
    """What the reconciler does with lb VIPs in VPP that the config does not name."""

    KEEP = "keep"  # leave them alone, log them once (default: never destroy what we did not make)
    DELETE = "delete"  # delete them on full sync


# --- config -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LbSettings:
    ip4_src_address: ipaddress.IPv4Address | None = None
    ip6_src_address: ipaddress.IPv6Address | None = None
    sticky_buckets_per_core: int = 1024
    flow_timeout: float = 40.0
    sync_interval: float = 30.0
    counters_interval: float = 5.0  # how often VPP's per-VIP counters are read (0: never)
    startup_min_delay: float = 5.0
    startup_max_delay: float = 30.0


@dataclass(frozen=True, slots=True)
class VppSettings:
    api_socket: str = "/run/vpp/api.sock"  # or EMBEDDED
    api_dir: str | None = None  # None: host's /usr/share/vpp/api if present, else bundled
    stats_socket: str | None = None
    unmanaged_vips: UnmanagedPolicy = UnmanagedPolicy.KEEP
    lb: LbSettings = field(default_factory=LbSettings)

    @property
    def embedded(self) -> bool:
        return self.api_socket == EMBEDDED


@dataclass(frozen=True, slots=True)
class FlapDamping:
    """`healthchecks.NAME.flap-damping`, as BGP route-flap damping (RFC 2439): each down
    transition adds `penalty`, which halves every `half_life` seconds; above `suppress` the
    backend is held out (weight 0, not flushed) even while its checks pass, until the penalty
    decays below `reuse`, or `max_suppress` seconds of suppression at most."""

    penalty: float = 1000.0
    half_life: float = 30.0
    suppress: float = 2000.0
    reuse: float = 750.0
    max_suppress: float = 600.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One named health check. Fields that do not apply to `type` keep their defaults."""

    name: str
    type: CheckType
    port: int | None = None  # None: the frontend's port is not known here, so the check's own
    interval: float = 2.0
    fast_interval: float = 0.5
    down_interval: float = 10.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 3
    jitter: float = 0.1  # fraction of each interval, applied as +/- uniformly
    netns: str | None = None
    source_ip4: ipaddress.IPv4Address | None = None
    source_ip6: ipaddress.IPv6Address | None = None
    # tcp
    send: str | None = None
    expect: str | None = None  # regex on the reply (tcp)
    # http / https
    path: str = "/"
    host: str | None = None
    method: str = "GET"
    expect_status: tuple[tuple[int, int], ...] = ((200, 399),)  # inclusive ranges
    expect_body: str | None = None  # regex
    server_name: str | None = None  # TLS SNI
    verify: bool = False
    ca_file: str | None = None
    # dns
    query_name: str | None = None
    query_type: str = "A"
    expect_rcode: str = "NOERROR"
    expect_answer: str | None = None
    # exec
    command: tuple[str, ...] = ()
    shell: bool = False
    # (name, value) pairs sorted by name: added to the child's minimal environment (a tuple,
    # not a dict, so the check stays hashable and comparable on reload)
    environment: tuple[tuple[str, str], ...] = ()
    flap_damping: FlapDamping | None = None  # None: off


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    address: IPAddress
    healthcheck: str | None = None  # None: no probing, treated as up when enabled
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SlowStart:
    """A slow-start ramp: a backend coming back (or added to a serving frontend) enters at
    1/steps of its weight and reaches it in `steps` equal steps over `duration` seconds."""

    duration: float
    steps: int = 4


@dataclass(frozen=True, slots=True)
class PoolMember:
    backend: str
    weight: int = 100
    slow_start: SlowStart | None = None  # overrides the frontend's for this member


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    members: tuple[PoolMember, ...]


class MassFailure(enum.Enum):
    """What a frontend does when fewer of its serving pool's members are healthy than its
    `min-healthy` (the mass-failure guard; the rule itself is in the diff engine)."""

    FAIL_STATIC = "fail-static"  # health drains members down to the threshold, not beyond
    PANIC = "panic"  # every member (not paused or disabled) serves, whatever its health
    DRAIN = "drain"  # no guard: each backend is decided on its own


@dataclass(frozen=True, slots=True)
class MinHealthy:
    """A frontend's `min-healthy`: a count of members, or (`percent`) a share of them in
    hundredths of a percent (5000 = 50%), rounded up. 0 turns the guard off."""

    value: int = 5000
    percent: bool = True

    def threshold(self, members: int) -> int:
        """Healthy members needed out of `members` (the engine computes the same)."""
        if self.percent:
            return -(-self.value * members // 10000)
        return min(self.value, members)

    def __str__(self) -> str:
        if not self.percent:
            return str(self.value)
        whole, frac = divmod(self.value, 100)
        return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True, slots=True)
class Frontend:
    name: str
    address: IPNetwork
    protocol: Protocol
    port: int
    encap: Encap
    pools: tuple[Pool, ...]
    dscp: int = 0
    target_port: int | None = None  # nat4/nat6: the backends' port (None: the frontend's port)
    src_ip_sticky: bool = False
    flow_table_length: int = 1024
    flush_on_down: bool = True
    min_healthy: MinHealthy = MinHealthy()
    on_mass_failure: MassFailure = MassFailure.FAIL_STATIC
    slow_start: SlowStart | None = None  # None: off
    max_churn: float | None = None  # disruption budget: share of buckets per step (None: off)
    churn_interval: float = 30.0  # seconds between two budget steps

    def slow_start_of(self, backend: str) -> SlowStart | None:
        """The ramp of `backend` here: its first entry's `slow-start`, else the frontend's."""
        for pool in self.pools:
            for m in pool.members:
                if m.backend == backend:
                    return m.slow_start if m.slow_start is not None else self.slow_start
        return None

    def backend_names(self) -> tuple[str, ...]:
        """Every backend of every pool, first occurrence order, no duplicates."""
        seen: dict[str, None] = {}
        for pool in self.pools:
            for m in pool.members:
                seen.setdefault(m.backend)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class ControlSettings:
    socket: str = "/run/maglev/maglevd.sock"
    socket_group: str | None = None
    socket_mode: int = 0o660
    tcp_listen: str | None = None  # "host:port"; requires token_file
    token_file: str | None = None


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: str | None = None  # "host:port" for the Prometheus endpoint


@dataclass(frozen=True, slots=True)
class Canary:
    """A target probed like a backend but serving no frontend: proof that maglev can see."""

    name: str  # its key under health.vantage.canaries (`canaries[0]` for a list item)
    address: IPAddress
    healthcheck: str


@dataclass(frozen=True, slots=True)
class VantageSettings:
    """`health.vantage`: when maglev's own view is broken, freeze health-driven drains."""

    canaries: tuple[Canary, ...] = ()
    max_down_fraction: float | None = None  # None: only canaries trip the guard
    window: float = 10.0  # seconds the down-fraction counts over


@dataclass(frozen=True, slots=True)
class HealthSettings:
    workers: int = 1  # one epoll loop keeps up with thousands of probes a second (README)
    queue_size: int = 10000
    priority: int = -5  # nice value of the check worker threads (-20..19)
    vantage: VantageSettings | None = None  # None: no vantage guard


@dataclass(frozen=True, slots=True)
class ReloadGuardSettings:
    """`reload-guard`: the interlocks that hold a reload back (`maglev.reconcile.interlock`)."""

    max_deleted_frontends: int = 1  # more deletions than this in one reload are held
    max_capacity_loss: float = 0.5  # fraction of a remaining frontend's capacity (0..1)
    protect_busy_frontends: bool = True  # hold a reload deleting a frontend that has traffic


@dataclass(frozen=True, slots=True)
class Config:
    vpp: VppSettings
    healthchecks: Mapping[str, HealthCheck]
    backends: Mapping[str, Backend]
    frontends: Mapping[str, Frontend]
    control: ControlSettings = field(default_factory=ControlSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    reload_guard: ReloadGuardSettings = field(default_factory=ReloadGuardSettings)


# --- health -------------------------------------------------------------------------------


class Reason(enum.Enum):
    """Probe result reason codes (HAProxy's vocabulary where one exists)."""

    L4OK = "L4OK"
    L4CON = "L4CON"  # connection refused / reset
    L4TOUT = "L4TOUT"  # layer-4 timeout
    L6OK = "L6OK"
    L7OK = "L7OK"
    L7STS = "L7STS"  # unexpected HTTP status
    L7RSP = "L7RSP"  # unexpected or malformed reply
    L7TOUT = "L7TOUT"  # layer-7 timeout
    TLSERR = "TLSERR"
    DNSRCODE = "DNSRCODE"
    ICMPOK = "ICMPOK"
    ICMPTOUT = "ICMPTOUT"
    EXECOK = "EXECOK"
    EXECFAIL = "EXECFAIL"
    EXECTOUT = "EXECTOUT"
    SOCKERR = "SOCKERR"  # local socket/namespace/setup error


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One probe stream: a unique (address, healthcheck) pair.

    Its hash is computed once: targets key the reconciler's and the scheduler's dicts, and
    hashing an `ipaddress` object runs Python code on every lookup.
    """

    address: IPAddress
    healthcheck: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.address, self.healthcheck)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if other.__class__ is not ProbeTarget:
            return NotImplemented
        assert isinstance(other, ProbeTarget)
        return (
            self._hash == other._hash
            and self.healthcheck == other.healthcheck
            and self.address == other.address
        )

    def __reduce__(self) -> tuple[type[ProbeTarget], tuple[IPAddress, str]]:
        return (ProbeTarget, (self.address, self.healthcheck))  # the hash is per process


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: ProbeTarget
    ok: bool
    reason: Reason
    duration: float  # seconds the probe took
    detail: str  # short human text ("HTTP 503", "connection refused")
    at: float  # monotonic time the probe finished


def _result_builder() -> Callable[[ProbeTarget, bool, Reason, float, str, float], ProbeResult]:
    new = object.__new__
    names = ("target", "ok", "reason", "duration", "detail", "at")
    # every field, in order: a field added to ProbeResult must be added here too
    assert tuple(f.name for f in dataclasses.fields(ProbeResult)) == names
    set_target, set_ok, set_reason, set_duration, set_detail, set_at = (
        getattr(ProbeResult, f).__set__ for f in names
    )

    def probe_result(
        target: ProbeTarget, ok: bool, reason: Reason, duration: float, detail: str, at: float
    ) -> ProbeResult:
        r = new(ProbeResult)
        set_target(r, target)
        set_ok(r, ok)
        set_reason(r, reason)
        set_duration(r, duration)
        set_detail(r, detail)
        set_at(r, at)
        return r

    return probe_result


probe_result = _result_builder()
"""`ProbeResult(target, ok, reason, duration, detail, at)`, the same value at half the cost: the
fields are set through their slots, not the frozen dataclass's `__init__` (six
`object.__setattr__` calls). The check workers build thousands a second."""
