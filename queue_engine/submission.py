"""Accepting a send call: validate, store one record per recipient, enqueue.

Everything a caller can get wrong is checked before anything is written, so a
refused call leaves no trace; a recipient with a malformed address is the one
exception the seed asks for: it is logged as `invalid/address_format_error`
and never attempted, while the others of the call proceed.
"""

from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formataddr
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from queue_engine import keys
from queue_engine.accounts import EmailType, Principal, tracking_base_url
from queue_engine.addresses import AddressError, parse_address, parse_mailbox
from queue_engine.config import MAX_RECIPIENTS, EngineConfig
from queue_engine.domain_labels import DomainLabels
from queue_engine.message import LINE_BREAKS, MessageError, build_body, check_headers, one_line
from queue_engine.queues import QueueStore
from queue_engine.records import EmailRecord, new_email_id
from queue_engine.stats import count_inbound, count_outcomes
from queue_engine.statuses import InvalidReason, Status
from queue_engine.suppression import Suppressions
from queue_engine.tracked_message import Prepared, prepare
from queue_engine.tracking import TrackingOptions

MAX_SUBJECT = 998
MAX_TAG = 64


class SubmissionError(MessageError):
    """A send call the platform refuses as a whole; `field` names what is wrong."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    from_name: str
    from_address: str
    to: list[str]
    subject: str
    html: str | None
    text: str | None
    tag: str
    headers: dict[str, str]
    tracking: TrackingOptions = field(default_factory=TrackingOptions)

    @classmethod
    def parse(cls, body: Any) -> SendRequest:
        if not isinstance(body, dict):
            raise SubmissionError("body", "must be a JSON object")
        unknown = set(body) - {
            "from",
            "to",
            "subject",
            "html",
            "text",
            "tag",
            "headers",
            "api_user",
            "tracking",
            "unsubscribe",
        }
        if unknown:
            raise SubmissionError(sorted(unknown)[0], "is not a field of a send request")
        if "from" not in body:
            raise SubmissionError("from", "is required")
        try:
            from_name, from_addr = parse_mailbox(body["from"])
        except AddressError as exc:
            raise SubmissionError("from", str(exc)) from None
        if from_name and not one_line("From", formataddr((from_name, from_addr.email))):
            raise SubmissionError("from", "the name must not contain line breaks, encoded or not")
        to = body.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            raise SubmissionError("to", "is required: a list of 1 to 1000 addresses")
        if len(to) > MAX_RECIPIENTS:
            raise SubmissionError("to", f"has {len(to)} recipients; at most {MAX_RECIPIENTS}")
        if not all(isinstance(t, str) for t in to):
            raise SubmissionError("to", "must be a list of strings")
        if any(len(t) > 320 for t in to):
            raise SubmissionError("to", "has an address longer than 320 characters")
        subject = body.get("subject", "")
        if not isinstance(subject, str):
            raise SubmissionError("subject", "must be a string")
        if any(c in subject for c in LINE_BREAKS) or not one_line("Subject", subject):
            raise SubmissionError("subject", "must not contain CR, LF, other line breaks or NUL")
        if len(subject) > MAX_SUBJECT:
            raise SubmissionError("subject", f"is longer than {MAX_SUBJECT} characters")
        html, text = body.get("html"), body.get("text")
        for name, value in (("html", html), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise SubmissionError(name, "must be a string")
        if html is None and text is None:
            raise SubmissionError("html", "give html or text (or both)")
        tag = body.get("tag") or ""
        if not isinstance(tag, str) or len(tag) > MAX_TAG or any(not c.isprintable() for c in tag):
            raise SubmissionError(
                "tag", f"must be a printable string of at most {MAX_TAG} characters"
            )
        headers = check_headers(body.get("headers"))
        tracking = TrackingOptions.parse(body.get("tracking"), body.get("unsubscribe"))
        if tracking.unsubscribe and _list_unsubscribe_given(headers):
            raise SubmissionError(
                "unsubscribe", "cannot be true with a List-Unsubscribe of your own in headers"
            )
        return cls(
            from_name=from_name,
            from_address=from_addr.email,
            to=to,
            subject=subject,
            html=html,
            text=text,
            tag=tag,
            headers=headers,
            tracking=tracking,
        )


def _list_unsubscribe_given(headers: dict[str, str]) -> bool:
    return any(name.lower() == "list-unsubscribe" for name in headers)


class Submitter:
    def __init__(self, redis: Redis, config: EngineConfig) -> None:
        self.redis = redis
        self.config = config
        self.queues = QueueStore(redis)
        self.suppressions = Suppressions(redis)
        self.labels = DomainLabels(redis)

    async def submit(
        self, principal: Principal, request: SendRequest, request_ip: str, now_ms: int
    ) -> list[str]:
        assert principal.api_user and principal.email_type
        api_user, account = principal.api_user, principal.account
        records: list[EmailRecord] = []
        needs_utf8 = False
        message_id = secrets.token_hex(12)
        for raw in request.to:
            email_id = new_email_id(now_ms)
            try:
                address = parse_address(raw)
                recipient, domain, status, reason = (
                    address.email,
                    address.domain,
                    Status.REQUESTING,
                    "",
                )
                needs_utf8 |= address.needs_smtputf8
            except AddressError as exc:
                recipient, domain = raw.strip(), raw.rpartition("@")[2].lower()
                status, reason = Status.INVALID, InvalidReason.ADDRESS_FORMAT_ERROR.value
                exc_text = str(exc)
            record = EmailRecord(
                email_id=email_id,
                account=account,
                api_user=api_user,
                recipient=recipient,
                domain=domain,
                type=principal.email_type.value,
                tag=request.tag,
                message_id=message_id,
                sender=request.from_address,
                status=status,
                reason=reason,
                request_ms=now_ms,
                request_ip=request_ip,
            )
            if status is Status.INVALID:
                record.mp_reply = f"mailpulse: recipient address format error: {exc_text}"
            records.append(record)
        await self._suppress(account, api_user, records, now_ms)
        tracked = await self._tracked(principal, request)
        body = build_body(
            from_name=request.from_name,
            from_address=request.from_address,
            subject=request.subject,
            html=tracked.html,
            text=tracked.text,
            headers=request.headers,
            date=datetime.fromtimestamp(now_ms / 1000, UTC),
            utf8=needs_utf8 or not request.from_address.isascii(),
        )
        await self._store(account, message_id, body, records, now_ms, tracked.plan)
        return [r.email_id for r in records]

    async def _tracked(self, principal: Principal, request: SendRequest) -> Prepared:
        """The parts to build the body from, with their per-recipient plan if any."""
        options = request.tracking
        list_unsubscribe = (
            principal.email_type is EmailType.MARKETING or options.unsubscribe
        ) and not _list_unsubscribe_given(request.headers)
        if request.html is None and not options.text_links and not list_unsubscribe:
            return Prepared(request.html, request.text, None)
        base = await tracking_base_url(self.redis, principal.account)
        return prepare(
            request.html,
            request.text,
            options,
            list_unsubscribe,
            base or self.config.tracking_base_url,
        )

    async def _suppress(
        self, account: str, api_user: str, records: list[EmailRecord], now_ms: int
    ) -> None:
        """Fail, unattempted and unbilled, the recipients a suppression list blocks."""
        candidates = [r for r in records if r.status is Status.REQUESTING]
        blocks = await self.suppressions.check(
            account, api_user, [r.recipient for r in candidates], now_ms
        )
        for record, block in zip(candidates, blocks, strict=True):
            if block is not None:
                record.status, record.reason = Status.INVALID, block.reason.value
                record.mp_reply = block.text

    async def _store(
        self,
        account: str,
        message_id: str,
        body: str,
        records: list[EmailRecord],
        now_ms: int,
        plan: str | None = None,
    ) -> None:
        retention = self.config.retention_days * 86400
        by_queue: dict[str, list[str]] = defaultdict(list)
        # One ZADD per index for the whole call: recipients of a call share most indexes.
        index_members: dict[str, dict[str, int]] = defaultdict(dict)
        address_keys: set[str] = set()
        for r in records:
            address_key = keys.index_address(account, r.recipient.lower())
            address_keys.add(address_key)
            for key in (address_key, *record_indexes(r)):
                index_members[key][r.email_id] = 0
            if r.status is Status.REQUESTING:
                by_queue[keys.queue_tag(r.api_user, r.domain)].append(r.email_id)
        failed = [r for r in records if r.status is not Status.REQUESTING]
        labels = await self.labels.labels({r.domain for r in failed})
        outcomes = Counter((r.status.value, r.reason, labels[r.domain]) for r in failed)
        domains = {keys.split_queue_tag(tag)[1] for tag in by_queue}
        queue_labels = (
            await self.labels.claim(domains, self.config.metrics_top_domains) if domains else {}
        )
        # On one Redis server, one MULTI: a call cut off by a crash (of Redis or of this
        # process) leaves all of it or nothing, never records that no queue holds, which
        # would show as `requesting` forever. A cluster cannot (below).
        atomic = isinstance(self.redis, Redis)
        async with self.redis.pipeline(transaction=atomic) as pipe:
            body_ttl = int(self.config.max_age_seconds) + 86400
            pipe.set(keys.message(message_id), body, ex=body_ttl)
            if plan is not None:
                pipe.set(keys.message_tracking(message_id), plan, ex=body_ttl)
            for r in records:
                pipe.hset(keys.email(r.email_id), mapping=r.to_hash())
                pipe.expire(keys.email(r.email_id), retention)
            for key, members in index_members.items():
                pipe.zadd(key, members)
            # Per-address and per-tag indexes are too many to trim: they expire when unused.
            for key in address_keys:
                pipe.expire(key, retention)
            if records[0].tag:
                pipe.expire(keys.index_tag(account, records[0].tag), retention)
            count_outcomes(pipe, outcomes)
            if atomic:
                await self._enqueue(pipe, by_queue, queue_labels, now_ms)
            await pipe.execute()
        if not by_queue:
            return
        if not atomic:
            # Enqueued only once the records and body are stored: on Redis Cluster one
            # pipeline writes to several nodes at once, and an engine that claimed an
            # email before its record landed would drop it as gone.
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._enqueue(pipe, by_queue, queue_labels, now_ms)
                await pipe.execute()
        await self.redis.publish(keys.WAKE_CHANNEL, "enqueue")

    async def _enqueue(
        self,
        pipe: Pipeline,
        by_queue: dict[str, list[str]],
        labels: dict[str, str],
        now_ms: int,
    ) -> None:
        for tag, ids in by_queue.items():
            await self.queues.enqueue(pipe, tag, ids, now_ms)
        count_inbound(pipe, {tag: len(ids) for tag, ids in by_queue.items()}, labels, now_ms)


def record_indexes(r: EmailRecord) -> list[str]:
    """The account-level indexes a new record belongs to (the address index aside)."""
    found = [
        keys.index_all(r.account),
        keys.index_api_user(r.account, r.api_user),
        keys.index_type(r.account, r.type),
        keys.index_status(r.account, r.status),
    ]
    if r.tag:
        found.append(keys.index_tag(r.account, r.tag))
    if r.reason:
        found.append(keys.index_status(r.account, r.status, r.reason))
    return found
