"""Demo traffic: a steady stream of sends through the real API, for `make run`.

About 20 messages a second, spread over the domains of the simulated MPs
(app/mp_profiles.toml) the way a consumer list is: mostly Gmail, then QQ,
Outlook, Yahoo and NetEase. The MPs answer some recipients as unknown users or
spam by their profile's shares, drop a few connections, and defer the
`tempfail*` addresses once. QQ's per-minute limit is far below its share of this
traffic, so within a minute its queues are throttled with "Ip frequency limited"
and pause while the other domains' rates keep moving.
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

# Domain -> weight. Each is served by a profile of app/mp_profiles.toml.
DEMO_DOMAINS: dict[str, int] = {
    "gmail.example": 30,
    "googlemail.example": 4,
    "qq.example": 16,
    "foxmail.example": 2,
    "outlook.example": 14,
    "hotmail.example": 8,
    "yahoo.example": 12,
    "163.example": 10,
    "126.example": 4,
}
DEMO_PER_SECOND = 20
TEMPFAIL_SHARE = 0.02
REMAIL_BOUNCED_SHARE = 0.01
_NAMES = ("alice", "bob", "chen", "dmitri", "eve", "fatima", "li.wei", "mateo", "noor", "zhang")
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


def _recipients(
    counter: itertools.count[int], n: int, rng: random.Random, bounced: list[str]
) -> list[str]:
    """`bounced` keeps recent addresses that bounce: mailing one again a little later shows
    the bounce list at work (`invalid/blacklist`, never attempted)."""
    domains, weights = list(DEMO_DOMAINS), list(DEMO_DOMAINS.values())
    out = []
    for domain in rng.choices(domains, weights, k=n):
        i = next(counter)
        roll = rng.random()
        if bounced and roll > 1 - REMAIL_BOUNCED_SHARE:
            out.append(rng.choice(bounced))
            continue
        # A few recipients bounce later (DSN) or report spam (ARF), so soft bounces
        # and complaints show up too.
        name = (
            "tempfail" if roll < TEMPFAIL_SHARE
            else "bounce" if roll < TEMPFAIL_SHARE + 0.02
            else "complain" if roll < TEMPFAIL_SHARE + 0.025
            else rng.choice(_NAMES)
        )  # fmt: skip
        out.append(f"{name}.{i}@{domain}")
        if name == "bounce":
            bounced.append(out[-1])
            del bounced[:-50]
    return out


async def send_demo_traffic(
    base_url: str, creds: dict[str, str], per_second: float = DEMO_PER_SECOND
) -> None:
    """Once a second, one send per demo API_USER, `per_second` recipients in all on average."""
    rng = random.Random()
    counter = itertools.count()
    bounced: list[str] = []
    users = [
        (creds["api_user"], creds["api_key"], "order"),
        (creds["marketing_api_user"], creds["marketing_api_key"], "newsletter"),
    ]
    share = max(1.0, per_second / len(users))
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        while True:
            for user, key, tag in users:
                n = rng.randint(max(1, round(share / 2)), max(1, round(share * 1.5)))
                body = {
                    "from": f"Demo Shop <{tag}@shop.mailpulse.example>",
                    "to": _recipients(counter, n, rng, bounced),
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
            next_tick = max(next_tick + 1.0, loop.time())
            await asyncio.sleep(next_tick - loop.time())
