"""Applying what MPs send back (DSN bounces, ARF spam reports) to the emails concerned.

The inbound SMTP server only stores raw reports in a stream; this consumer
group parses them (reports.py), finds their email by its signed id
(correlation.py), and records a soft bounce or a complaint. Entries are
acknowledged only after they are applied, and entries a dead consumer left
pending are claimed again, so a crash loses no report; applying a report
twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_engine import keys
from queue_engine.correlation import HEADER, email_id_from
from queue_engine.domain_labels import DomainLabels
from queue_engine.records import DELIVERY_LOG_LIMIT, TRANSITION_LUA, iso
from queue_engine.reports import Finding, parse_report
from queue_engine.stats import count_outcomes, count_spam_report
from queue_engine.statuses import SoftBounceReason, Status, soft_bounce_reason
from queue_engine.suppression import Origin, Suppressions, is_tencent
from queue_engine.tracking import Unsubscriber

log = logging.getLogger(__name__)

GROUP = "feedback"
_MESSAGE_ID = re.compile(r"<([0-9a-f]{28})@[^>]+>", re.IGNORECASE)
RECLAIM_IDLE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Applied:
    email_id: str | None
    kind: str
    outcome: str
    """soft_bounce/<reason>, complaint, unsubscribed (mail to a List-Unsubscribe mailto),
    ignored (no failure), unmatched, or stale."""


class FeedbackApplier:
    def __init__(
        self,
        redis: Redis,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        mx_hosts: Callable[[str], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.redis = redis
        self.secret = secret
        self.clock = clock
        self.mx_hosts = mx_hosts or _no_mx
        self.suppressions = Suppressions(redis, clock)
        self.unsubscriber = Unsubscriber(redis)
        self.labels = DomainLabels(redis, clock)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._transition = redis.register_script(TRANSITION_LUA)

    async def run(self) -> None:
        """Consume the inbound stream until cancelled; survives Redis outages."""
        while True:
            try:
                await self._ensure_group()
                while True:
                    await self.process(block_ms=1000)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("feedback: redis unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.INBOUND_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def process(self, block_ms: int | None = None, count: int = 20) -> list[Applied]:
        """Apply one batch: entries a dead consumer left behind first, then new ones."""
        await self._ensure_group()
        _, stale, *_ = await self.redis.xautoclaim(
            keys.INBOUND_STREAM, GROUP, self.consumer, RECLAIM_IDLE_MS, "0-0", count=count
        )
        entries = list(stale)
        if not entries:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, {keys.INBOUND_STREAM: ">"}, count=count, block=block_ms
            )
            entries = [entry for _, stream_entries in reply for entry in stream_entries]
        applied: list[Applied] = []
        for entry_id, fields in entries:
            applied += await self.apply(fields)
            await self.redis.xack(keys.INBOUND_STREAM, GROUP, entry_id)
        return applied

    async def apply(self, fields: dict[str, str]) -> list[Applied]:
        raw = base64.b64decode(fields.get("data_b64", ""))
        rcpt_to = fields.get("rcpt_to", "")
        now_ms = int(self.clock() * 1000)
        if email_id := await self.unsubscriber.by_mail(self.secret, rcpt_to, now_ms):
            return [Applied(email_id, "unsubscribe", "unsubscribed")]
        results = []
        for finding in parse_report(raw):
            email_id = self._email_id(finding, rcpt_to)
            if email_id is None:
                email_id = await self._by_message_id(finding)
            if email_id is None:
                results.append(Applied(None, finding.kind, "unmatched"))
            elif finding.kind == "arf":
                results.append(await self._complaint(email_id, finding))
            elif (
                finding.kind == "dsn"
                and finding.category is not None
                and (finding.action in (None, "failed"))
            ):
                results.append(await self._soft_bounce(email_id, finding))
            else:
                results.append(Applied(email_id, finding.kind, "ignored"))
        return results

    def _email_id(self, finding: Finding, rcpt_to: str) -> str | None:
        """A validly signed id: our VERP address, or our header in the original."""
        return (
            email_id_from(self.secret, rcpt_to)
            or email_id_from(self.secret, finding.return_path)
            or email_id_from(self.secret, _header(finding.original_headers, HEADER))
        )

    async def _by_message_id(self, finding: Finding) -> str | None:
        """Our Message-ID (`<email id@domain>`) when the report lost the signed tokens.

        It is not signed, so it counts only when the report also names the recipient
        and that recipient is the email's: nobody but the recipient and the mail path
        sees a Message-ID, and a report can then only concern that recipient's own mail.
        """
        found = _MESSAGE_ID.search(finding.original_message_id or "")
        if found is None or not finding.recipient:
            return None
        email_id = found.group(1).lower()
        recipient = await self.redis.hget(keys.email(email_id), "recipient")
        if recipient is None or recipient.lower() != finding.recipient.lower():
            return None
        return email_id

    def _entry(self, finding: Finding, stage: str, outcome: str) -> dict[str, Any]:
        return {
            "time": iso(int(self.clock() * 1000)),
            "stage": stage,
            "code": finding.smtp_code,
            "reply": finding.diagnostic or finding.feedback_type,
            "outcome": outcome,
        }

    async def _soft_bounce(self, email_id: str, finding: Finding) -> Applied:
        assert finding.category is not None
        key = keys.email(email_id)
        status, attempts, account, recipient, domain, log_json = await self.redis.hmget(
            key, ["status", "attempts", "account", "recipient", "domain", "log"]
        )
        if status != Status.DELIVERED:
            # Already bounced (a repeated DSN), failed, expired, or not yet recorded.
            return Applied(email_id, "dsn", "stale")
        if finding.recipient and recipient and finding.recipient.lower() != recipient.lower():
            return Applied(email_id, "dsn", "unmatched")
        reason = soft_bounce_reason(finding.category).value
        label = await self.labels.label(domain)
        entries = [*json.loads(log_json or "[]"), self._entry(finding, "dsn", "soft_bounce")]
        reply = finding.diagnostic or f"{finding.smtp_code or ''} {finding.enhanced_status or ''}"
        applied = await self._transition(
            keys=[key],
            args=[Status.DELIVERED, attempts or "0", "status", Status.SOFT_BOUNCE,
                  "reason", reason, "mp_reply", reply.strip(),
                  "log", json.dumps(entries[-DELIVERY_LOG_LIMIT:], separators=(",", ":"))],
        )  # fmt: skip
        if not applied:
            return Applied(email_id, "dsn", "stale")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.index_status(account, Status.DELIVERED), email_id)
            pipe.zadd(keys.index_status(account, Status.SOFT_BOUNCE), {email_id: 0})
            pipe.zadd(keys.index_status(account, Status.SOFT_BOUNCE, reason), {email_id: 0})
            if reason == SoftBounceReason.ADDRESS_NOT_EXIST:
                tencent = await is_tencent(domain, self.mx_hosts)
                await self.suppressions.add_bounces(
                    [(recipient, tencent, reply.strip())], Origin.DSN, pipe=pipe
                )
            count_outcomes(pipe, {(Status.SOFT_BOUNCE, reason, label): 1})
            await pipe.execute()
        return Applied(email_id, "dsn", f"soft_bounce/{reason}")

    async def _complaint(self, email_id: str, finding: Finding) -> Applied:
        key = keys.email(email_id)
        account, api_user, recipient, domain = await self.redis.hmget(
            key, ["account", "api_user", "recipient", "domain"]
        )
        if account is None:
            return Applied(email_id, "arf", "stale")
        complaint = {
            "time": iso(int(self.clock() * 1000)),
            "feedback_type": finding.feedback_type,
            "user_agent": finding.user_agent,
            "source_ip": finding.source_ip,
            "arrival_date": finding.arrival_date,
        }
        # Setting, not counting: a repeated report changes nothing.
        if await self.redis.hsetnx(key, "complaint", json.dumps(complaint, separators=(",", ":"))):
            await self.suppressions.complain(
                account, api_user, recipient, finding.feedback_type or "abuse", Origin.ARF
            )
            async with self.redis.pipeline(transaction=False) as pipe:
                count_spam_report(pipe, await self.labels.label(domain))
                await pipe.execute()
        return Applied(email_id, "arf", "complaint")


async def _no_mx(domain: str) -> list[str]:
    return []


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)
