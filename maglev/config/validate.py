"""Per-object validators: one function per config object type, each turning one YAML mapping
into a frozen model value while recording every problem it finds (with its full key path).

A validator returns None when the object cannot be built (a required field is missing or
broken); the problems already say why. Validators that need other objects (a backend naming a
healthcheck, a pool naming backends) receive what was built so far, so a reference to a broken
object is not reported a second time as unknown. Called by `maglev.config.loader` on the thread
loading the config.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterator, Mapping

from maglev.config import fastbuild, schema
from maglev.config.budget import disruption_budget
from maglev.config.fields import Node, format_duration, got, is_pow2, parse_host_port, show
from maglev.errors import Problem
from maglev.model import (
    Backend,
    ControlSettings,
    Encap,
    Frontend,
    HealthCheck,
    HealthSettings,
    IPNetwork,
    LbSettings,
    MassFailure,
    MetricsSettings,
    MinHealthy,
    Pool,
    PoolMember,
    Protocol,
    SlowStart,
    UnmanagedPolicy,
    VppSettings,
)

PROTOCOLS = {p.value: p for p in Protocol}
ENCAPS = {e.value: e for e in Encap}
UNMANAGED = {u.value: u for u in UnmanagedPolicy}
MASS_FAILURE = {m.value: m for m in MassFailure}
MAX_MIN_HEALTHY = 100_000  # a count; above any pool's size it means every member
MAX_SLOW_START = 86400.0  # seconds: a ramp of a day at most

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_MODE = re.compile(r"(?:0o?)?([0-7]{1,4})")


def check_name(section: Node, name: str) -> bool:
    """Object names appear in key paths, logs and metric labels: keep them plain."""
    if _NAME.fullmatch(name):
        return True
    section.add(name, f"name {show(name)} may only hold letters, digits, '.', '_' and '-' (max 64)")
    return False


FUZZY_UP_TO = 200
"""Known names compared one by one (difflib) for a 'did you mean'; beyond this only names one
typo away are looked up: difflib costs 0.3 s per unknown name among 40,000 backends, so a file
of many broken references would take hours."""

_NAME_CHARS = string.ascii_letters + string.digits + "_.-"


def unknown_name(kind: str, name: object, known: Mapping[str, object], hint: bool = True) -> str:
    """'unknown backend 'web9' (did you mean 'web1'?)'; `hint` False skips the search (a
    message past the problem limit is dropped anyway)."""
    close = _close_name(str(name), known) if hint else None
    suggestion = f" (did you mean {show(close)}?)" if close else ""
    return f"unknown {kind} {show(name)}{suggestion}"


def _close_name(name: str, known: Mapping[str, object]) -> str | None:
    if len(name) > 80:  # no name is longer than 64: nothing is close, and difflib would be slow
        return None
    if len(known) <= FUZZY_UP_TO:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        return close[0] if close else None
    return next((n for n in _one_typo_away(name) if n in known), None)


def _one_typo_away(name: str) -> Iterator[str]:
    """Every name one deleted, swapped, replaced or inserted character away, in a fixed order."""
    splits = [(name[:i], name[i:]) for i in range(len(name) + 1)]
    for a, b in splits:
        if b:
            yield a + b[1:]
        if len(b) > 1:
            yield a + b[1] + b[0] + b[2:]
    for a, b in splits:
        for c in _NAME_CHARS:
            if b:
                yield a + c + b[1:]
            yield a + c + b


# --- vpp, control, metrics, health ---------------------------------------------------------


def vpp_settings(node: Node) -> VppSettings:
    node.check_keys(schema.VPP)
    d = VppSettings()
    lb = lb_settings(node.child("lb"))
    return VppSettings(
        api_socket=node.text("api-socket", d.api_socket),
        api_dir=node.text("api-dir", None),
        stats_socket=node.text("stats-socket", None),
        unmanaged_vips=node.choice("unmanaged-vips", UNMANAGED, d.unmanaged_vips),
        lb=lb,
    )


def lb_settings(node: Node | None) -> LbSettings:
    d = LbSettings()
    if node is None:
        return d
    node.check_keys(schema.LB)
    ip4 = node.address("ip4-src-address", 4)
    ip6 = node.address("ip6-src-address", 6)
    buckets = node.integer("sticky-buckets-per-core", d.sticky_buckets_per_core, 1, 1 << 28)
    if not is_pow2(buckets):
        node.add("sticky-buckets-per-core", f"{buckets} is not a power of two")
    flow_timeout = node.duration("flow-timeout", d.flow_timeout)
    if not flow_timeout.is_integer():
        # VPP's lb_conf carries the flow timeout as whole seconds.
        node.add(
            "flow-timeout", f"{show(node.raw('flow-timeout'))} is not a whole number of seconds"
        )
    min_delay = node.duration("startup-min-delay", d.startup_min_delay, positive=False)
    max_delay = node.duration("startup-max-delay", d.startup_max_delay, positive=False)
    if max_delay < min_delay:
        node.add(
            "startup-max-delay",
            f"{format_duration(max_delay)} is less than startup-min-delay "
            f"{format_duration(min_delay)}",
        )
    return LbSettings(
        ip4_src_address=ip4,  # type: ignore[arg-type]  # version 4 checked by node.address
        ip6_src_address=ip6,  # type: ignore[arg-type]
        sticky_buckets_per_core=buckets,
        flow_timeout=flow_timeout,
        sync_interval=node.duration("sync-interval", d.sync_interval),
        counters_interval=node.duration("counters-interval", d.counters_interval, positive=False),
        startup_min_delay=min_delay,
        startup_max_delay=max_delay,
    )


def control_settings(node: Node) -> ControlSettings:
    node.check_keys(schema.CONTROL)
    d = ControlSettings()
    mode = d.socket_mode
    raw = node.raw("socket-mode")
    if raw is not None:
        if isinstance(raw, str) and (m := _MODE.fullmatch(raw.strip())):
            mode = int(m.group(1), 8)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            mode = raw  # YAML 1.1 already reads an unquoted 0660 as octal
        else:
            node.add("socket-mode", f'expected an octal mode like "0660", {got(raw)}')
        if not 0 <= mode <= 0o777:
            node.add("socket-mode", f'{show(raw)} is not a file mode in 0..0777 (quote it: "0660")')
            mode = d.socket_mode
    tcp_listen = host_port(node, "tcp-listen")
    token_file = node.text("token-file", None)
    if tcp_listen is not None and token_file is None:
        node.add("tcp-listen", f"{show(tcp_listen)} requires control.token-file")
    return ControlSettings(
        socket=node.text("socket", d.socket),
        socket_group=node.text("socket-group", None),
        socket_mode=mode,
        tcp_listen=tcp_listen,
        token_file=token_file,
    )


def host_port(node: Node, key: str) -> str | None:
    value = node.text(key, None)
    if value is None:
        return None
    try:
        parse_host_port(value)
    except ValueError as e:
        node.add(key, str(e))
        return None
    return value


def metrics_settings(node: Node) -> MetricsSettings:
    node.check_keys(schema.METRICS)
    return MetricsSettings(listen=host_port(node, "listen"))


def health_settings(node: Node) -> HealthSettings:
    node.check_keys(schema.HEALTH)
    d = HealthSettings()
    return HealthSettings(
        workers=node.integer("workers", d.workers, 1, 64),
        queue_size=node.integer("queue-size", d.queue_size, 1, 10_000_000),
        priority=node.integer("priority", d.priority, -20, 19),
    )


# --- backends ------------------------------------------------------------------------------


def backend(
    name: str, node: Node, healthchecks: Mapping[str, HealthCheck | None]
) -> Backend | None:
    node.check_keys(schema.BACKEND)
    node.require("address")
    address = node.address("address")
    check = node.text("healthcheck", None)
    if check is not None and check not in healthchecks:
        node.add("healthcheck", unknown_name("healthcheck", check, healthchecks, not node.full))
    enabled = node.boolean("enabled", True)
    if address is None:
        return None
    return Backend(name=name, address=address, healthcheck=check, enabled=enabled)


# --- frontends -----------------------------------------------------------------------------


def frontend(name: str, node: Node, backends: Mapping[str, Backend | None]) -> Frontend | None:
    node.check_keys(schema.FRONTEND)
    broken = len(node.problems)
    node.require("address")
    address = node.network("address")
    protocol = node.choice("protocol", PROTOCOLS, Protocol.TCP)
    port = node.integer("port", None, 0, 65535)
    if protocol is Protocol.ANY:
        if port:
            node.add("port", f"{port} must be absent or 0 for protocol any")
        port = 0
    elif port is None:
        if not node.has("port"):
            node.add("port", f"is required for protocol {protocol.value} (1..65535)")
    elif port == 0:
        node.add("port", f"0 is not in 1..65535 (protocol {protocol.value} needs a port)")
    node.require("encap")
    encap = node.choice("encap", ENCAPS, None)
    dscp = node.integer("dscp", 0, 0, 63)
    if encap is Encap.L3DSR:
        node.require("dscp", " for encap l3dsr")
    elif node.has("dscp"):
        other = f", not {encap.value}" if encap is not None else ""
        node.add("dscp", f"{show(node.raw('dscp'))}: dscp applies only to encap l3dsr{other}")
    target_port = node.integer("target-port", None, 1, 65535)
    if node.has("target-port") and encap not in (Encap.NAT4, Encap.NAT6, None):
        node.add(
            "target-port",
            f"{show(node.raw('target-port'))}: target-port applies only to encap nat4 and nat6",
        )
    if encap is not None and address is not None:
        family_rules(node, encap, address.version, protocol)
    length = node.integer("flow-table-length", 1024, 1, 65536)
    if not is_pow2(length):
        # VPP refuses it (INVALID_MEMORY_SIZE); 0 would even crash it.
        node.add("flow-table-length", f"{length} is not a power of two")
    pools = pool_list(node, encap, backends)
    src_ip_sticky = node.boolean("src-ip-sticky", False)
    flush_on_down = node.boolean("flush-on-down", True)
    share, percent = node.count_or_percent("min-healthy", (5000, True), MAX_MIN_HEALTHY)
    on_mass_failure = node.choice("on-mass-failure", MASS_FAILURE, MassFailure.FAIL_STATIC)
    ramp = slow_start(node)
    max_churn, churn_interval = disruption_budget(node)
    if len(node.problems) != broken or address is None or encap is None:
        return None
    return Frontend(
        name=name,
        address=address,
        protocol=protocol,
        port=port or 0,
        encap=encap,
        pools=pools,
        dscp=dscp,
        target_port=target_port if encap in (Encap.NAT4, Encap.NAT6) else None,
        src_ip_sticky=src_ip_sticky,
        flow_table_length=length,
        flush_on_down=flush_on_down,
        min_healthy=MinHealthy(share, percent),
        on_mass_failure=on_mass_failure,
        slow_start=ramp,
        max_churn=max_churn,
        churn_interval=churn_interval,
    )


def slow_start(node: Node) -> SlowStart | None:
    """`slow-start: {duration, steps}` of a frontend or pool member (absent: None)."""
    if not node.has("slow-start"):
        return None
    snode = node.child("slow-start")
    if snode is None:
        return None
    snode.check_keys(schema.SLOW_START)
    snode.require("duration")
    duration = snode.duration("duration", 0.0)
    if duration > MAX_SLOW_START:
        snode.add("duration", f"{show(snode.raw('duration'))} is longer than a day")
    steps = snode.integer("steps", 4, 2, 100)
    if not 0 < duration <= MAX_SLOW_START:
        return None
    return SlowStart(duration, steps)


def family_rules(node: Node, encap: Encap, version: int, protocol: Protocol) -> None:
    """VPP's lb: l3dsr and nat4 are IPv4-only VIPs, nat6 IPv6-only; NAT works per port only."""
    need = {Encap.L3DSR: 4, Encap.NAT4: 4, Encap.NAT6: 6}.get(encap)
    if need is not None and version != need:
        node.add(
            "encap",
            f"{encap.value!r} needs an IPv{need} address, but address "
            f"{show(node.raw('address'))} is IPv{version}",
        )
    if encap in (Encap.NAT4, Encap.NAT6) and protocol is Protocol.ANY:
        node.add("encap", f"{encap.value!r} needs protocol tcp or udp with a port, not any")


def pool_list(
    node: Node, encap: Encap | None, backends: Mapping[str, Backend | None]
) -> tuple[Pool, ...]:
    items = node.items("pools")
    if items is None:
        return ()
    if not items:
        node.add("pools", "at least one pool is required")
        return ()
    pools: list[Pool] = []
    pool_names: set[str] = set()
    seen: dict[str, str] = {}  # backend -> pool it first appeared in
    for i, item in enumerate(items):
        pnode = Node.of(item, node.at("pools") + f"[{i}]", node.problems)
        if pnode is None:
            continue
        pnode.check_keys(schema.POOL)
        pnode.require("name")
        pname = pnode.text("name", None)
        if pname is not None:
            if pname in pool_names:
                pnode.add("name", f"{show(pname)} is already the name of another pool")
            pool_names.add(pname)
        members = pool_members(pnode, pname or f"#{i}", encap, backends, seen)
        if pname is not None and members is not None:
            pools.append(Pool(name=pname, members=members))
    return tuple(pools)


def pool_members(
    pnode: Node,
    pname: str,
    encap: Encap | None,
    backends: Mapping[str, Backend | None],
    seen: dict[str, str],
) -> tuple[PoolMember, ...] | None:
    if not pnode.require("backends"):
        return None
    bnode = pnode.child("backends")
    if bnode is None:
        return None
    if not bnode.data:
        pnode.add("backends", "a pool needs at least one backend")
        return None
    plain = fastbuild.members(
        bnode.data, encap.backend_version if encap is not None else 0, backends, seen
    )
    if plain is not None:  # every member plainly valid: built as `members_of` builds them
        for m in plain:
            seen[m.backend] = pname
        return plain
    return members_of(bnode, pname, encap, backends, seen)


def members_of(
    bnode: Node,
    pname: str,
    encap: Encap | None,
    backends: Mapping[str, Backend | None],
    seen: dict[str, str],
) -> tuple[PoolMember, ...]:
    """A pool's members, each checked the general way (its `backends:` mapping, not empty)."""
    members: list[PoolMember] = []
    for bname, spec in bnode.data.items():
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            bnode.add(bname, f"expected a mapping like {{weight: {spec}}}, {got(spec)}")
            continue
        mnode = Node.of(spec, bnode.at(bname), bnode.problems)
        if mnode is None:
            continue
        mnode.check_keys(schema.POOL_MEMBER)
        weight = mnode.integer("weight", 100, 0, 100)
        ramp = slow_start(mnode)
        if bname in seen:
            mnode.add(None, f"backend {show(bname)} is already in pool {show(seen[bname])}")
            continue
        seen[bname] = pname
        if bname not in backends:
            mnode.add(None, unknown_name("backend", bname, backends, not mnode.full))
            continue
        be = backends[bname]
        if be is not None and encap is not None and be.address.version != encap.backend_version:
            mnode.add(
                None,
                f"backend address {be.address} is IPv{be.address.version}, but encap "
                f"{encap.value} needs IPv{encap.backend_version} backends",
            )
        members.append(PoolMember(backend=bname, weight=weight, slow_start=ramp))
    return tuple(members)


# --- across frontends ----------------------------------------------------------------------


def gre_sources(top: Node, vpp: VppSettings, frontends: Mapping[str, Frontend]) -> None:
    """GRE tunnels to the backends need an outer source address of the backends' family."""
    needs = {
        Encap.GRE4: ("ip4-src-address", vpp.lb.ip4_src_address),
        Encap.GRE6: ("ip6-src-address", vpp.lb.ip6_src_address),
    }
    for encap, (key, value) in needs.items():
        users = [name for name, fe in frontends.items() if fe.encap is encap]
        vpp_raw, lb_raw = top.data.get("vpp"), None
        if isinstance(vpp_raw, Mapping):
            lb_raw = vpp_raw.get("lb")
        given = isinstance(lb_raw, Mapping) and lb_raw.get(key) is not None
        if users and value is None and not given:  # a broken value is reported already
            top.problems.append(
                Problem(
                    f"vpp.lb.{key}",
                    f"is required by encap {encap.value} (frontends {', '.join(users)})",
                )
            )


def shared_prefixes(top: Node, frontends: Mapping[str, Frontend]) -> None:
    """VPP's rules for frontends on one prefix: no duplicate (protocol, port); an all-port
    frontend cannot share the prefix with a per-port one; per-port ones share one encap.

    Each frontend is reported against the first earlier one on its prefix that it clashes with,
    found in constant time: thousands of frontends on one prefix (one per port) are valid, and
    comparing each with every earlier one took minutes.
    """
    by_prefix: dict[IPNetwork, list[Frontend]] = {}
    for fe in frontends.values():
        by_prefix.setdefault(fe.address, []).append(fe)
    for prefix, group in by_prefix.items():
        if len(group) == 1:  # most prefixes: nothing to clash with
            continue
        # The index of the first frontend with each (protocol, port), each encap, and each of
        # all-port (True) and per-port (False).
        by_port: dict[tuple[Protocol, int], int] = {}
        by_encap: dict[Encap, int] = {}
        by_all_port: dict[bool, int] = {}
        for i, fe in enumerate(group):
            clashes = [
                by_port.get((fe.protocol, fe.port)),
                by_all_port.get(fe.port != 0),
                min((j for e, j in by_encap.items() if e is not fe.encap), default=None),
            ]
            by_port.setdefault((fe.protocol, fe.port), i)
            by_encap.setdefault(fe.encap, i)
            by_all_port.setdefault(fe.port == 0, i)
            first = min((j for j in clashes if j is not None), default=None)
            if first is None:
                continue
            other = group[first]
            where = f"frontends.{other.name}"
            if (fe.protocol, fe.port) == (other.protocol, other.port):
                what = f"{fe.protocol.value} port {fe.port}" if fe.port else "protocol any"
                message = f"{prefix} {what} is already used by {where}"
            elif (fe.port == 0) != (other.port == 0):
                message = (
                    f"{prefix}: an all-port (protocol any) and a per-port frontend cannot "
                    f"share a prefix (see {where}); VPP refuses it"
                )
            else:
                message = (
                    f"{prefix}: encap {fe.encap.value} differs from {where} "
                    f"({other.encap.value}); VPP needs one encap per prefix"
                )
            top.problems.append(Problem(f"frontends.{fe.name}.address", message))
