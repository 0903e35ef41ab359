"""A sender that keeps posting through the send API, for tests that break things under load."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Traffic:
    """Posts 20 recipients at a time, spread over `domains`, as fast as it is answered."""

    client: httpx.AsyncClient
    auth: dict[str, str]
    domains: list[str]
    acknowledged: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    stopped: bool = False
    """Stops it between calls: a cancellation can be lost inside a call (Python 3.11's
    asyncio.wait_for, which the app's body limit uses, may swallow one)."""

    async def run(self) -> None:
        while not self.stopped:
            n = self.calls
            self.calls += 1
            to = [f"u{n}-{i}@{self.domains[i % len(self.domains)]}" for i in range(20)]
            body = {"from": "shop@acme.example", "to": to, "subject": "s", "text": "t"}
            response = await self.client.post("/v1/mail/send", json=body, headers=self.auth)
            self.answers[response.status_code] += 1
            if response.status_code == 202:
                self.acknowledged += response.json()["email_ids"]
            else:
                self.errors[response.json()["error"]["code"]] += 1
                await asyncio.sleep(0.05)  # a client backing off, as Retry-After asks
