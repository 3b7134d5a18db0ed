"""The IPv4 short cut of the address getter accepts and means exactly what `ipaddress` does."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev.config.fields import _ip_address

OCTETS = st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249"])
MORE = st.sampled_from(["250", "255", "256", "300", "012", " 1", "1_0", "\u0663", "-1", "+1"])


def _either(text: str) -> object:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return "refused"


def _ours(text: str) -> object:
    try:
        return _ip_address(text)
    except ValueError:
        return "refused"


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.04",
        "1..2.3",
        "1.2.3.4\n",
        "::1",
        "2001:db8::1",
        "::ffff:1.2.3.4",
        "1.2.3.4/32",
        "",
    ],
)
def test_known_texts(text: str) -> None:
    assert _ours(text) == _either(text)
    assert type(_ours(text)) is type(_either(text))


@settings(max_examples=500, deadline=None)
@given(st.lists(OCTETS | MORE, min_size=1, max_size=5))
def test_random_dotted_texts(parts: list[str]) -> None:
    text = ".".join(parts)
    assert _ours(text) == _either(text)
    assert type(_ours(text)) is type(_either(text))
