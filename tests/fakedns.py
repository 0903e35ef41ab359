"""A tiny authoritative DNS server on 127.0.0.1 for tests: dnspython's real parsing
and error mapping run against it, and no test ever queries real DNS."""

from __future__ import annotations

import asyncio
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeDNS(asyncio.DatagramProtocol):
    """Answers from `zone`; names in `nxdomain`/`servfail` get those rcodes."""

    def __init__(self) -> None:
        self.zone: dict[tuple[str, str], list[str]] = {}
        self.nxdomain: set[str] = set()
        self.servfail: set[str] = set()
        self.ttl = 3600
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector transport does not subclass DatagramTransport, hence no isinstance.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.nxdomain:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdatas := self.zone.get((name, rdtype)):
            response.answer.append(
                dns.rrset.from_text_list(question.name, self.ttl, "IN", rdtype, rdatas)
            )
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def add(self, name: str, rdtype: str, *rdatas: str) -> None:
        self.zone[(name, rdtype)] = list(rdatas)
