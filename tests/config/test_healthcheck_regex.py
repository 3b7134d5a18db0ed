"""Reply regexes (`expect`, `expect-body`) are refused at load time unless a search is linear.

Python's `re` cannot be interrupted, so the bound is structural (`regexcost.backtracking_risk`)
plus the probes' cap on what they search (`MATCH_CAP`). The steps of a search cannot be counted,
so the work is measured once, with a generous deadline: every accepted pattern of a corpus, over
bodies made to hurt it, at the full cap, must finish in seconds where a refused one would need
hours (`(a+)+$` on 30 bytes already takes minutes).
"""

from __future__ import annotations

import re
import time
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]

import pytest

from maglev.config import regexcost
from maglev.health.checks.base import MATCH_CAP
from tests.config.sample import BASE, bare, load, mutate, problems_of

# (pattern, why): each is refused with exactly this reason.
BAD = [
    ("(a+)+$", "nested repeat"),
    ("(a*)*", "nested repeat"),
    (r"(\w+\s?)+$", "nested repeat"),
    ("(x+x+)+y", "nested repeat"),
    ("(a?){20}a{20}", "nested repeat"),
    ("(a|aa)+", "repeated alternatives can match the same text"),
    ("(a|a)+$", "repeated alternatives can match the same text"),
    ("(?:ab|ac|b)*$", "repeated alternatives can match the same text"),
    (r"(a+)\1", "backreference"),
    (r"(a)?(?(1)b|c)", "backreference"),
    ("(?=.*x)ok", "repeat inside a lookaround"),
    ("(?!a+b)", "repeat inside a lookaround"),
    (".*a.*b.*c", "3 repeats in a row can take the same bytes: the ways to split it multiply"),
    ("a.*b.*c", "2 repeats in a row can take the same bytes: the ways to split it multiply"),
    ("^.*a.*b.*c", "3 repeats in a row can take the same bytes: the ways to split it multiply"),
    ("^a*a*b", "2 repeats in a row can take the same bytes: the ways to split it multiply"),
    (r"^\d+\s*\d+x", "2 repeats in a row can take the same bytes: the ways to split it multiply"),
    (r"\s*x", "a repeat that the search retries from every byte: n^2 steps on n bytes"),
    ("ok.*done", "a repeat that the search retries from every byte: n^2 steps on n bytes"),
    (".*ok.*", "a repeat that the search retries from every byte: n^2 steps on n bytes"),
    (r"[0-9]+\.[0-9]+", "a repeat that the search retries from every byte: n^2 steps on n bytes"),
    ("(?:ok|.*fine)", "a repeat that the search retries from every byte: n^2 steps on n bytes"),
]

# Accepted: the common shapes, each linear in the reply.
GOOD = [
    "ok",
    r'"status":\s*"up"',
    "^OK$",
    "healthy|ready",
    r"version [0-9]+\.[0-9]+",
    r"^\+PONG",
    r"^SSH-2\.0",
    "(?i)healthy",
    r"\bok\b",
    "(?m)^ready$",
    r"\AOK\Z",
    r"^HTTP/1\.[01] 200",
    r'"status"\s*:\s*"(ok|up)"',
    r'"count":\s*[1-9][0-9]*',
    r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
    "https?://",
    "status=(up|ok)\\b",
    "ok.*",  # a last repeat that may be empty never backtracks
    "^.*ok",  # anchored: one start
    "x(?:ab)+y",
    "(?:GET|POST) /",
    r"uptime: \d+ days",
    ".{0,100}x",
    r"\r?\n\r?\n",
]


def _message(key: str, pattern: str, why: str) -> str:
    return (
        f"healthchecks.h.{key}: {pattern!r} can backtrack catastrophically ({why}); a reply"
        " crafted for it would stall the check worker, so simplify it (a search needs no"
        " leading or trailing .*)"
    )


@pytest.mark.parametrize(("pattern", "why"), BAD)
def test_catastrophic_patterns_are_refused_at_load_time(pattern: str, why: str) -> None:
    assert regexcost.backtracking_risk(pattern) == why
    http = mutate(BASE, "healthchecks.h.expect-body", pattern)
    assert bare(problems_of(http)) == [_message("expect-body", pattern, why)]
    tcp = mutate(
        mutate(BASE, "healthchecks.h", {"type": "tcp", "port": 81}),
        "healthchecks.h.expect",
        pattern,
    )
    assert bare(problems_of(tcp)) == [_message("expect", pattern, why)]


@pytest.mark.parametrize("pattern", GOOD)
def test_common_patterns_are_accepted(pattern: str) -> None:
    assert regexcost.backtracking_risk(pattern) is None
    cfg = load(mutate(BASE, "healthchecks.h.expect-body", pattern))
    assert cfg.healthchecks["h"].expect_body == pattern


def test_a_pattern_must_be_valid_over_bytes() -> None:
    # The probes compile the UTF-8 bytes of the pattern; \u escapes exist only in text patterns.
    assert bare(problems_of(mutate(BASE, "healthchecks.h.expect-body", r"caf\u00e9"))) == [
        "healthchecks.h.expect-body: 'caf\\\\u00e9' is not a valid regular expression over"
        " bytes: bad escape \\u at position 3"
    ]
    assert load(mutate(BASE, "healthchecks.h.expect-body", "café")).healthchecks["h"].expect_body


def test_the_cost_is_reckoned_at_the_probes_cap() -> None:
    assert regexcost.REPLY_BYTES == MATCH_CAP == 16 * 1024


def _bytes_of(items: object, out: list[int]) -> list[int]:
    """Bytes a pattern names, in order: the stuff hostile bodies are made of."""
    for op, av in items:  # type: ignore[attr-defined]
        if op is sre.LITERAL:
            out.append(av)
        elif op is sre.IN:
            for iop, iav in av:
                if iop is sre.LITERAL:
                    out.append(iav)
                elif iop is sre.RANGE:
                    out.append(iav[0])
                elif iop is sre.CATEGORY:
                    out.extend(b"0 a")
        elif op is sre.SUBPATTERN:
            _bytes_of(av[3], out)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            _bytes_of(av[2], out)
        elif op is sre.BRANCH:
            for alt in av[1]:
                _bytes_of(alt, out)
    return out


def hostile_bodies(pattern: str) -> list[bytes]:
    """MATCH_CAP bytes each: runs of every byte the pattern names (and a few), and its bytes
    repeated, whole and short of the last one (a match that keeps almost happening)."""
    named = bytes(_bytes_of(sre_parser.parse(pattern.encode()), []))
    bodies = [bytes((c,)) * MATCH_CAP for c in sorted(set(named) | set(b'a0 x"\n'))]
    for k in range(1, len(named) + 1):
        for seed in (named[:k], named[: k - 1]):
            if seed:
                bodies.append((seed * (MATCH_CAP // len(seed) + 1))[:MATCH_CAP])
    return bodies


def test_accepted_patterns_search_a_hostile_body_quickly() -> None:
    # Not a benchmark: one generous deadline per pattern, as on a loaded machine. A catastrophic
    # pattern would not finish in hours; an n^2 one takes seconds at this size.
    for pattern in GOOD:
        compiled = re.compile(pattern.encode())
        for body in hostile_bodies(pattern):
            start = time.monotonic()
            compiled.search(body)
            took = time.monotonic() - start
            assert took < 5.0, (pattern, body[:20], took)
