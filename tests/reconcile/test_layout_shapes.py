"""`build_layout` keeps each frontend's shape while the frontend and its backends are the very
objects it was made from (a reload's memo keeps unchanged entries): the layout is the one a
fresh build makes, and a changed backend is seen."""

from __future__ import annotations

from maglev.config import load_text
from maglev.config.loader import Memo
from maglev.reconcile.desired import Layout, build_layout

FIELDS = (
    "fe_vip", "fe_attrs", "fe_flush", "fe_slot_start", "slot_as", "slot_backend", "fe_pool_start",
    "pool_member_start", "member_slot", "member_weight", "member_counted", "fe_guard_conf",
)  # fmt: skip


def text(frontends: int = 30, moved: int | None = None, weight: int = 100) -> str:
    lines = ["vpp: {api-socket: embedded, lb: {ip4-src-address: 198.51.100.1}}", "backends:"]
    for i in range(frontends * 4):
        last = 200 if i == moved else i % 250 + 1
        lines.append(f"  b{i}: {{address: 10.{i // 250}.0.{last}}}")
    lines.append("frontends:")
    for f in range(frontends):
        members = ", ".join(
            f"b{f * 4 + j}: {{weight: {weight if f == 0 else 100}}}" for j in range(3)
        )
        lines += [
            f"  f{f}:",
            f"    address: 192.0.2.{f + 1}",
            "    protocol: tcp",
            "    port: 80",
            "    encap: gre4",
            "    pools:",
            f"      - {{name: main, backends: {{{members}}}}}",
            f"      - {{name: spare, backends: {{b{f * 4 + 3}: {{}}}}}}",
        ]
    return "\n".join(lines) + "\n"


def same(a: Layout, b: Layout) -> None:
    for f in FIELDS:
        assert getattr(a.topology, f) == getattr(b.topology, f), f
    assert a.slot_backend_name == b.slot_backend_name
    assert a.slot_address == b.slot_address
    assert a.slot_first_pool == b.slot_first_pool
    assert dict(a.slot_index) == dict(b.slot_index)
    assert a.frontend_index == b.frontend_index and a.backend_names == b.backend_names


def test_kept_shapes_make_the_layout_a_fresh_build_makes() -> None:
    memo = Memo()
    first = build_layout(load_text(text(), memo=memo))
    for variant in (text(weight=60), text(moved=5), text(frontends=31), text(frontends=29)):
        kept = build_layout(load_text(variant, memo=memo))  # shares objects with the last
        fresh = build_layout(load_text(variant))  # objects of its own: no shape kept
        same(kept, fresh)
    assert first.slot_index.get(("f0", "b0")) == 0


def test_a_moved_backend_is_seen_through_a_kept_frontend() -> None:
    memo = Memo()
    build_layout(load_text(text(), memo=memo))
    moved = build_layout(load_text(text(moved=1), memo=memo))  # b1 (of f0) now at 10.0.0.200
    i = moved.slot_backend_name.index("b1", 0, moved.topology.fe_slot_start[1])
    assert str(moved.slot_address[i]) == "10.0.0.200"
    assert moved.slot_backend_name[:4] == ("b0", "b2", "b3", "b1")  # address order


def test_slot_index_reads_through_the_shapes() -> None:
    layout = build_layout(load_text(text(frontends=2)))
    assert len(layout.slot_index) == 8
    assert layout.slot_index[("f1", "b4")] == 4
    assert layout.slot_index.get(("f1", "b0")) is None  # not a backend of f1
    assert layout.slot_index.get(("nope", "b0")) is None
    assert ("f0", "b3") in layout.slot_index
