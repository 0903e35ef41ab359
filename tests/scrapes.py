"""Reading /metrics in tests, and the mail and reports that give the metrics something to say."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from app.mp_reports import build_arf, build_dsn
from queue_engine import keys
from queue_engine.correlation import return_path
from queue_engine.feedback import FeedbackApplier

RETURN_DOMAIN = "bounces.mailpulse.test"


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for n, labels in self.samples if n == name]

    def total(self, name: str, **labels: str) -> float:
        """Sum of the series of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def parse(text: str) -> Scrape:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(text, samples)


async def get_metrics(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def send(
    client: httpx.AsyncClient, auth: dict[str, str], to: list[str], **extra: Any
) -> list[str]:
    body = {"from": "shop@acme.example", "to": to, "text": "hi", **extra}
    response = await client.post("/v1/mail/send", json=body, headers=auth)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    return ids


async def wait_final(redis: Redis, email_ids: list[str], wait_for: Any) -> None:
    async def settled() -> bool:
        async with redis.pipeline(transaction=False) as pipe:
            for email_id in email_ids:
                pipe.hget(keys.email(email_id), "status")
            statuses = await pipe.execute()
        return all(s not in (None, "requesting") for s in statuses)

    await wait_for(settled)


async def apply_report(redis: Redis, secret: bytes, email_id: str, kind: str) -> None:
    """What an MP's DSN bounce ("dsn") or ARF spam report ("arf") about the email does."""
    to = return_path(secret, email_id, RETURN_DOMAIN)
    recipient = await redis.hget(keys.email(email_id), "recipient")
    original = b"Subject: hi\r\n\r\nhi\r\n"
    report = (
        build_dsn("mx.mp.test", to, recipient, original)
        if kind == "dsn"
        else build_arf("mp.test", to, recipient, "127.0.0.1", original)
    )
    fields = {"rcpt_to": to, "data_b64": base64.b64encode(report).decode()}
    await FeedbackApplier(redis, secret).apply(fields)
