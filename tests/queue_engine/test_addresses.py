"""Recipient syntax: what is a format error, what goes to the MP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queue_engine.addresses import AddressError, parse_address, parse_mailbox


@pytest.mark.parametrize(
    ("raw", "email"),
    [
        ("user@example.com", "user@example.com"),
        ("First.Last+tag@Example.COM", "First.Last+tag@example.com"),
        (" user@example.com ", "user@example.com"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("user@example.com.", "user@example.com"),
    ],
)
def test_valid(raw: str, email: str) -> None:
    assert parse_address(raw).email == email


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "@example.com",
        "user@",
        "user@localhost",
        "a..b@example.com",
        ".a@example.com",
        "user@-bad.example",
        "user@exa_mple.com",
        "user@example.com\r\nBcc: victim@example.com",
        "<user@example.com>",
        "x" * 65 + "@example.com",
        "user@[192.0.2.1]",
    ],
)
def test_invalid(raw: str) -> None:
    with pytest.raises(AddressError):
        parse_address(raw)


def test_mailbox_with_display_name() -> None:
    name, address = parse_mailbox("Shop <shop@Example.com>")
    assert (name, address.email) == ("Shop", "shop@example.com")
    with pytest.raises(AddressError):
        parse_mailbox("Shop <shop@example.com>\r\nX: y")


@given(st.text(max_size=80))
def test_never_crashes_and_never_passes_line_breaks(raw: str) -> None:
    try:
        address = parse_address(raw)
    except AddressError:
        return
    assert "\r" not in address.email and "\n" not in address.email
    assert "@" in address.email
