"""The MP simulator: local SMTP servers that answer like mailbox providers.

What a recipient gets is decided by its local part, so demo traffic and tests
can aim at each behaviour on any domain routed here:
  `unknown*`   550 5.1.1 user unknown (the address does not exist)
  `spam*`      554 5.7.1 rejected as spam
  `tempfail*`  421 on the first attempt for that address, then accepted
  `drop*`      the connection is dropped after DATA is sent, before the reply
  anything else is accepted.
Every server listens on 127.0.0.1 only: the simulator can never send mail out.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

S250_QUEUED = "250 2.0.0 Ok: queued as {}"
S421_TRY_LATER = "421 4.7.0 Temporary failure, try again later"
S550_USER_UNKNOWN = "550 5.1.1 The email account that you tried to reach does not exist"
S554_SPAM = "554 5.7.1 Message rejected as spam"


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_to: str
    data: bytes


@dataclass(slots=True)
class MPState:
    keep_messages: bool = True
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    peers: set[tuple[str, int]] = field(default_factory=set)
    queue_ids: itertools.count[int] = field(default_factory=itertools.count)


class MPHandler:
    def __init__(self, state: MPState) -> None:
        self.state = state

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = address.rpartition("@")[0].lower()
        self.state.rcpt_attempts[address.lower()] += 1
        if isinstance(session.peer, tuple):
            self.state.peers.add(session.peer)
        if local.startswith("unknown"):
            return S550_USER_UNKNOWN
        if local.startswith("spam"):
            return S554_SPAM
        if local.startswith("tempfail") and self.state.rcpt_attempts[address.lower()] == 1:
            return S421_TRY_LATER
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(r.lower().startswith("drop") for r in envelope.rcpt_tos):
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "451 4.3.0 dropped"
        content = envelope.original_content or b""
        for rcpt in envelope.rcpt_tos:
            self.state.accepted += 1
            if self.state.keep_messages:
                self.state.received.append(Received(envelope.mail_from or "", rcpt, content))
        return S250_QUEUED.format(f"{next(self.state.queue_ids):08X}")


class MPServer:
    """One simulated MP on 127.0.0.1, in the running event loop."""

    def __init__(self, port: int = 0, *, keep_messages: bool = True, name: str = "mp") -> None:
        self.requested_port = port
        self.name = name
        self.state = MPState(keep_messages=keep_messages)
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    async def start(self) -> MPServer:
        handler = MPHandler(self.state)

        def protocol() -> SMTP:
            smtp = SMTP(handler, hostname=f"{self.name}.simulator", ident=self.name)
            self._sessions.add(smtp)
            return smtp

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, host="127.0.0.1", port=self.requested_port
        )
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and cut every open connection, as an MP going down does.

        Server.wait_closed() waits for every connection to end, so a client
        that keeps its connection open would otherwise hold the stop forever.
        """
        if self._server is None:
            return
        self._server.close()
        for smtp in list(self._sessions):
            if isinstance(smtp.transport, asyncio.Transport):
                smtp.transport.abort()
        await self._server.wait_closed()
        self._server = None
