"""Wire codec of the emulator: flat `struct` layouts compiled from maglev's API definitions.

Each message's fixed part becomes one big-endian `struct.Struct` whose values are the message's
fields flattened in order (a `vl_api_prefix_t pfx` becomes `pfx.address.af`, `pfx.address.un`,
`pfx.len`); unions take their largest arm as raw bytes. A trailing variable-length field (a
`string x[]` or a counted array) is left to the caller (`Layout.tail`). Built once at import;
immutable, used by the emulator's server thread.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass

from maglev.vpp.apidefs import MESSAGES, MODULES, FieldDef, MessageDef

_BASE = {
    "u8": "B",
    "i8": "b",
    "u16": "H",
    "i16": "h",
    "u32": "I",
    "i32": "i",
    "u64": "Q",
    "i64": "q",
    "f64": "d",
    "bool": "B",  # any non-zero byte is true; VPP does not reject 2..255
}


@dataclass(frozen=True, slots=True)
class Layout:
    """A message's fixed part: struct, flattened field names, and the variable tail if any."""

    name: str
    struct: struct.Struct
    names: tuple[str, ...]
    tail: FieldDef | None

    @property
    def size(self) -> int:
        return self.struct.size


class _Types:
    def __init__(self) -> None:
        self.structs: dict[str, tuple[FieldDef, ...]] = {}
        self.unions: dict[str, tuple[FieldDef, ...]] = {}
        self.enums: dict[str, str] = {}
        self.aliases: dict[str, tuple[str, int | None]] = {}
        for mod in MODULES:
            for t in mod.types:
                self.structs[f"vl_api_{t.name}_t"] = t.fields
            for u in mod.unions:
                self.unions[f"vl_api_{u.name}_t"] = u.fields
            for e in mod.enums:
                self.enums[f"vl_api_{e.name}_t"] = e.enumtype
            for a in mod.aliases:
                self.aliases[f"vl_api_{a.name}_t"] = (a.type, a.length)

    def size(self, ftype: str, length: int | None) -> int:
        fmt, _ = self.flatten(FieldDef(ftype, "x", length))
        return struct.calcsize(">" + fmt)

    def flatten(self, f: FieldDef, prefix: str = "") -> tuple[str, list[str]]:
        name = prefix + f.name
        ftype, length = f.type, f.length
        while ftype in self.aliases:
            target, alen = self.aliases[ftype]
            ftype = target
            if alen is not None:
                length = alen
        if ftype in self.enums:
            ftype = self.enums[ftype]
        if length == 0:
            raise ValueError(f"variable-length field {name} cannot be flattened")
        if ftype == "string" or (ftype == "u8" and length is not None):
            return f"{length}s", [name]
        if ftype in _BASE:
            if length is None:
                return _BASE[ftype], [name]
            return _BASE[ftype] * length, [f"{name}[{i}]" for i in range(length)]
        if ftype in self.unions:
            size = max(self.size(a.type, a.length) for a in self.unions[ftype])
            return f"{size}s", [name]
        if ftype in self.structs:
            if length is not None:
                raise ValueError(f"arrays of {ftype} are not supported ({name})")
            fmt = ""
            names: list[str] = []
            for sub in self.structs[ftype]:
                sfmt, snames = self.flatten(sub, name + ".")
                fmt += sfmt
                names += snames
            return fmt, names
        raise ValueError(f"unknown type {ftype} of {name}")


_TYPES = _Types()


def compile_layout(msg: MessageDef) -> Layout:
    fmt = ">"
    names: list[str] = []
    tail: FieldDef | None = None
    for f in msg.fields:
        if f.length == 0:
            tail = f
            break
        sfmt, snames = _TYPES.flatten(f)
        fmt += sfmt
        names += snames
    return Layout(msg.name, struct.Struct(fmt), tuple(names), tail)


def _compile_all() -> dict[str, Layout]:
    out = {}
    for name, msg in MESSAGES.items():
        # Messages with arrays of structs are skipped: the emulator never decodes them.
        with contextlib.suppress(ValueError):
            out[name] = compile_layout(msg)
    return out


LAYOUTS: dict[str, Layout] = _compile_all()
