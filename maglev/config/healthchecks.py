"""Per-object validator for healthchecks: one named YAML mapping -> a frozen `HealthCheck`.

Knows which keys each check type accepts (from `maglev.config.schema`), the defaults of the
well-known ports and the rule for namespace names (from `maglev.model`, shared with the probes),
and the small languages inside a check (status ranges, jitter, exec placeholders and environment,
and which reply regexes are cheap enough to run on a check worker). Records every problem with its
key path; called by `maglev.config.loader` on the thread loading the config.
"""

from __future__ import annotations

import re

from maglev.config import schema
from maglev.config.fields import Node, format_duration, got, parse_fraction, show
from maglev.config.regexcost import backtracking_risk
from maglev.model import DEFAULT_PORTS, CheckType, FlapDamping, HealthCheck, netns_name_ok

CHECK_TYPES = {t.value: t for t in CheckType}

_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
"""Characters that would end or split an HTTP request line or header."""
_STATUS = re.compile(r"^\s*([0-9]{1,6})\s*(?:-\s*([0-9]{1,6})\s*)?$")


def healthcheck(name: str, node: Node) -> HealthCheck | None:
    """The healthcheck `name` from its mapping, or None when its type is missing or unknown."""
    if not node.require("type"):
        node.check_keys(_ALL_CHECK_KEYS)
        return None
    ctype = node.choice("type", CHECK_TYPES, None)
    if ctype is None:
        node.check_keys(_ALL_CHECK_KEYS)
        return None
    node.check_keys(schema.healthcheck_keys(ctype), schema.misplaced_healthcheck_keys(ctype))
    d = HealthCheck(name=name, type=ctype)
    interval = node.duration("interval", d.interval)
    timeout = node.duration("timeout", d.timeout)
    if timeout > interval:
        node.add(
            "timeout",
            f"{format_duration(timeout)} exceeds interval {format_duration(interval)}",
        )
    if ctype is CheckType.TCP:
        node.require("port", " for a tcp healthcheck")
    port = node.integer("port", DEFAULT_PORTS.get(ctype), 1, 65535)
    fields: dict[str, object] = {
        "port": port,
        "interval": interval,
        "fast_interval": node.duration("fast-interval", d.fast_interval),
        "down_interval": node.duration("down-interval", d.down_interval),
        "timeout": timeout,
        "rise": node.integer("rise", d.rise, 1, 1000),
        "fall": node.integer("fall", d.fall, 1, 1000),
        "jitter": jitter(node, d.jitter),
        "netns": netns(node),
        "source_ip4": node.address("source-ip4", 4),
        "source_ip6": node.address("source-ip6", 6),
        "flap_damping": flap_damping(node),
    }
    if ctype is CheckType.TCP:
        fields.update(send=node.text("send", None), expect=reply_regex(node, "expect"))
    elif ctype in (CheckType.HTTP, CheckType.HTTPS):
        fields.update(http_fields(node, ctype, d))
    elif ctype is CheckType.DNS:
        node.require("query-name", " for a dns healthcheck")
        fields.update(
            query_name=node.text("query-name", None),
            query_type=node.choice("query-type", _upper(schema.DNS_QUERY_TYPES), d.query_type),
            expect_rcode=node.choice("expect-rcode", _upper(schema.DNS_RCODES), d.expect_rcode),
            expect_answer=node.text("expect-answer", None),
        )
    elif ctype is CheckType.EXEC:
        fields.update(exec_fields(node, port))
    return HealthCheck(name=name, type=ctype, **fields)  # type: ignore[arg-type]


_ALL_CHECK_KEYS = tuple(dict.fromkeys(k for t in CheckType for k in schema.healthcheck_keys(t)))


def _upper(words: tuple[str, ...]) -> dict[str, str]:
    return {w: w for w in words}


def jitter(node: Node, default: float) -> float:
    """`10%` or a fraction 0..0.5 of each interval."""
    raw = node.raw("jitter")
    if raw is None:
        return default
    value = parse_fraction(raw, 0.5)
    if value is None:
        node.add("jitter", f"expected a percentage like 10% or a fraction 0..0.5, {got(raw)}")
        return default
    if not 0 <= value <= 0.5:
        node.add("jitter", f"{show(raw)} is not in 0..0.5 (0%..50%)")
        return default
    return value


def flap_damping(node: Node) -> FlapDamping | None:
    """`flap-damping`: absent, off; a mapping (`{}`: the defaults), on."""
    if not node.has("flap-damping"):
        return None
    fd = node.child("flap-damping")
    if fd is None:  # not a mapping: reported
        return None
    fd.check_keys(schema.FLAP_DAMPING)
    d = FlapDamping()
    penalty = fd.integer("penalty", int(d.penalty), 1, 1_000_000)
    suppress = fd.integer("suppress", int(d.suppress), 1, 1_000_000_000)
    reuse = fd.integer("reuse", int(d.reuse), 1, 1_000_000_000)
    half_life = fd.duration("half-life", d.half_life)
    max_suppress = fd.duration("max-suppress", d.max_suppress)
    if reuse >= suppress:
        fd.add("reuse", f"{reuse} must be less than suppress ({suppress})")
    if max_suppress < half_life:
        fd.add(
            "max-suppress",
            f"{format_duration(max_suppress)} is shorter than half-life"
            f" {format_duration(half_life)}",
        )
    return FlapDamping(
        penalty=float(penalty),
        half_life=half_life,
        suppress=float(suppress),
        reuse=float(reuse),
        max_suppress=max_suppress,
    )


def netns(node: Node) -> str | None:
    name = node.text("netns", None)
    if name is not None and not netns_name_ok(name):
        node.add("netns", f"{show(name)} is not a network namespace name")
        return None
    return name


def http_fields(node: Node, ctype: CheckType, d: HealthCheck) -> dict[str, object]:
    path = node.text("path", d.path)
    if not path.startswith("/"):
        node.add("path", f"{show(path)} must start with /")
    elif _UNSAFE.search(path):
        node.add("path", f"{show(path)} holds spaces or control characters (percent-encode them)")
    fields: dict[str, object] = {
        "path": path,
        "host": header_word(node, "host"),
        "method": node.choice("method", _upper(schema.HTTP_METHODS), d.method),
        "expect_status": expect_status(node, d.expect_status),
        "expect_body": reply_regex(node, "expect-body"),
    }
    if ctype is CheckType.HTTPS:
        fields.update(https_fields(node, d))
    return fields


def https_fields(node: Node, d: HealthCheck) -> dict[str, object]:
    verify = node.boolean("verify", d.verify)
    ca_file = node.text("ca-file", None)
    if ca_file is not None and not verify:
        node.add("ca-file", f"{show(ca_file)} has no effect unless verify: true")
    server_name = header_word(node, "server-name")
    return {"server_name": server_name, "verify": verify, "ca_file": ca_file}


def header_word(node: Node, key: str) -> str | None:
    """A host name for a header or SNI: one word, since it goes verbatim into the request."""
    value = node.text(key, None)
    if value is not None and _UNSAFE.search(value):
        node.add(key, f"{show(value)} holds spaces or control characters")
        return None
    return value


def expect_status(node: Node, default: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """`200`, `"200-299"`, or a list of those; codes 100..599."""
    raw = node.raw("expect-status")
    if raw is None:
        return default
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        node.add("expect-status", "needs at least one status code or range")
        return default
    ranges: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        where = f"expect-status[{i}]" if isinstance(raw, list) else "expect-status"
        span = status_range(item)
        if span is None:
            node.add(where, f"expected a status code or range like 200-299, {got(item)}")
        elif not 100 <= span[0] <= span[1] <= 599:
            node.add(where, f"{show(item)} is not a range of HTTP status codes in 100..599")
        else:
            ranges.append(span)
    return tuple(ranges) if len(ranges) == len(items) else default


def status_range(item: object) -> tuple[int, int] | None:
    if isinstance(item, int) and not isinstance(item, bool):
        return (item, item)
    if isinstance(item, str) and (m := _STATUS.match(item)):
        lo = int(m.group(1))
        return (lo, int(m.group(2)) if m.group(2) else lo)
    return None


def exec_fields(node: Node, port: int | None) -> dict[str, object]:
    shell = node.boolean("shell", False)
    node.require("command", " for an exec healthcheck")
    raw = node.raw("command")
    command: tuple[str, ...] = ()
    if raw is None:
        pass
    elif shell:
        if isinstance(raw, str) and raw.strip():
            command = (raw,)
        else:
            node.add("command", f"expected one shell command string (shell: true), {got(raw)}")
    elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
        command = tuple(raw)
    elif isinstance(raw, str):
        node.add("command", f"{show(raw)}: expected a list of argv strings (or set shell: true)")
    else:
        node.add("command", f"expected a non-empty list of argv strings, {got(raw)}")
    for i, arg in enumerate(command):
        placeholders(node, "command" if shell else f"command[{i}]", arg, port)
    return {"command": command, "shell": shell, "environment": environment(node)}


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def environment(node: Node) -> tuple[tuple[str, str], ...]:
    """`environment`: NAME: value pairs for the command, sorted (reordering them is no change).
    Values are strings: an integer is taken as its digits; true, 1.5 or null are not guessed at."""
    env = node.child("environment")
    if env is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for name, raw in env.data.items():
        if not _ENV_NAME.match(name):
            env.add(name, f"{show(name)} is not an environment variable name (A-Z, a-z, 0-9, _)")
        elif isinstance(raw, bool) or not isinstance(raw, str | int):
            env.add(name, f"expected a string (quote it), {got(raw)}")
        elif "\x00" in str(raw):
            env.add(name, f"{show(raw)} holds a NUL character")
        else:
            pairs.append((name, str(raw)))
    return tuple(sorted(pairs))


def placeholders(node: Node, where: str, arg: str, port: int | None) -> None:
    """`{name}` is a placeholder, and only {address} and {port} exist.

    The exec check substitutes exactly those two words, so any other brace text passes through
    unchanged: a shell's `${VAR}` (the `$` marks it as the shell's) or awk's `{print $1}`.
    """
    for name in _PLACEHOLDER.findall(arg):
        if name not in schema.EXEC_PLACEHOLDERS:
            node.add(
                where,
                f"unknown placeholder {{{name}}} in {show(arg)} (only {{address}} and {{port}})",
            )
        elif name == "port" and port is None:
            node.add(where, f"{show(arg)} uses {{port}} but the healthcheck sets no port")


# --- reply regexes ----------------------------------------------------------------------------
# Judged by `regexcost.backtracking_risk` (why a structural check: see there).


def reply_regex(node: Node, key: str) -> str | None:
    """A regex a probe may run over a backend's reply: valid, and cheap whatever the reply."""
    value = node.regex(key, None)
    if value is None:
        return None
    try:
        why = backtracking_risk(value)
    # The probes compile the UTF-8 bytes: what is valid as text may not be as bytes (`\u00e9`).
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        reason = str(e) if isinstance(e, re.error) else type(e).__name__
        node.add(key, f"{show(value)} is not a valid regular expression over bytes: {reason}")
        return None
    if why is not None:
        node.add(
            key,
            f"{show(value)} can backtrack catastrophically ({why}); a reply crafted for it would"
            " stall the check worker, so simplify it (a search needs no leading or trailing .*)",
        )
        return None
    return value
