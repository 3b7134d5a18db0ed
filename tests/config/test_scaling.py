"""Validation work grows with the document, not with its square: the checks that once compared
each item with every other (or scanned a section once per problem) give the same answers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config import load_text, loader, validate
from maglev.config.fields import Node
from maglev.errors import ConfigInvalid, Problem
from maglev.model import Encap, Frontend, IPNetwork, Protocol


def test_a_typo_among_many_names_is_found_without_comparing_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def compared(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("difflib compared every known name")

    monkeypatch.setattr(validate.difflib, "get_close_matches", compared)
    n = validate.FUZZY_UP_TO + 100
    backends = "".join(f"  b{i}: {{address: 10.0.{i // 256}.{i % 256}}}\n" for i in range(n))
    text = (
        f"backends:\n{backends}frontends:\n  f: {{address: 192.0.2.1, port: 80, encap: l3dsr, "
        "dscp: 1, pools: [{name: p, backends: {b12x: {}, zz-top: {}}}]}\n"
    )
    with pytest.raises(ConfigInvalid) as e:
        load_text(text)
    assert [p.message.split(" (line")[0] for p in e.value.problems] == [
        "unknown backend 'b12x' (did you mean 'b12'?)",
        "unknown backend 'zz-top'",
    ]


def test_one_typo_away_covers_every_single_edit() -> None:
    near = set(validate._one_typo_away("web1"))
    assert {"eb1", "ewb1", "wxb1", "web1x", "xweb1", "we-1"} <= near


class _NoScan(dict[object, object]):
    """A mapping that fails if its keys are iterated."""

    def __iter__(self) -> Iterator[object]:
        raise AssertionError("the keys were scanned")


def test_the_line_of_a_problem_is_found_by_lookups() -> None:
    section = _NoScan({f"b{i}": {"address": "x"} for i in range(1000)})
    section["a.b"] = {"c": 1}
    data = {"backends": section}
    lines: loader.Lines = {id(data): {"backends": 1}, id(section): {"b500": 502, "a.b": 9}}
    assert loader.line_of("backends.b500.address", data, lines) == 502
    assert loader.line_of("backends.a.b.c", data, lines) == 9
    assert loader.line_of("backends.nope.x", data, lines) == 1


def _pairwise(frontends: Mapping[str, Frontend]) -> list[Problem]:
    """shared_prefixes as it was: each frontend against every earlier one on its prefix."""
    problems: list[Problem] = []
    by_prefix: dict[IPNetwork, list[Frontend]] = {}
    for fe in frontends.values():
        by_prefix.setdefault(fe.address, []).append(fe)
    for prefix, group in by_prefix.items():
        for i, fe in enumerate(group):
            for other in group[:i]:
                where = f"frontends.{other.name}"
                if (fe.protocol, fe.port) == (other.protocol, other.port):
                    what = f"{fe.protocol.value} port {fe.port}" if fe.port else "protocol any"
                    message = f"{prefix} {what} is already used by {where}"
                elif (fe.port == 0) != (other.port == 0):
                    message = (
                        f"{prefix}: an all-port (protocol any) and a per-port frontend cannot "
                        f"share a prefix (see {where}); VPP refuses it"
                    )
                elif fe.encap is not other.encap:
                    message = (
                        f"{prefix}: encap {fe.encap.value} differs from {where} "
                        f"({other.encap.value}); VPP needs one encap per prefix"
                    )
                else:
                    continue
                problems.append(Problem(f"frontends.{fe.name}.address", message))
                break
    return problems


_frontend = st.tuples(
    st.sampled_from(["192.0.2.1/32", "192.0.2.2/32"]),
    st.sampled_from([Protocol.TCP, Protocol.UDP, Protocol.ANY]),
    st.sampled_from([0, 80, 443]),
    st.sampled_from([Encap.GRE4, Encap.L3DSR, Encap.NAT4]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_frontend, max_size=12))
def test_shared_prefixes_reports_what_comparing_every_pair_did(
    specs: list[tuple[str, Protocol, int, Encap]],
) -> None:
    frontends = {
        f"f{i}": Frontend(
            name=f"f{i}",
            address=ipaddress.ip_network(address),
            protocol=protocol,
            port=0 if protocol is Protocol.ANY else port,
            encap=encap,
            pools=(),
        )
        for i, (address, protocol, port, encap) in enumerate(specs)
    }
    problems: list[Problem] = []
    validate.shared_prefixes(Node({}, "", problems), frontends)
    assert problems == _pairwise(frontends)
