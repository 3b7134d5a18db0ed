"""The emulated lb plugin: VIP and AS pools, handler semantics and return codes of VPP 26.10.

`LbState` mirrors the plugin's data structures closely enough that every observable quirk comes out
the same: pool slots reused LIFO (VIP pool and global AS pool with placeholder slot 0, per-VIP
`as_indexes` pools), lingering deleted ASes and VIPs until time-based garbage collection, the
checks of each handler in the plugin's order, and per-AS bucket counts of the weighted Maglev
table. Owned by the emulator's server thread (`maglev-vppsim`); tests may call it directly when
the server is not running.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from maglev.table import counts_in_order, maglev_table

# Return codes (vnet/error.h)
OK = 0
INVALID_SW_IF_INDEX = -2
NO_SUCH_ENTRY = -6
INVALID_VALUE = -7
INVALID_MEMORY_SIZE = -70
INVALID_ARGUMENT = -73
VALUE_EXIST = -81
INVALID_ADDRESS_FAMILY = -97

# lb_vip_type_t
IP6_GRE6, IP6_GRE4, IP4_GRE6, IP4_GRE4, IP4_L3DSR, IP4_NAT4, IP6_NAT6 = range(7)
# API encap (lb_encap_type)
ENCAP_GRE4, ENCAP_GRE6, ENCAP_L3DSR, ENCAP_NAT4, ENCAP_NAT6 = range(5)
_IP4_TYPES = {
    ENCAP_GRE4: IP4_GRE4,
    ENCAP_GRE6: IP4_GRE6,
    ENCAP_L3DSR: IP4_L3DSR,
    ENCAP_NAT4: IP4_NAT4,
}
_IP6_TYPES = {ENCAP_GRE4: IP6_GRE4, ENCAP_GRE6: IP6_GRE6, ENCAP_NAT6: IP6_NAT6}
TYPE_TO_ENCAP = {
    IP6_GRE6: ENCAP_GRE6,
    IP6_GRE4: ENCAP_GRE4,
    IP4_GRE6: ENCAP_GRE6,
    IP4_GRE4: ENCAP_GRE4,
    IP4_L3DSR: ENCAP_L3DSR,
    IP4_NAT4: ENCAP_NAT4,
    IP6_NAT6: ENCAP_NAT6,
}
TYPE_NAMES = {
    IP6_GRE6: "ip6-gre6",
    IP6_GRE4: "ip6-gre4",
    IP4_GRE6: "ip4-gre6",
    IP4_GRE4: "ip4-gre4",
    IP4_L3DSR: "ip4-l3dsr",
    IP4_NAT4: "ip4-nat4",
    IP6_NAT6: "ip6-nat6",
}
_ENCAP_IP4 = frozenset((IP6_GRE4, IP4_GRE4, IP4_L3DSR, IP4_NAT4))
_VIP_IS_IP4 = frozenset((IP4_GRE6, IP4_GRE4, IP4_L3DSR, IP4_NAT4))

GARBAGE_RUN = 60  # LB_GARBAGE_RUN: minimum seconds between two GCs of a VIP
CONCURRENCY_TIMEOUT = 10  # LB_CONCURRENCY_TIMEOUT: seconds a deleted AS lingers at least
DEFAULT_BUCKETS = 1024
DEFAULT_TIMEOUT = 40
PORT_ALL_PROTOCOL = 255

ZERO12 = bytes(12)


def is_ip4(addr16: bytes) -> bool:
    """ip46_address_is_ip4: the first twelve bytes are zero."""
    return addr16[:12] == ZERO12


def normalize(addr16: bytes, plen: int) -> bytes:
    """ip46_prefix_normalize: clear the host bits beyond plen."""
    if plen >= 128:
        return addr16
    value = int.from_bytes(addr16, "big")
    mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
    return (value & mask).to_bytes(16, "big")


def is_pow2(n: int) -> bool:
    return n & (n - 1) == 0  # like clib's is_pow2, 0 counts as a power of two


class Pool:
    """A VPP pool: indices of freed elements are reused last-freed-first."""

    __slots__ = ("free", "items")

    def __init__(self) -> None:
        self.items: list[object | None] = []
        self.free: list[int] = []

    def get(self) -> int:
        if self.free:
            return self.free.pop()
        self.items.append(None)
        return len(self.items) - 1

    def put(self, index: int) -> None:
        self.items[index] = None
        self.free.append(index)

    def __len__(self) -> int:
        return len(self.items) - len(self.free)


@dataclass(slots=True)
class As:
    address: bytes
    vip_index: int
    used: bool
    weight: int
    last_used: int


@dataclass(slots=True, eq=False)
class Vip:
    index: int
    prefix: bytes  # 16-byte ip46, normalised
    plen: int  # IPv4 prefixes have len + 96
    protocol: int
    port: int
    type: int
    new_length: int
    used: bool = True
    src_ip_sticky: bool = False
    dscp: int = 0
    union_byte: int = 0  # the byte lb_vip_details reports as both dscp and srv_type
    target_port: int = 0
    last_gc: int = 0
    # as_indexes pool: slot -> global AS index (None = free slot)
    slots: list[int | None] = field(default_factory=list)
    free_slots: list[int] = field(default_factory=list)
    by_address: dict[bytes, int] = field(default_factory=dict)  # live or lingering AS indices
    # Live ASes in address order (the table's sort order) with their weights.
    order: list[bytes] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    # The table as of the last update: its inputs (order, weights, length) are captured at
    # each update and the buckets per AS computed from them when first read, so a burst of
    # weight changes does not pay for tables nobody looks at.
    table_inputs: tuple[tuple[bytes, ...], tuple[int, ...], int] = ((), (), 0)
    buckets: list[int] | None = None

    @property
    def key(self) -> tuple[bytes, int, int, int]:
        return (self.prefix, self.plen, self.protocol, self.port)

    def as_slots(self) -> Iterator[int]:
        for s in self.slots:
            if s is not None:
                yield s


class LbState:
    """The plugin's state. `now()` returns seconds since the emulated VPP started."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.ip4_src = b"\xff" * 4
        self.ip6_src = b"\xff" * 16
        self.sticky_buckets = DEFAULT_BUCKETS
        self.flow_timeout = DEFAULT_TIMEOUT
        self.vips = Pool()
        self.ass = Pool()
        # Slot 0 of both pools is the placeholder: the all-ff VIP and the drop AS.
        self.vips.items.append(Vip(0, b"\xff" * 16, 128, 0, 0, IP6_GRE6, 1))
        self.vip_by_key: dict[tuple[bytes, int, int, int], Vip] = {}  # live VIPs
        self._stale_union: dict[int, tuple[int, int]] = {}  # freed VIP slot -> encap args
        self.ass.items.append(As(b"\xff" * 16, 0, False, 0, 0))
        self.last_gc_process = 0

    def now(self) -> int:
        return int(self._now()) & 0xFFFFFFFF

    # ---- lookups -------------------------------------------------------------------------------

    def vip(self, index: int) -> Vip:
        v = self.vips.items[index]
        assert isinstance(v, Vip)
        return v

    def as_(self, index: int) -> As:
        a = self.ass.items[index]
        assert isinstance(a, As)
        return a

    def live_vips(self) -> Iterator[tuple[int, Vip]]:
        for i, v in enumerate(self.vips.items):
            if i and isinstance(v, Vip) and v.used:
                yield i, v

    def all_vips(self) -> Iterator[tuple[int, Vip]]:
        for i, v in enumerate(self.vips.items):
            if i and isinstance(v, Vip):
                yield i, v

    def find_vip(self, prefix: bytes, plen: int, protocol: int, port: int) -> int | None:
        """lb_vip_find_index: only live VIPs match."""
        v = self.vip_by_key.get((prefix, plen, protocol, port))
        return None if v is None else v.index

    def find_as(self, vip: Vip, address: bytes) -> int | None:
        """lb_as_find_index_vip: live or lingering AS of this VIP with this address."""
        return vip.by_address.get(address)

    # ---- table ---------------------------------------------------------------------------------

    def update_table(self, vip: Vip) -> None:
        """lb_vip_update_new_flow_table, reduced to what the API shows: buckets per AS."""
        vip.table_inputs = (tuple(vip.order), tuple(vip.weights), vip.new_length)
        vip.buckets = None

    def num_buckets(self, vip: Vip, a: As) -> int:
        if not a.used:
            return 0
        order, weights, length = vip.table_inputs
        if vip.buckets is None:
            vip.buckets = counts_in_order(weights, length)
        return vip.buckets[bisect_left(order, a.address)]

    @staticmethod
    def _set_live(vip: Vip, address: bytes, weight: int) -> None:
        i = bisect_left(vip.order, address)
        if i < len(vip.order) and vip.order[i] == address:
            vip.weights[i] = weight
        else:
            vip.order.insert(i, address)
            vip.weights.insert(i, weight)

    @staticmethod
    def _unset_live(vip: Vip, address: bytes) -> None:
        i = bisect_left(vip.order, address)
        if i < len(vip.order) and vip.order[i] == address:
            del vip.order[i]
            del vip.weights[i]

    def bucket_table(self, vip_index: int) -> list[bytes | None]:
        """The VIP's full new-flow table: the AS address per bucket, None where traffic drops."""
        vip = self.vip(vip_index)
        return maglev_table(zip(vip.order, vip.weights, strict=True), vip.new_length)

    # ---- garbage collection --------------------------------------------------------------------

    def vip_gc(self, vip: Vip, at: int | None = None) -> None:
        """lb_vip_garbage_collection: rate-limited; frees deleted ASes past their timeout.

        No traffic is emulated, so no sticky entry ever holds a reference on an AS."""
        now = self.now() if at is None else at
        if not now > vip.last_gc + GARBAGE_RUN:
            return
        vip.last_gc = now
        for slot, ai in enumerate(vip.slots):
            if ai is None:
                continue
            a = self.as_(ai)
            if not a.used and now > a.last_used + CONCURRENCY_TIMEOUT:
                vip.slots[slot] = None
                vip.free_slots.append(slot)
                del vip.by_address[a.address]
                # pool_put does not clear memory: a later pool_get sees the stale last_used.
                self.ass.free.append(ai)

    def gc_process(self) -> None:
        """The lb-gc-process node: wakes every GARBAGE_RUN seconds of VPP time.

        Nothing observes the plugin between requests, so the wake-ups that fell due since the
        last request are run now, each at its own time (a long clock jump runs only the last
        few: earlier ones could not free anything the later ones would not)."""
        now = self.now()
        due = self.last_gc_process + GARBAGE_RUN
        if now < due:
            return
        ticks = (now - due) // GARBAGE_RUN + 1
        first = due + max(0, ticks - 3) * GARBAGE_RUN
        for at in range(first, now + 1, GARBAGE_RUN):
            self._gc_all(at)
            self.last_gc_process = at

    def _gc_all(self, at: int) -> None:
        """lb_garbage_collection: GC every VIP; free deleted VIPs left without ASes."""
        for i, v in list(self.all_vips()):
            self.vip_gc(v, at)
            if not v.used and not any(s is not None for s in v.slots):
                self.vips.put(i)
                self._stale_union[i] = (v.union_byte, v.target_port)

    # ---- handlers ------------------------------------------------------------------------------

    def conf(self, ip4: bytes, ip6: bytes, buckets: int, timeout: int) -> int:
        if buckets != 0xFFFFFFFF and not is_pow2(buckets):
            return INVALID_MEMORY_SIZE
        self.ip4_src = ip4
        self.ip6_src = ip6
        if buckets != 0xFFFFFFFF:
            self.sticky_buckets = buckets
        if timeout != 0xFFFFFFFF:
            self.flow_timeout = timeout
        return OK

    def add_vip(
        self,
        prefix: bytes,
        plen: int,
        protocol: int,
        port: int,
        encap: int,
        dscp: int,
        srv_type_byte: int,
        target_port: int,
        new_length: int,
        src_ip_sticky: bool,
    ) -> int:
        prefix = normalize(prefix, plen)
        ip4 = plen >= 96 and is_ip4(prefix)
        vtype = (_IP4_TYPES if ip4 else _IP6_TYPES).get(encap, IP6_GRE6)
        if self.find_vip(prefix, plen, protocol, port) is not None:
            return VALUE_EXIST
        if port != 0:
            if self.find_vip(prefix, plen, PORT_ALL_PROTOCOL, 0) is not None:
                return VALUE_EXIST
        else:
            if any(
                v.port != 0 and v.plen == plen and v.prefix == prefix for _, v in self.live_vips()
            ):
                return VALUE_EXIST
        if port != 0:
            # Only the first other live VIP of the prefix (pool order) is compared; all of them
            # share one type anyway, since this check admitted each.
            for _, v in self.live_vips():
                if (
                    v.plen == plen
                    and v.prefix == prefix
                    and (v.protocol, v.port) != (protocol, port)
                ):
                    if v.type != vtype:
                        return INVALID_ARGUMENT
                    break
        # new_length 0 passes is_pow2 and crashes a real VPP; the emulator refuses it instead.
        if new_length == 0 or not is_pow2(new_length):
            return INVALID_MEMORY_SIZE
        if (vtype in _VIP_IS_IP4) != ip4:
            return INVALID_ADDRESS_FAMILY
        index = self.vips.get()
        vip = Vip(
            index, prefix, plen, protocol, port, vtype, new_length, src_ip_sticky=src_ip_sticky
        )
        # pool_get does not clear memory: the encap-args union keeps what a freed VIP in this
        # slot left there, except the fields this VIP's type writes.
        vip.union_byte, vip.target_port = self._stale_union.pop(index, (0, 0))
        if vtype == IP4_L3DSR:
            vip.dscp = dscp & 0x3F
            vip.union_byte = vip.dscp
        elif vtype in (IP4_NAT4, IP6_NAT6):
            vip.union_byte = srv_type_byte
            vip.target_port = target_port
        vip.last_gc = self.now()
        self.vips.items[index] = vip
        self.vip_by_key[vip.key] = vip
        return OK

    def del_vip(self, prefix: bytes, plen: int, protocol: int, port: int) -> int:
        index = self.find_vip(normalize(prefix, plen), plen, protocol, port)
        if index is None:
            return NO_SUCH_ENTRY
        vip = self.vip(index)
        # lb_vip_del deletes every AS (live or lingering) through the AS delete path, which runs
        # the VIP's GC first and then marks them all, even those the GC has just freed.
        doomed = [self.as_(ai) for ai in vip.as_slots()]
        if doomed:
            self.vip_gc(vip)
            now = self.now()
            for a in doomed:
                a.used = False
                a.last_used = now
        vip.order.clear()
        vip.weights.clear()
        self.update_table(vip)
        vip.used = False
        del self.vip_by_key[vip.key]
        return OK

    def lookup(self, prefix: bytes, plen: int, protocol: int, port: int) -> Vip | None:
        """The live VIP an AS/flush request names (prefix not yet normalised)."""
        if plen < 128:
            prefix = normalize(prefix, plen)
        return self.vip_by_key.get((prefix, plen, protocol, port))

    def add_as(self, vip: Vip, address: bytes, weight: int) -> int:
        ai = self.find_as(vip, address)
        if ai is not None:
            a = self.as_(ai)
            if a.used:
                return VALUE_EXIST
            a.used = True
            a.weight = weight
        else:
            if is_ip4(address) != (vip.type in _ENCAP_IP4):
                return INVALID_ADDRESS_FAMILY
            ai = self.ass.get()
            old = self.ass.items[ai]
            stale = old.last_used if isinstance(old, As) else 0
            self.ass.items[ai] = As(address, vip.index, True, weight, stale)
            vip.by_address[address] = ai
            if vip.free_slots:
                vip.slots[vip.free_slots.pop()] = ai
            else:
                vip.slots.append(ai)
        self._set_live(vip, address, weight)
        self.update_table(vip)
        self.vip_gc(vip)
        return OK

    def del_as(self, vip: Vip, address: bytes) -> int:
        ai = self.find_as(vip, address)
        if ai is None:
            return NO_SUCH_ENTRY
        self.vip_gc(vip)
        a = self.as_(ai)
        a.used = False
        a.last_used = self.now()
        self._unset_live(vip, address)
        self.update_table(vip)
        return OK

    def set_weight(self, vip: Vip, address: bytes, weight: int) -> int:
        ai = self.find_as(vip, address)
        if ai is None:
            return NO_SUCH_ENTRY
        a = self.as_(ai)
        if not a.used:
            return NO_SUCH_ENTRY
        a.weight = weight
        self._set_live(vip, address, weight)
        self.update_table(vip)
        return OK
