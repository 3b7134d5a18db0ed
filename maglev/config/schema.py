"""Key tables of the config file: which kebab-case keys each object type accepts.

Pure data plus the "did you mean" helper. The validators (`maglev.config.validate`) consult these
tables to report unknown and misplaced keys; `etc/maglev.yaml` documents every key listed here.
No I/O, no state; safe from any thread.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from maglev.model import CheckType

TOP = (
    "vpp",
    "healthchecks",
    "backends",
    "frontends",
    "control",
    "metrics",
    "health",
    "reload-guard",
)

VPP = ("api-socket", "api-dir", "stats-socket", "unmanaged-vips", "lb")

LB = (
    "ip4-src-address",
    "ip6-src-address",
    "sticky-buckets-per-core",
    "flow-timeout",
    "sync-interval",
    "counters-interval",
    "startup-min-delay",
    "startup-max-delay",
)

HEALTHCHECK_COMMON = (
    "type",
    "interval",
    "fast-interval",
    "down-interval",
    "timeout",
    "rise",
    "fall",
    "jitter",
    "netns",
    "source-ip4",
    "source-ip6",
    "flap-damping",
)

FLAP_DAMPING = ("penalty", "half-life", "suppress", "reuse", "max-suppress")

_HTTP = ("port", "path", "host", "method", "expect-status", "expect-body")

HEALTHCHECK_BY_TYPE: Mapping[CheckType, tuple[str, ...]] = MappingProxyType(
    {
        CheckType.TCP: ("port", "send", "expect"),
        CheckType.HTTP: _HTTP,
        CheckType.HTTPS: (*_HTTP, "server-name", "verify", "ca-file"),
        CheckType.ICMP: (),
        CheckType.DNS: ("port", "query-name", "query-type", "expect-rcode", "expect-answer"),
        CheckType.EXEC: ("port", "command", "shell", "environment"),
    }
)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")
DNS_QUERY_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
DNS_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
EXEC_PLACEHOLDERS = ("address", "port")

BACKEND = ("address", "healthcheck", "enabled")

FRONTEND = (
    "address",
    "protocol",
    "port",
    "encap",
    "dscp",
    "target-port",
    "src-ip-sticky",
    "flow-table-length",
    "flush-on-down",
    "min-healthy",
    "on-mass-failure",
    "slow-start",
    "max-churn",
    "churn-interval",
    "pools",
)

POOL = ("name", "backends")

POOL_MEMBER = ("weight", "slow-start")

SLOW_START = ("duration", "steps")

CONTROL = ("socket", "socket-group", "socket-mode", "tcp-listen", "token-file")

METRICS = ("listen",)

HEALTH = ("workers", "queue-size", "priority", "vantage")

VANTAGE = ("canaries", "max-down-fraction", "window")

CANARY = ("address", "healthcheck")

RELOAD_GUARD = ("max-deleted-frontends", "max-capacity-loss", "protect-busy-frontends")


def healthcheck_keys(check_type: CheckType) -> tuple[str, ...]:
    """Every key a healthcheck of this type accepts."""
    return HEALTHCHECK_COMMON + HEALTHCHECK_BY_TYPE[check_type]


def misplaced_healthcheck_keys(check_type: CheckType) -> dict[str, str]:
    """Keys other check types accept, each mapped to why it is wrong on this type."""
    owners: dict[str, list[str]] = {}
    for other, keys in HEALTHCHECK_BY_TYPE.items():
        for key in keys:
            owners.setdefault(key, []).append(other.value)
    own = set(healthcheck_keys(check_type))
    article = "an" if check_type.value[0] in "aeiou" else "a"
    return {
        key: f"does not apply to {article} {check_type.value} healthcheck (only {', '.join(types)})"
        for key, types in owners.items()
        if key not in own
    }


def unknown_key_message(key: str, allowed: Iterable[str]) -> str:
    """'unknown key 'intervall' (did you mean 'interval'?)', suggestions from difflib."""
    allowed = list(allowed)
    kebab = key.replace("_", "-").lower()
    if kebab in allowed:
        return f"unknown key {key!r} (did you mean {kebab!r}? keys are kebab-case)"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    if allowed:
        return f"unknown key {key!r} (expected one of: {', '.join(allowed)})"
    return f"unknown key {key!r}"
