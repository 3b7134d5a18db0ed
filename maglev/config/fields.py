"""Typed reading of one YAML mapping: durations, integers, addresses, enums, with key paths.

Owns the scalar vocabulary of the config file (what `2s`, `10%`, `0660` or `192.0.2.0/24` mean)
and the `Node` reader the per-object validators use. Every getter records a `Problem` instead of
raising, and falls back to the default, so one pass over a file finds every mistake in it.
Called from whichever thread loads a config (the CLI, the daemon's startup or reload path).
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from maglev.config import schema
from maglev.errors import Problem
from maglev.model import IPAddress, IPNetwork

D = TypeVar("D")
E = TypeVar("E")
T = TypeVar("T")

# Matched on the stripped text: with `\s*` on both sides of the optional unit, `1`, spaces and
# `x` backtrack quadratically (20,000 spaces held the GIL for 2 s; 4 MiB of them, a day).
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h)?")
_DURATION_MAX_CHARS = 64
"""Longer text is not a duration (and even a linear match of 4 MiB holds the GIL 0.5 s)."""
_PERCENT = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?")  # the number of `12.5%`
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION = 7 * 86400.0
"""Upper bound of any duration: a week is already absurd for a timer here, and the bound keeps
float arithmetic on deadlines far from overflow."""


SHOW_MAX = 80
"""Characters of a value quoted in a message."""

MAX_PROBLEMS = 1000
"""Problems listed per load; past that they are only counted. Nobody reads further, and a
document of a million broken items would otherwise build a million messages (and log lines)."""


def show(value: object) -> str:
    """A value as the message quotes it: strings quoted, YAML words for bools/null, cut short.

    Python's repr, but never built whole: through YAML aliases a 400-byte file holds a list of
    387 million items that share a few objects, and `repr` of that holds the GIL for minutes.
    This writes it piece by piece and stops once there is more than it would show.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    out = _Quote(SHOW_MAX + 1)
    out.value(value)
    text = "".join(out.parts)
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 3] + "..."


class _Quote:
    """The repr of a value written in pieces until `room` characters are out (then it stops:
    each element costs at least one character, so the work is bounded by `room`)."""

    __slots__ = ("parts", "room")

    def __init__(self, room: int) -> None:
        self.parts: list[str] = []
        self.room = room

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.room -= len(text)

    def value(self, value: object) -> None:
        if self.room <= 0:
            return
        if isinstance(value, str | bytes):
            # Cut before quoting: the repr of a 4 MiB string is 4 MiB.
            self.put(repr(value[: self.room + 1] if len(value) > self.room + 1 else value))
        elif isinstance(value, int) and not isinstance(value, bool):
            # Python refuses to print integers of more than 4300 digits (and it takes quadratic
            # time); none reach here from YAML, which parses them with the same limit.
            bits = abs(value).bit_length()
            self.put(repr(value) if bits < 14_000 else f"<an integer of {bits} bits>")
        elif isinstance(value, Mapping):
            self.items("{", "}", value.items(), self.pair)
        elif isinstance(value, list):
            self.items("[", "]", value, self.value)
        elif isinstance(value, tuple):
            self.items("(", ",)" if len(value) == 1 else ")", value, self.value)
        elif isinstance(value, set | frozenset):
            if value:
                self.items("{", "}", value, self.value)
            else:
                self.put(f"{type(value).__name__}()")
        else:  # None, bools, floats (and nothing else a YAML safe load makes): short reprs
            self.put(repr(value))

    def pair(self, item: tuple[object, object]) -> None:
        self.value(item[0])
        self.put(": ")
        self.value(item[1])

    def items(self, start: str, end: str, items: Iterable[T], put: Callable[[T], None]) -> None:
        self.put(start)
        for i, item in enumerate(itertools.islice(items, self.room)):
            if self.room <= 0:
                return
            if i:
                self.put(", ")
            put(item)
        self.put(end)


def kind(value: object) -> str:
    """The YAML word for a value's type, for 'expected X, got Y' messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def got(value: object) -> str:
    """'got 'abc'' for scalars; 'got a list [1, 2]' where the type is not obvious from the value."""
    if isinstance(value, Mapping | list | tuple) or not isinstance(
        value, str | int | float | bool | type(None)
    ):
        return f"got {kind(value)} {show(value)}"
    return f"got {show(value)}"


def parse_duration(value: object) -> float:
    """Seconds from `500ms`, `2s`, `1m`, `1h` or a plain number of seconds.

    Raises ValueError with a message that quotes the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 500ms, 2s, 1m, 1h, got {show(value)}")
    if isinstance(value, int) and abs(value) > MAX_DURATION:
        seconds = 2 * MAX_DURATION  # float() of a huge int would overflow
    elif isinstance(value, int | float):
        seconds = float(value)
    elif (
        isinstance(value, str)
        and len(value) <= _DURATION_MAX_CHARS
        and (m := _DURATION.fullmatch(value.strip()))
    ):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration like 500ms, 2s, 1m, 1h, {got(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{show(value)} is not a valid duration")
    if seconds > MAX_DURATION:
        raise ValueError(f"{show(value)} is longer than the maximum of 7 days")
    return seconds


def parse_fraction(raw: object, cap: float) -> float | None:
    """`30%` or a plain number as a fraction; None when it is neither (or NaN). Numbers beyond
    `cap` come back as `cap` + 1, out of any range the caller allows, because float() of a huge
    int overflows."""
    value: float | None = None
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            value = float(raw.strip()[:-1]) / 100
        except ValueError:
            value = None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw) if abs(raw) <= cap else cap + 1.0
    return None if value is None or value != value else value


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a duration (used in messages)."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def parse_host_port(value: str) -> tuple[str, int]:
    """Split `host:port` or `[v6]:port`; port may be 0 (an ephemeral port, for tests); an
    empty host (`:9900`) means 127.0.0.1. The one parser of listen addresses: the config
    validates them with it and the daemon binds what it returns."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{show(value)} is not host:port")
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{show(value)} is not host:port (write IPv6 hosts as [::1]:port)")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        raise ValueError(f"{show(value)}: port {port!r} is not in 0..65535")
    return host or "127.0.0.1", int(port)


def is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class Problems(list[Problem]):
    """The problems of one load: the first MAX_PROBLEMS are kept, the rest only counted."""

    __slots__ = ("dropped",)

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def append(self, problem: Problem) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(problem)
        else:
            self.dropped += 1


KEY_IN_PATH_MAX = 80
"""Longer keys are cut in key paths (no valid name is longer than 64 characters): each problem
under a key repeats its path, and a 1 MiB key over a thousand problems would be 1 GiB."""


class Node:
    """One mapping of the config with its key path; getters record problems, never raise."""

    __slots__ = ("data", "path", "problems")

    def __init__(self, data: Mapping[str, object], path: str, problems: list[Problem]) -> None:
        self.data = data
        self.path = path
        self.problems = problems

    @classmethod
    def of(cls, value: object, path: str, problems: list[Problem]) -> Node | None:
        """A Node for `value` if it is a mapping (null counts as empty); else record a problem.

        Non-string keys are reported and dropped, so getters only ever see string keys.
        """
        if value is None:
            return cls({}, path, problems)
        # Used as it is (the getters only read): copying 80,000 mappings cost a fifth of validating.
        if type(value) is dict and (not value or set(map(type, value)) == {str}):
            return cls(value, path, problems)
        if not isinstance(value, Mapping):
            problems.append(Problem(path, f"expected a mapping, {got(value)}"))
            return None
        data: dict[str, object] = {}
        for k, v in value.items():
            if isinstance(k, str):
                data[k] = v
            else:
                problems.append(Problem(path, f"key {show(k)} is not a string"))
        return cls(data, path, problems)

    # --- plumbing ---------------------------------------------------------------------------

    def at(self, key: str | int) -> str:
        """The full key path of `key` (an int indexes a list)."""
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        if len(key) > KEY_IN_PATH_MAX:
            key = key[: KEY_IN_PATH_MAX - 3] + "..."
        return f"{self.path}.{key}" if self.path else key

    @property
    def full(self) -> bool:
        """Whether further problems will only be counted, so their hints need not be worked out."""
        return len(self.problems) >= MAX_PROBLEMS

    def add(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.at(key) if key is not None else self.path, message))

    def has(self, key: str) -> bool:
        """Whether the key is set; an explicit null counts as not set."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def check_keys(
        self, allowed: Iterable[str], misplaced: Mapping[str, str] | None = None
    ) -> None:
        """Report keys not in `allowed`; `misplaced` maps known-elsewhere keys to a reason."""
        allowed = tuple(allowed)
        for key in self.data:
            if key in allowed:
                continue
            if misplaced and key in misplaced:
                self.add(key, misplaced[key])
            elif self.full or len(key) > KEY_IN_PATH_MAX:
                # The hint compares the key with each allowed one (difflib): not worth it for a
                # message that is dropped, nor for a key no allowed one resembles.
                self.add(key, f"unknown key {show(key)}")
            else:
                self.add(key, schema.unknown_key_message(key, allowed))

    def require(self, key: str, why: str = "") -> bool:
        """Record 'is required' if the key is absent; True when present."""
        if self.has(key):
            return True
        self.add(key, f"is required{why}")
        return False

    def child(self, key: str) -> Node | None:
        """The nested mapping at `key` (absent or null: empty)."""
        return Node.of(self.data.get(key), self.at(key), self.problems)

    def items(self, key: str) -> list[object] | None:
        """The list at `key`; None (with a problem) if it is not a list, [] if absent."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(key, f"expected a list, {got(value)}")
            return None
        return value

    # --- scalars ----------------------------------------------------------------------------

    def text(self, key: str, default: D) -> str | D:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.add(key, f"expected a string, {got(value)}")
            return default
        if not value.strip():
            self.add(key, f"{show(value)} is empty")
            return default
        return value

    def integer(self, key: str, default: D, lo: int, hi: int | None = None) -> int | D:
        value = self.data.get(key)
        if value is None:
            return default
        number = as_int(value)
        if number is None:
            self.add(key, f"expected an integer, {got(value)}")
            return default
        if hi is not None and not lo <= number <= hi:
            self.add(key, f"{show(value)} is not in {lo}..{hi}")
            return default
        if number < lo:
            self.add(key, f"{show(value)} is less than {lo}")
            return default
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(key, f"expected true or false, {got(value)}")
            return default
        return value

    def duration(self, key: str, default: float, *, positive: bool = True) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            self.add(key, str(e))
            return default
        if positive and seconds <= 0:
            self.add(key, f"{show(value)} must be greater than 0")
            return default
        return seconds

    def count_or_percent(
        self, key: str, default: tuple[int, bool], max_count: int
    ) -> tuple[int, bool]:
        """A count 0..max_count, as (count, False), or a percentage `0%`..`100%` with up to
        two decimals, as (hundredths of a percent, True): `50%` is (5000, True)."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().endswith("%"):
            m = _PERCENT.fullmatch(value.strip()[:-1].strip())
            if m is not None:
                share = int(m.group(1)) * 100 + int((m.group(2) or "").ljust(2, "0"))
                if share <= 10000:
                    return share, True
                self.add(key, f"{show(value)} is not in 0%..100%")
                return default
        number = as_int(value)
        if number is None:
            self.add(key, f"expected a percentage like 50% or a count like 2, {got(value)}")
            return default
        if not 0 <= number <= max_count:
            self.add(key, f"{show(value)} is not in 0..{max_count}")
            return default
        return number, False

    def choice(self, key: str, options: Mapping[str, E], default: D) -> E | D:
        """One of `options` (matched case-insensitively on its keys)."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            for name, option in options.items():
                if name.lower() == value.strip().lower():
                    return option
        self.add(key, f"{show(value)} is not one of {', '.join(options)}")
        return default

    def regex(self, key: str, default: D) -> str | D:
        value = self.text(key, None)
        if value is None:
            return default
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # FutureWarnings about nested sets etc.
                re.compile(value)
        # re.compile raises more than re.error on hostile patterns: deep nesting recurses,
        # huge repeat counts overflow.
        except (re.error, RecursionError, OverflowError, ValueError) as e:
            reason = str(e) if isinstance(e, re.error) else type(e).__name__
            self.add(key, f"{show(value)} is not a valid regular expression: {reason}")
            return default
        return value

    def address(self, key: str, version: int | None = None) -> IPAddress | None:
        """A host address (not a prefix); `version` 4 or 6 restricts the family."""
        value = self.data.get(key)
        if value is None:
            return None
        family = f"an IPv{version} address" if version else "an IP address"
        if not isinstance(value, str):
            self.add(key, f"expected {family}, {got(value)}")
            return None
        try:
            addr = _ip_address(value.strip())
        except ValueError:
            hint = " (a host address, not a prefix)" if "/" in value else ""
            self.add(key, f"{show(value)} is not {family}{hint}")
            return None
        if version and addr.version != version:
            self.add(key, f"{show(value)} is not {family}")
            return None
        return addr

    def network(self, key: str) -> IPNetwork | None:
        """A prefix; a bare address means a host prefix (/32 or /128); host bits must be 0."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(key, f"expected an IP prefix like 192.0.2.1/32, {got(value)}")
            return None
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                self.add(key, f"{show(value)} is not an IP address or prefix")
            else:
                self.add(key, f"{show(value)} has host bits set (did you mean {loose}?)")
            return None


# Dotted-quad IPv4 as `ipaddress` accepts it: four decimal octets, no leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ip_address(text: str) -> IPAddress:
    """`ipaddress.ip_address`; plain IPv4 the short way (ipaddress parses each octet in Python,
    8 us an address, a third of validating 40,000 backends), with the value it would give."""
    if _IPV4.fullmatch(text):
        a, b, c, d = text.split(".")
        return ipaddress.IPv4Address((int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))
    return ipaddress.ip_address(text)


def as_int(value: object) -> int | None:
    """An int from an int or an integral float; never from a bool or a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None
