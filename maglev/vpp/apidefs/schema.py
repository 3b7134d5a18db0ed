"""Typed form of the bundled API definitions: parses `definitions` and renders `.api.json`.

Owns the value types (`FieldDef`, `MessageDef`, `ModuleDef`, ...) that both the vpp-papi side
(through the generated JSON) and the emulator's codec read. Built once at import; pure, any thread.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from maglev.vpp.apidefs import definitions as d

BASE_TYPES = frozenset(
    ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f64", "bool", "string")
)
_HEADERS = {
    "@req": "u16 _vl_msg_id; u32 client_index; u32 context",
    "@rep": "u16 _vl_msg_id; u32 context; i32 retval",
    "@det": "u16 _vl_msg_id; u32 context",
    "@id": "u16 _vl_msg_id",
}


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field: `type` as spelled in .api.json (`u32`, `vl_api_address_t`), `length` None for a
    scalar, N for a fixed array/string, 0 for variable length (counted by `lenfield` if set)."""

    type: str
    name: str
    length: int | None = None
    lenfield: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def default(self) -> Any:
        return dict(self.options).get("default")

    def to_json(self) -> list[Any]:
        out: list[Any] = [self.type, self.name]
        if self.length is not None:
            out.append(self.length)
            if self.lenfield is not None:
                out.append(self.lenfield)
        if self.options:
            out.append(dict(self.options))
        return out


@dataclass(frozen=True, slots=True)
class MessageDef:
    module: str
    name: str
    crc: str
    fields: tuple[FieldDef, ...]
    offset: int  # index of the message within its module's ID range

    @property
    def name_crc(self) -> str:
        return f"{self.name}_{self.crc[2:]}"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def to_json(self) -> list[Any]:
        return [self.name, *(f.to_json() for f in self.fields), {"crc": self.crc, "options": {}}]


@dataclass(frozen=True, slots=True)
class StructDef:
    """A `types` or `unions` entry."""

    name: str
    fields: tuple[FieldDef, ...]

    def to_json(self) -> list[Any]:
        return [self.name, *(f.to_json() for f in self.fields)]


@dataclass(frozen=True, slots=True)
class EnumDef:
    name: str
    enumtype: str
    values: tuple[tuple[str, int], ...]

    def to_json(self) -> list[Any]:
        return [self.name, *([n, v] for n, v in self.values), {"enumtype": self.enumtype}]


@dataclass(frozen=True, slots=True)
class AliasDef:
    name: str
    type: str
    length: int | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.length is not None:
            out["length"] = self.length
        return out


@dataclass(frozen=True, slots=True)
class ModuleDef:
    name: str
    directory: str  # "core" or "plugins", as installed under /usr/share/vpp/api
    version: str
    vl_api_version: str
    imports: tuple[str, ...]
    enums: tuple[EnumDef, ...]
    unions: tuple[StructDef, ...]
    types: tuple[StructDef, ...]
    aliases: tuple[AliasDef, ...]
    messages: tuple[MessageDef, ...]
    services: tuple[tuple[str, str, bool], ...]  # (request, reply or details, is old-style dump)
    msg_count: int  # size of the module's message-ID range in VPP

    @property
    def filename(self) -> str:
        return f"{self.directory}/{self.name}.api.json"

    def to_json(self) -> dict[str, Any]:
        services: dict[str, dict[str, Any]] = {}
        for req, reply, stream in self.services:
            services[req] = {"reply": reply, "stream": True} if stream else {"reply": reply}
        return {
            "module": self.name,
            "types": [t.to_json() for t in self.types],
            "messages": [m.to_json() for m in self.messages],
            "unions": [u.to_json() for u in self.unions],
            "enums": [e.to_json() for e in self.enums],
            "enumflags": [],
            "services": services,
            "options": {"version": self.version},
            "aliases": {a.name: a.to_json() for a in self.aliases},
            "vl_api_version": self.vl_api_version,
            "imports": list(self.imports),
            "counters": [],
            "paths": [],
        }


def api_type(name: str) -> str:
    return name if name in BASE_TYPES else f"vl_api_{name}_t"


def parse_field(text: str) -> FieldDef:
    """`TYPE NAME[LEN] = DEFAULT` or `TYPE NAME | {OPTIONS}` (see `definitions`)."""
    options: dict[str, Any] = {}
    if "|" in text:
        text, opt = text.split("|", 1)
        options.update(ast.literal_eval(opt.strip()))
    if "=" in text:
        text, dflt = text.split("=", 1)
        options["default"] = ast.literal_eval(dflt.strip())
    ftype, name = text.split()
    length: int | None = None
    lenfield: str | None = None
    if name.endswith("]"):
        name, dim = name[:-1].split("[")
        if dim.isdigit():
            length = int(dim)
        else:
            length = 0
            lenfield = dim or None
    return FieldDef(api_type(ftype), name, length, lenfield, tuple(options.items()))


def parse_fields(spec: str) -> tuple[FieldDef, ...]:
    for key, expansion in _HEADERS.items():
        spec = spec.replace(key, expansion)
    return tuple(parse_field(part.strip()) for part in spec.split(";") if part.strip())


def _enums(rows: tuple[tuple[str, str, str], ...]) -> tuple[EnumDef, ...]:
    out = []
    for name, enumtype, values in rows:
        pairs = tuple((k, int(v)) for k, v in (item.split("=") for item in values.split()))
        out.append(EnumDef(name, enumtype, pairs))
    return tuple(out)


def _structs(rows: tuple[tuple[str, str], ...]) -> tuple[StructDef, ...]:
    return tuple(StructDef(name, parse_fields(spec)) for name, spec in rows)


def _aliases(rows: tuple[tuple[str, str, int | None], ...]) -> tuple[AliasDef, ...]:
    return tuple(AliasDef(n, api_type(t), length) for n, t, length in rows)


def _messages(
    module: str, rows: tuple[tuple[str, str, str], ...], offsets: tuple[int, ...] | None = None
) -> tuple[MessageDef, ...]:
    return tuple(
        MessageDef(module, name, crc, parse_fields(spec), offsets[i] if offsets else i)
        for i, (name, crc, spec) in enumerate(rows)
    )


def _services(
    messages: tuple[MessageDef, ...], dumps: dict[str, str]
) -> tuple[tuple[str, str, bool], ...]:
    names = {m.name for m in messages}
    out = []
    for m in messages:
        if m.name in dumps:
            out.append((m.name, dumps[m.name], True))
        elif m.name + "_reply" in names:
            out.append((m.name, m.name + "_reply", False))
    return tuple(out)


def _module(
    name: str,
    directory: str,
    messages: tuple[MessageDef, ...],
    msg_count: int,
    *,
    enums: tuple[EnumDef, ...] = (),
    unions: tuple[StructDef, ...] = (),
    types: tuple[StructDef, ...] = (),
    aliases: tuple[AliasDef, ...] = (),
    dumps: dict[str, str] | None = None,
    null_replies: tuple[str, ...] = (),
) -> ModuleDef:
    version, vl_api_version, imports = d.MODULE_INFO[name]
    services = _services(messages, dumps or {}) + tuple((n, "null", False) for n in null_replies)
    return ModuleDef(
        name,
        directory,
        version,
        vl_api_version,
        tuple(imports),
        enums,
        unions,
        types,
        aliases,
        messages,
        services,
        msg_count,
    )


def build_modules() -> tuple[ModuleDef, ...]:
    """The bundled modules in the order a VPP allocates their message IDs (memclnt first)."""
    memclnt = _module(
        "memclnt",
        "core",
        _messages("memclnt", d.MEMCLNT_MESSAGES),
        len(d.MEMCLNT_MESSAGES),
        types=_structs(d.MEMCLNT_TYPES),
        null_replies=d.MEMCLNT_NULL_REPLY,
    )
    vlib = _module(
        "vlib", "core", _messages("vlib", d.VLIB_MESSAGES, d.VLIB_OFFSETS), d.VLIB_MSG_COUNT
    )
    vpe = _module("vpe", "core", _messages("vpe", d.VPE_MESSAGES), d.VPE_MSG_COUNT)
    lb = _module(
        "lb",
        "plugins",
        _messages("lb", d.LB_MESSAGES),
        len(d.LB_MESSAGES),
        enums=_enums(d.IP_ENUMS) + _enums(d.LB_ENUMS),
        unions=_structs(d.IP_UNIONS),
        types=_structs(d.IP_TYPES) + _structs(d.LB_TYPES),
        aliases=_aliases(d.IP_ALIASES),
        dumps=dict(d.LB_DUMPS),
    )
    return (memclnt, vlib, vpe, lb)
