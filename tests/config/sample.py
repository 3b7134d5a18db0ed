"""A valid config as plain data, and helpers to break it one key at a time."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from maglev.config import load_text
from maglev.errors import ConfigInvalid, Problem
from maglev.model import Config

DELETE = object()

BASE: dict[str, Any] = {
    "vpp": {
        "api-socket": "embedded",
        "unmanaged-vips": "keep",
        "lb": {"ip4-src-address": "198.51.100.1"},
    },
    "healthchecks": {
        "h": {"type": "http", "port": 8081, "interval": "2s", "timeout": "1s"},
        "t": {"type": "tcp", "port": 8082},
        "d": {"type": "dns", "query-name": "example.com"},
        "e": {"type": "exec", "command": ["check", "{address}"]},
        "s": {"type": "https"},
        "i": {"type": "icmp"},
    },
    "backends": {
        "web1": {"address": "127.0.0.11", "healthcheck": "h"},
        "web2": {"address": "127.0.0.12", "healthcheck": "t"},
        "web3": {"address": "127.0.0.13"},
    },
    "frontends": {
        "www": {
            "address": "192.0.2.80",
            "protocol": "tcp",
            "port": 80,
            "encap": "gre4",
            "pools": [
                {"name": "primary", "backends": {"web1": {"weight": 50}, "web2": {}}},
                {"name": "backup", "backends": {"web3": None}},
            ],
        }
    },
    "control": {"socket": "/tmp/maglev-test.sock"},
    "metrics": {},
    "health": {"workers": 2},
}

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    """`frontends.www.pools[0].name` -> ['frontends', 'www', 'pools', 0, 'name']."""
    return [int(idx) if idx else key for key, idx in _PART.findall(path)]


def mutate(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of `data` with `path` set to `value` (or removed, for DELETE)."""
    out = copy.deepcopy(data)
    *parents, last = split_path(path)
    node: Any = out
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


def load(data: object) -> Config:
    return load_text(yaml.safe_dump(data, sort_keys=False))


LINE = re.compile(r" \(line \d+\)$")


def bare(problems: list[Problem]) -> list[str]:
    """Problems as text without their trailing `(line N)`."""
    return [LINE.sub("", str(p)) for p in problems]


def problems_of(data: object) -> list[Problem]:
    try:
        load(data)
    except ConfigInvalid as e:
        return e.problems
    raise AssertionError("the config was accepted")
