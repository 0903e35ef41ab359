"""Reading /metrics in tests, and the mail and reports that give the metrics something to say."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from app.mp_reports import build_arf, build_dsn
from queue_engine import keys
from queue_engine.correlation import return_path, token
from queue_engine.feedback import FeedbackApplier

RETURN_DOMAIN = "bounces.mailpulse.test"
ARTIFACTS = Path(__file__).resolve().parents[1] / "prometheus"
"""prometheus/ at the top of the repo: scrape config, rules, dashboard."""
DASHBOARD = ARTIFACTS / "grafana" / "mailpulse.json"
RULE_FILES = sorted((ARTIFACTS / "rules").glob("*.yml"))


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
    to = return_path(token(secret, email_id), RETURN_DOMAIN)
    recipient = await redis.hget(keys.email(email_id), "recipient")
    original = b"Subject: hi\r\n\r\nhi\r\n"
    report = (
        build_dsn("mx.mp.test", to, recipient, original)
        if kind == "dsn"
        else build_arf("mp.test", to, recipient, "127.0.0.1", original)
    )
    fields = {"rcpt_to": to, "data_b64": base64.b64encode(report).decode()}
    await FeedbackApplier(redis, secret).apply(fields)


async def run_tool(*args: str, stdin: str | None = None) -> tuple[int, str]:
    """Exit status and output (stdout then stderr) of a command such as promtool."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, (out + err).decode()


def rules() -> list[dict[str, Any]]:
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs
