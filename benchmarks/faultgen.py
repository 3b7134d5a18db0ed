"""Inputs for the fault run: malformed control requests and mutated configs, from a seed.

Everything here is pure: `requests(rng, n)` and `configs(rng, base, n)` return lists built from
a `random.Random`, so a failing case can be reproduced from the seed the run reports. Nothing
generated is a valid write request: action and weight routes get names no config has, so the
fault run can compare VPP before and after and expect no change.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

# How a request is sent: "full" sends it and half-closes (the server sees EOF after it);
# "hangup" sends (part of) it and closes without reading the answer.
FULL, HANGUP = "full", "hangup"


@dataclass(frozen=True, slots=True)
class RawRequest:
    kind: str  # which generator made it, for the report
    data: bytes
    mode: str = FULL


ROUTES = (
    ("GET", "/v1/version"),
    ("GET", "/v1/status"),
    ("GET", "/v1/frontends"),
    ("GET", "/v1/frontends/{n}"),
    ("GET", "/v1/backends"),
    ("GET", "/v1/backends/{n}"),
    ("GET", "/v1/healthchecks"),
    ("GET", "/v1/vpp/lb/state"),
    ("GET", "/v1/vpp/lb/counters"),
    ("POST", "/v1/backends/{n}/pause"),
    ("POST", "/v1/backends/{n}/disable"),
    ("PUT", "/v1/frontends/{n}/pools/{n}/backends/{n}/weight"),
    ("DELETE", "/v1/frontends/{n}/pools/{n}/backends/{n}/weight"),
    ("POST", "/v1/config/check"),
    ("GET", "/v1/events"),
)
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
           "get", "post", "GET\x00", "G E T", "", "\xff\xfe", "X" * 300)  # fmt: skip
VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1x", "http/1.1", "HTTP/", "")
# Names no config has (so no write route can succeed), some of them hostile.
NAMES = ("nosuch", "x" * 200, "%00", "..%2F..%2Fetc", "%ff%fe", "a%20b", "é", "-", "%",
         "b1%00", "ü" * 50, "", "{}", "$(id)")  # fmt: skip
BODIES = (
    b"[" * 1000 + b"]" * 1000,
    b"{" * 50_000,
    b'{"weight": ' + b"9" * 5000 + b"}",
    b'{"weight": 1e999}',
    b'{"weight": -1}',
    b'{"weight": true}',
    b'{"weight": null}',
    b'{"config": 12}',
    b'{"config": ["a"]}',
    b'{"config": "' + b"a: [" * 2000 + b'"}',
    b"null",
    b'"string"',
    b"\xff\xfe\x00garbage",
    b"not json",
    b'{"a": NaN}',
    b'{"a": "\\ud800"}',
    b"",
)


def _request_line(method: str, path: str, version: str) -> bytes:
    line = f"{method} {path} {version}".rstrip() if version else f"{method} {path}"
    return line.encode("utf-8", "surrogateescape") + b"\r\n"


def _one(rng: random.Random) -> RawRequest:
    kind = rng.choice(("method", "version", "path", "body", "headers", "length", "garbage",
                       "truncated", "hangup", "query"))  # fmt: skip
    method, path = rng.choice(ROUTES)
    path = path.replace("{n}", rng.choice(NAMES))
    version = "HTTP/1.1"
    headers: list[bytes] = [b"Host: maglevd"]
    body = b""
    mode = FULL
    if kind == "method":
        method = rng.choice(METHODS)
    elif kind == "version":
        version = rng.choice(VERSIONS)
    elif kind == "path":
        path = rng.choice(
            ("", "*", "/", "//v1//status", "/v1/status/../status", "/v1/" + "a/" * 2000,
             "http://evil/v1/status", "/v1/status?" + "a=b&" * 3000, "/\x00", "/v2/status",
             "/v1/backends/" + "%" * 100, "/v1/events?type=" + "x" * 5000)
        )  # fmt: skip
    elif kind == "query":
        path = "/v1/events?" + rng.choice(("type=", "backend=%ff", "nosuch=1", "type=a&type=b",
                                           "frontend=" + "x" * 300, "&&&=", "%"))  # fmt: skip
    elif kind == "body":
        method = rng.choice(("POST", "PUT", "DELETE"))
        method, path = rng.choice([r for r in ROUTES if r[0] == method])
        path = path.replace("{n}", rng.choice(NAMES))
        body = rng.choice(BODIES)
        headers.append(b"Content-Type: application/json")
    elif kind == "headers":
        headers += rng.choice(
            ([b"X-A: " + b"a" * 70_000], [b"X-%d: v" % i for i in range(500)], [b"NoColon"],
             [b"Content-Length: 5", b"Content-Length: 7"], [b"Transfer-Encoding: chunked"],
             [b"Authorization: Bearer " + b"t" * 9000], [b" folded: x"], [b"\x00: \x00"])
        )  # fmt: skip
    elif kind == "length":
        method = "POST"
        path = "/v1/config/check"
        headers.append(
            rng.choice((b"Content-Length: -1", b"Content-Length: abc", b"Content-Length: 1e3",
                        b"Content-Length: 99999999999999999999", b"Content-Length: 100",
                        b"Content-Length: 5000000", b"Content-Length: 0x10"))
        )  # fmt: skip
        body = b'{"config": "x"}'[: rng.randrange(0, 16)]
    elif kind == "garbage":
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        return RawRequest(kind, data + b"\r\n\r\n")
    elif kind == "truncated":
        full = _request_line(method, path, version) + b"\r\n".join(headers) + b"\r\n\r\n"
        return RawRequest(kind, full[: rng.randrange(1, len(full))])
    elif kind == "hangup":
        body = BODIES[0] if method != "GET" else b""
        mode = HANGUP
    if body and not any(h.lower().startswith(b"content-length") for h in headers):
        headers.append(b"Content-Length: %d" % len(body))
    data = _request_line(method, path, version) + b"\r\n".join(headers) + b"\r\n\r\n" + body
    return RawRequest(kind, data, mode)


def requests(rng: random.Random, n: int) -> list[RawRequest]:
    return [_one(rng) for _ in range(n)]


# ---- configs -------------------------------------------------------------------------------------

VALUES = ("-1", "0", "101", "1e309", "null", "~", "[", "{", "]", "}", "'", '"', "*nosuch",
          "&a", "!!python/object/apply:os.system ['id']", "!!binary AAAA", "0x7fffffff",
          "99999999999999999999999", "::", "300.300.300.300", "1s1s", "-5s", "nan", ".inf",
          "yes", "tcp6", "é", "x" * 5000, "{a: *a}", "[*a, *a]", "<<: *a", "? a", "%TAG",
          "\t", "\x00", "\ufeff")  # fmt: skip


def _bomb(levels: int) -> str:
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _mutate(rng: random.Random, base: str) -> tuple[str, str]:
    lines = base.splitlines()
    kind = rng.choice(("drop", "dup", "value", "indent", "truncate", "bomb", "alias", "bytes",
                       "swap", "empty", "merge"))  # fmt: skip
    i = rng.randrange(len(lines))
    if kind == "drop":
        del lines[i]
    elif kind == "dup":
        lines.insert(i, lines[i])
    elif kind == "value":
        line = lines[i]
        if ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(VALUES)}"
        else:
            lines[i] = rng.choice(VALUES)
    elif kind == "indent":
        lines[i] = " " * rng.randrange(0, 9) + lines[i].lstrip()
    elif kind == "truncate":
        text = base[: rng.randrange(0, len(base))]
        return kind, text
    elif kind == "bomb":
        return kind, _bomb(rng.randrange(3, 12)) + base
    elif kind == "alias":
        lines.insert(i, rng.choice(("a: &r [*r]", "anchors: &x {k: *x}", "<<: *nosuch",
                                    "q: &q !!map {<<: *q}")))  # fmt: skip
    elif kind == "bytes":
        raw = list(base)
        for _ in range(rng.randrange(1, 20)):
            raw[rng.randrange(len(raw))] = chr(rng.randrange(0, 0x3000))
        return kind, "".join(raw)
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "empty":
        return kind, rng.choice(("", "\n", "---", "~", "[]", "{}", "--- !!set {}", "# only\n"))
    elif kind == "merge":
        lines.append(rng.choice(("frontends: {}", "backends: ~", "vpp: []", "control: 1")))
    return kind, "\n".join(lines) + "\n"


def configs(rng: random.Random, base: str, n: int) -> list[tuple[str, str]]:
    """(kind, text) pairs: each a mutation of `base` (most invalid, a few perhaps valid)."""
    return [_mutate(rng, base) for _ in range(n)]


def check_body(text: str) -> bytes:
    return json.dumps({"config": text}).encode()
