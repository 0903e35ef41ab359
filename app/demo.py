"""Demo traffic: a steady stream of sends through the real API, for `make run`.

Recipients are spread over simulated MPs' domains, with a few addresses that
the simulator bounces, defers or drops, so every status shows up in the console.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
from pathlib import Path

import httpx
from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.accounts import AccountError, EmailType, create_account, create_api_user

log = logging.getLogger(__name__)

DEMO_DOMAINS = ["gmail.example", "outlook.example", "yahoo.example", "qq.example", "163.example"]
DEMO_ACCOUNT = "demo"
DEMO_EMAIL = "demo@mailpulse.example"


async def ensure_demo_account(redis: Redis, data_dir: Path) -> dict[str, str]:
    """The demo credentials, created on first run and kept in the data dir."""
    path = data_dir / "demo.json"
    if path.exists():
        creds: dict[str, str] = json.loads(path.read_text())
        if await redis.exists(keys.api_user(creds["api_user"])):
            return creds
    try:
        account = await create_account(redis, DEMO_ACCOUNT, DEMO_EMAIL)
    except AccountError as exc:
        raise AccountError(f"{exc}, but {path} with its keys is missing") from None
    marketing = await create_api_user(redis, DEMO_ACCOUNT, "demo-news", EmailType.MARKETING)
    transactional = await create_api_user(redis, DEMO_ACCOUNT, "demo-tx", EmailType.TRANSACTIONAL)
    creds = {
        "account": DEMO_ACCOUNT,
        "email": DEMO_EMAIL,
        "password": account.password,
        "account_key": account.account_key,
        "api_user": transactional.api_user,
        "api_key": transactional.api_key,
        "marketing_api_user": marketing.api_user,
        "marketing_api_key": marketing.api_key,
    }
    _write_private(path, json.dumps(creds, indent=2))
    return creds


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _recipients(counter: itertools.count[int], n: int) -> list[str]:
    out = []
    for _ in range(n):
        i = next(counter)
        roll = random.random()
        local = (
            f"unknown{i}" if roll < 0.03 else f"tempfail{i}" if roll < 0.06
            else f"spam{i}" if roll < 0.07 else f"user{i}"
        )  # fmt: skip
        out.append(f"{local}@{random.choice(DEMO_DOMAINS)}")
    return out


async def send_demo_traffic(base_url: str, creds: dict[str, str], per_second: float = 20) -> None:
    counter = itertools.count()
    users = [
        (creds["api_user"], creds["api_key"], "order"),
        (creds["marketing_api_user"], creds["marketing_api_key"], "newsletter"),
    ]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        while True:
            user, key, tag = random.choice(users)
            body = {
                "from": f"Demo Shop <{tag}@shop.mailpulse.example>",
                "to": _recipients(counter, random.randint(1, max(1, int(per_second)))),
                "subject": f"Your {tag} #{next(counter)}",
                "html": "<p>Hello from the mailpulse demo.</p>",
                "text": "Hello from the mailpulse demo.",
                "tag": tag,
            }
            try:
                response = await client.post("/v1/mail/send", json=body, auth=(user, key))
                if response.status_code != 202:
                    log.warning("demo send refused: %s %s", response.status_code, response.text)
            except httpx.HTTPError as exc:
                log.info("demo: web not reachable yet (%s)", exc)
            await asyncio.sleep(1.0)
