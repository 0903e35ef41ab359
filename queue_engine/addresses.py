"""Recipient and sender address syntax (RFC 5321 §4.1.2, RFC 6531 for UTF-8 local parts).

The send API must tell a malformed address (`invalid/address_format_error`,
never attempted) from one the MP has to judge, so the check is the SMTP
envelope grammar, not a loose "contains @".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

import idna

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class AddressError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Address:
    local: str
    domain: str
    """Lower-case A-label (punycode) form, as used in DNS and queue names."""

    @property
    def email(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local.isascii()


def normalise_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise AddressError("empty domain")
    if domain.startswith("[") and domain.endswith("]"):
        raise AddressError("address literals are not accepted")
    try:
        ascii_domain = domain if domain.isascii() else idna.encode(domain, uts46=True).decode()
    except idna.IDNAError as exc:
        raise AddressError(f"bad domain: {exc}") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2:
        raise AddressError("domain must have at least two labels and at most 253 characters")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise AddressError("domain labels must be letters, digits and inner hyphens")
    return ascii_domain


def parse_address(raw: str) -> Address:
    """A bare envelope address `local@domain`; raises AddressError saying what is wrong."""
    if not isinstance(raw, str):
        raise AddressError("must be a string")
    text = raw.strip(" \t")
    if any(c in text for c in "\r\n\0<> "):
        raise AddressError("must be a bare address without spaces, brackets or line breaks")
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise AddressError("must be local@domain")
    if len(local.encode()) > 64:
        raise AddressError("local part longer than 64 octets")
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED.fullmatch(local)):
        raise AddressError("local part is not a valid dot-atom or quoted string")
    return Address(local, normalise_domain(domain))


def parse_mailbox(raw: str) -> tuple[str, Address]:
    """A From value, `Name <local@domain>` or a bare address → (display name, address)."""
    # Every line break str.splitlines knows: the From header refuses them all.
    if not isinstance(raw, str) or any(c in raw for c in "\r\n\0\v\f\x1c\x1d\x1e\x85\u2028\u2029"):
        raise AddressError("must be a single-line string")
    name, addr = parseaddr(raw)
    if not addr:
        raise AddressError("must be an address or Name <address>")
    return name, parse_address(addr)
