"""The emulator's `cli_inband` commands: VPP's lb `show` commands, plus one of its own.

- `show lb`, `show lb vips`, `show lb vips verbose`: as the lb plugin formats them, quirks
  included (per-VIP counters and `flows` are always 0: no traffic is emulated; `dpo:` shows the
  AS's pool index).
- `show version`.
- Emulator-only: `show lb vip <prefix> [protocol <P> port <N>] buckets` prints the VIP's full
  new-flow table, one `bucket: address` line per bucket (`drop` when no AS owns it). A real VPP
  has no such command.

Called by `handlers.Api` on the server thread with the state lock held. Returns (retval, text).
"""

from __future__ import annotations

import ipaddress

from maglev.vppsim import lb

MAX_CLI_BUCKETS = 1 << 20
_COUNTERS = (
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
)


def fmt_address(addr16: bytes) -> str:
    if lb.is_ip4(addr16):
        return str(ipaddress.IPv4Address(addr16[12:]))
    return str(ipaddress.IPv6Address(addr16))


def fmt_prefix(vip: lb.Vip) -> str:
    if vip.plen >= 96 and lb.is_ip4(vip.prefix):
        return f"{fmt_address(vip.prefix)}/{vip.plen - 96}"
    return f"{ipaddress.IPv6Address(vip.prefix)}/{vip.plen}"


def show_lb(state: lb.LbState) -> str:
    # No per-core lines: VPP prints them only for sticky tables, created by the first packet.
    return (
        f"lb_main ip4-src-address: {ipaddress.IPv4Address(state.ip4_src)} \n"
        f" ip6-src-address: {ipaddress.IPv6Address(state.ip6_src)} \n"
        f" #vips: {len(state.vips)}\n"
        f" #ass: {len(state.ass) - 1}\n"
    )


def _swap16(v: int) -> int:
    return (v & 0xFF) << 8 | v >> 8


def _nat_args(vip: lb.Vip) -> str:
    # The plugin prints the VIP port through ntohs() although it keeps it in host order.
    kind = "clusterip" if vip.union_byte == 0 else "nodeport"
    return f"type:{kind} port:{_swap16(vip.port)} target_port:{vip.target_port}"


def _vip_line(state: lb.LbState, vip: lb.Vip) -> str:
    n_as = sum(1 for _ in vip.as_slots())
    line = (
        f"{lb.TYPE_NAMES[vip.type]} {fmt_prefix(vip)} new_size:{vip.new_length} #as:{n_as}"
        f"{'' if vip.used else ' removed'}"
    )
    if vip.port != 0:
        line += f"  protocol:{vip.protocol} port:{vip.port} "
    if vip.type == lb.IP4_L3DSR:
        line += f"  dscp:{vip.dscp}"
    elif vip.type in (lb.IP4_NAT4, lb.IP6_NAT6):
        line += " " + _nat_args(vip)
    return line


def _vip_verbose(state: lb.LbState, vip: lb.Vip) -> str:
    out = [
        f" {lb.TYPE_NAMES[vip.type]} [{vip.index}] {fmt_prefix(vip)}"
        f"{' src_ip_sticky' if vip.src_ip_sticky else ''}{'' if vip.used else ' removed'}\n",
        f"  new_size:{vip.new_length}\n",
    ]
    if vip.port != 0:
        out.append(f"  protocol:{vip.protocol} port:{vip.port}\n")
    if vip.type == lb.IP4_L3DSR:
        out.append(f"  dscp:{vip.dscp}\n")
    elif vip.type in (lb.IP4_NAT4, lb.IP6_NAT6):
        out.append("  " + _nat_args(vip))  # no newline: so does the plugin
    out.append("  counters:\n")
    out.extend(f"    {name}: 0\n" for name in _COUNTERS)
    slots = list(vip.as_slots())
    out.append(f"  #as:{len(slots)}\n")
    for ai in slots:
        a = state.as_(ai)
        # dpo: the emulator has no DPO pool; the AS's pool index stands in for it.
        out.append(
            f"    {fmt_address(a.address)} weight:{a.weight} buckets:{state.num_buckets(vip, a)}"
            f" flows:0 dpo:{ai} {'used' if a.used else ' removed'}\n"
        )
    return "".join(out)


def _find_vip(state: lb.LbState, words: list[str]) -> lb.Vip | None:
    net = ipaddress.ip_network(words[0], strict=False)
    protocol, port = lb.PORT_ALL_PROTOCOL, 0
    rest = words[1:]
    while len(rest) >= 2:
        key, value = rest[0], rest[1]
        if key == "protocol":
            protocol = {"tcp": 6, "udp": 17}.get(value) or int(value)
        elif key == "port":
            port = int(value)
        else:
            raise ValueError(f"unknown input '{key}'")
        rest = rest[2:]
    if rest:
        raise ValueError(f"unknown input '{rest[0]}'")
    if port == 0:
        protocol = lb.PORT_ALL_PROTOCOL
    if net.version == 4:
        prefix, plen = bytes(12) + net.network_address.packed, net.prefixlen + 96
    else:
        prefix, plen = net.network_address.packed, net.prefixlen
    return state.lookup(prefix, plen, protocol, port)


def show_buckets(state: lb.LbState, words: list[str]) -> tuple[int, str]:
    try:
        vip = _find_vip(state, words)
    except ValueError as e:
        return -1, f"show lb vip: {e}\n"
    if vip is None:
        return lb.NO_SUCH_ENTRY, "show lb vip: no such VIP\n"
    if vip.new_length > MAX_CLI_BUCKETS:
        return -1, f"show lb vip: {vip.new_length} buckets is too many to print\n"
    table = state.bucket_table(vip.index)
    return 0, "".join(
        f"{i}: {'drop' if a is None else fmt_address(a)}\n" for i, a in enumerate(table)
    )


def run(state: lb.LbState, cmd: str, version: str = "") -> tuple[int, str]:
    words = cmd.split()
    if words[:2] == ["show", "lb"]:
        rest = words[2:]
        if not rest:
            return 0, show_lb(state)
        # `show lb vips` prints each VIP with "%U\n", hence the blank line after verbose ones.
        if rest == ["vips"]:
            return 0, "".join(_vip_line(state, v) + "\n" for _, v in state.all_vips())
        if rest == ["vips", "verbose"]:
            return 0, "".join(_vip_verbose(state, v) + "\n" for _, v in state.all_vips())
        if rest[0] == "vip" and len(rest) >= 3 and rest[-1] == "buckets":
            return show_buckets(state, rest[1:-1])
    if words == ["show", "version"]:
        return 0, f"vpp v{version} built by maglev-vppsim\n"
    return -1, f"unknown input `{cmd}'\n"
