"""Delivering one claimed batch of a queue, as a list of verbs.

Load the records, drop what is no longer ours to send, fail what is too old,
route, send, then record every outcome in two steps: the idempotent status
transitions first, then the index moves and the queue bookkeeping for the
transitions that applied. A crash between the two leaves leases that expire
and emails that are redelivered, never lost; the transition guard keeps a
redelivery from being counted twice, and the engine that finds such an email
already final does the bookkeeping and counting the dead one did not. Final
outcomes are recorded while the rest of the batch is still being sent, so a
crash sends again only what was in flight, not the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.classify import classify_reply
from queue_engine.config import EngineConfig
from queue_engine.correlation import return_path, token
from queue_engine.domain_labels import DomainLabels
from queue_engine.message import recipient_prefix
from queue_engine.queues import QueueStore
from queue_engine.records import DELIVERY_LOG_LIMIT, TRANSITION_LUA, iso
from queue_engine.routing import Destination, Router, RoutingError
from queue_engine.scripts import Batched
from queue_engine.smtp_client import (
    AttemptResult,
    NoConnection,
    Outcome,
    SmtpPool,
    send_one,
    wire_body,
)
from queue_engine.stats import count_attempts, count_outcomes, count_sent
from queue_engine.statuses import Category, InvalidReason, PauseReason, Status, invalid_reason
from queue_engine.suppression import Origin, Suppressions, is_tencent
from queue_engine.tracked_message import TrackedMessage

log = logging.getLogger(__name__)

_FIELDS = [
    "account",
    "api_user",
    "recipient",
    "mid",
    "sender",
    "status",
    "attempts",
    "request_ms",
    "connected",
    "log",
    "reason",
]


@dataclass(slots=True)
class Pending:
    email_id: str
    account: str
    api_user: str
    recipient: str
    message_id: str
    sender: str
    attempts: int
    request_ms: int
    connected: bool
    delivery_log: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Settled:
    """An email this batch found already final: its index moves are redone, in case the
    engine that finished it died between recording the status and moving the indexes."""

    email_id: str
    account: str | None
    status: str | None
    reason: str | None
    attempted: bool = False
    """Its final status came from an SMTP attempt (not from the queue: expiry, a list)."""

    @property
    def outcome(self) -> tuple[str, str]:
        """What the engine that recorded it counts: a soft bounce was delivered first (the
        bounce is counted where it is applied, feedback.py)."""
        if self.status == Status.SOFT_BOUNCE:
            return Status.DELIVERED, ""
        return self.status or "", self.reason or ""


@dataclass(slots=True)
class Update:
    """One outcome to record: the new fields, and where the email goes next."""

    email: Pending
    fields: dict[str, str]
    final: tuple[Status, str] | None = None
    retry_at_ms: int | None = None
    attempt: AttemptResult | None = None
    seconds: float = 0.0
    """How long `attempt` took, connecting included (the metrics' histogram)."""


@dataclass(slots=True)
class BatchReport:
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    attempts: list[AttemptResult] = field(default_factory=list)
    pause: tuple[PauseReason, str, int | None] | None = None
    """Why the queue must pause (reason, reply, until; None: the policy's throttle pause).
    Set when the MP says to slow down or a limit runs out: the batch stops there."""
    busy: bool = False
    """Emails went back untried because every allowed connection was in use: the engine
    should leave this queue alone for a moment. They keep their place (due now), so
    they still go before mail that comes back from a dead engine's leases."""


STATUS_WRITE_SECONDS = 0.005
"""An engine starts at most one status write per this long. A write costs the engine
some 45 µs however many outcomes it carries (and Redis an fsync): one per outcome
would cost a fifth of the engine's time per email at full speed, while at most 200
a second cost it under 1 % of a core at any rate. An outcome waits at most this long
plus the write in flight: a kill resends only what the MP accepted in those few
milliseconds before it."""

BOOKKEEPING_SECONDS = 0.02
"""How long written outcomes wait for others of their batch to be booked with them
(index moves, acknowledgement, counting): a handful of those writes per batch, not
one per status write. Off the path that decides duplicates: a kill in this wait
leaves the outcomes final, and the engine that finds them so books them
(`Deliverer._unacknowledged`)."""


class _StatusWriter:
    """Writes the final statuses of every batch an engine is sending, in paced groups.

    What stops a later engine from sending an email again is its final status
    (`Deliverer._unacknowledged`), so that write goes alone and first: an
    outcome that finds no write in flight and none started within
    STATUS_WRITE_SECONDS is written at once; others go together in the next
    write (one round trip: a pipeline of EVALSHAs), whatever their queue.
    """

    def __init__(self, write: Callable[[list[Update]], Awaitable[list[bool]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Update, _Settler]] = []
        self._task: asyncio.Task[None] | None = None
        self._last_start = float("-inf")
        self._hurry = asyncio.Event()
        """A batch has sent everything and waits for its statuses: no pause then."""

    def add(self, update: Update, settler: _Settler) -> None:
        self._waiting.append((update, settler))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def hurry(self) -> None:
        self._hurry.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            pause = self._last_start + STATUS_WRITE_SECONDS - loop.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._hurry.wait()
            self._hurry.clear()
            group, self._waiting = self._waiting, []
            self._last_start = loop.time()
            try:
                applied = await self._write([update for update, _ in group])
            except Exception as exc:  # Redis down: each batch learns it, the leases expire
                for _, settler in group:
                    settler.failed(exc)
            else:
                for (update, settler), ok in zip(group, applied, strict=True):
                    settler.written(update, ok)


class _Settler:
    """Records a batch's final outcomes while the rest of it is still being sent.

    Their statuses go to the engine's `_StatusWriter`; the bookkeeping of what
    was written follows in a stream of this batch's own, gathered over
    BOOKKEEPING_SECONDS, that no status write waits for.
    """

    def __init__(
        self,
        statuses: _StatusWriter,
        book: Callable[[list[Update], list[bool]], Awaitable[None]],
    ) -> None:
        self._statuses = statuses
        self._book_written = book
        self._unwritten = 0
        self._all_written = asyncio.Event()
        self._all_written.set()
        self._failed: Exception | None = None
        self._written: list[tuple[Update, bool]] = []
        self._booker: asyncio.Task[None] | None = None
        self._sent_all = asyncio.Event()

    def add(self, update: Update) -> None:
        self._unwritten += 1
        self._all_written.clear()
        self._statuses.add(update, self)

    def written(self, update: Update, applied: bool) -> None:
        self._written.append((update, applied))
        if self._booker is None or self._booker.done():
            self._booker = asyncio.create_task(self._book())
        self._one_less()

    def failed(self, exc: Exception) -> None:
        self._failed = self._failed or exc
        self._one_less()

    def _one_less(self) -> None:
        self._unwritten -= 1
        if not self._unwritten:
            self._all_written.set()

    async def _book(self) -> None:
        while self._written:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOOKKEEPING_SECONDS):
                    await self._sent_all.wait()
            written, self._written = self._written, []
            await self._book_written([u for u, _ in written], [ok for _, ok in written])

    async def finish(self) -> None:
        """Book what is written at once, and wait until every outcome is written and
        booked; a failed write (Redis down) then raises: the leases will expire.

        A batch that is stopped (its engine cancelled) still waits for these writes,
        a round trip or two, before it stops: what the MP accepted is recorded and
        counted now, not by another engine after the lease."""
        self._sent_all.set()
        if self._unwritten:
            self._statuses.hurry()
        try:
            await self._ended()
        except asyncio.CancelledError:
            await self._ended()
            raise
        if self._failed is not None:
            raise self._failed

    async def _ended(self) -> None:
        await self._all_written.wait()
        if self._booker is not None:
            try:
                # Shielded: a cancellation of this wait leaves the bookkeeping running.
                await asyncio.shield(self._booker)
            except Exception as exc:
                self._failed = self._failed or exc


class Deliverer:
    def __init__(
        self,
        redis: Redis,
        config: EngineConfig,
        router: Router,
        pool: SmtpPool,
        clock: Callable[[], float],
    ) -> None:
        self.redis = redis
        self.config = config
        self.router = router
        self.pool = pool
        self.clock = clock
        self.queues = QueueStore(redis)
        self.suppressions = Suppressions(redis, clock)
        self.labels = DomainLabels(redis, clock)
        self._transition = Batched(redis, TRANSITION_LUA)
        self._statuses = _StatusWriter(self._write_statuses)
        self._bodies: dict[str, bytes | TrackedMessage] = {}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def deliver(
        self,
        tag: str,
        email_ids: list[str],
        lease_deadline_ms: int | None = None,
        attempt_ended: Callable[[], None] | None = None,
    ) -> BatchReport:
        """Deliver a claimed batch; what cannot start safely before the lease ends goes back.
        `attempt_ended` is called as each SMTP attempt ends (the engine watches for stalls)."""
        report = BatchReport()
        api_user, domain = keys.split_queue_tag(tag)
        pending, gone = await self._load(email_ids)
        recovered = await self._unacknowledged(tag, gone)
        report.skipped = len(gone)
        updates: list[Update] = []
        sendable: list[Pending] = []
        for email in pending:
            if self.now_ms() - email.request_ms > self.config.max_age_seconds * 1000:
                updates.append(self._expired(email))
            else:
                sendable.append(email)
        if sendable:
            sendable = await self._unsuppressed(api_user, sendable, updates)
        settler = _Settler(
            self._statuses, lambda written, applied: self._book(tag, written, applied, [], report)
        )

        def attempted(update: Update) -> None:
            if attempt_ended is not None:
                attempt_ended()
            if update.final:
                settler.add(update)

        try:
            if sendable:
                updates += await self._route_and_send(
                    domain, sendable, report, lease_deadline_ms, attempted
                )
        finally:
            await settler.finish()
        applied = await self._write_statuses(updates)
        await self._book(tag, updates, applied, gone, report, recovered)
        if report.pause:
            reason, reply, until = report.pause
            now = self.now_ms()
            if until is None:
                pause_s = self.pool.policy.for_domain(domain).throttle_pause_seconds
                until = now + int(pause_s * 1000)
            await self.queues.pause(tag, reason, now, until, reply)
            log.info("queue %s paused (%s) until %s: %s", tag, reason, iso(until), reply)
        return report

    async def _unsuppressed(
        self, api_user: str, emails: list[Pending], updates: list[Update]
    ) -> list[Pending]:
        """Checked again at delivery: lists change while mail waits in the queue."""
        blocks = await self.suppressions.check(
            emails[0].account, api_user, [e.recipient for e in emails], self.now_ms()
        )
        keep = []
        for email, block in zip(emails, blocks, strict=True):
            if block is None:
                keep.append(email)
            else:
                updates.append(self._fail(email, block.reason, block.text))
        return keep

    async def _route_and_send(
        self,
        domain: str,
        emails: list[Pending],
        report: BatchReport,
        lease_deadline_ms: int | None,
        attempted: Callable[[Update], None],
    ) -> list[Update]:
        """Updates still to record; `attempted` got each SMTP attempt's, and records the
        final ones."""
        try:
            destinations = await self.router.resolve(domain)
        except RoutingError as exc:
            return [self._unroutable(email, exc) for email in emails]
        limiter = self.pool.limiter
        grant = await limiter.take_domain(domain, len(emails))
        allowed, over = emails[: grant.granted], emails[grant.granted :]
        updates = [Update(email, {}, retry_at_ms=self.now_ms()) for email in over]
        untried = 0
        if allowed:
            sent = await self._send_all(
                destinations, domain, allowed, report, lease_deadline_ms, attempted
            )
            untried = sum(1 for u in sent if not u.fields)
            await limiter.refund_domain(domain, untried)
            updates += sent
        if over and untried:
            # Units were given back, so the quota is not spent: try again in a moment.
            report.busy = True
        elif over and not report.pause:
            p = self.pool.policy.for_domain(domain)
            report.pause = (
                PauseReason.DOMAIN_QUOTA,
                f"mailpulse: quota of {self.pool.policy.provider(domain)} reached"
                f" ({p.quota_per_hour or 'no'} per hour, {p.quota_per_day or 'no'} per day)",
                grant.until_ms,
            )
        return updates

    async def _load(self, email_ids: list[str]) -> tuple[list[Pending], list[Settled]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for email_id in email_ids:
                pipe.hmget(keys.email(email_id), _FIELDS)
            rows = await pipe.execute()
        pending: list[Pending] = []
        gone: list[Settled] = []
        for email_id, row in zip(email_ids, rows, strict=True):
            values = dict(zip(_FIELDS, row, strict=True))
            if values["status"] != Status.REQUESTING:
                # Already final (a redelivered lease) or expired.
                last = (json.loads(values["log"] or "[]") or [{}])[-1]
                gone.append(
                    Settled(
                        email_id,
                        values["account"],
                        values["status"],
                        values["reason"],
                        attempted=last.get("stage", "queue") != "queue",
                    )
                )
                continue
            pending.append(
                Pending(
                    email_id=email_id,
                    account=values["account"],
                    api_user=values["api_user"],
                    recipient=values["recipient"],
                    message_id=values["mid"],
                    sender=values["sender"],
                    attempts=int(values["attempts"] or 0),
                    request_ms=int(values["request_ms"]),
                    connected=values["connected"] == "1",
                    delivery_log=json.loads(values["log"] or "[]"),
                )
            )
        return pending, gone

    async def _unacknowledged(self, tag: str, gone: list[Settled]) -> list[Settled]:
        """Final emails still leased: an engine recorded them and died before the second
        round trip, which acknowledges and counts them. (Acknowledged ones are counted.)"""
        settled = [g for g in gone if g.account and g.status]
        if not settled:
            return []
        scores = await self.redis.zmscore(keys.queue_lease(tag), [g.email_id for g in settled])
        return [g for g, score in zip(settled, scores, strict=True) if score is not None]

    async def _bodies_for(self, message_ids: set[str]) -> dict[str, bytes | TrackedMessage | None]:
        """Shared wire bodies, or a tracked body's parts to render per email."""
        missing = [m for m in message_ids if m not in self._bodies]
        if missing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for message_id in missing:
                    pipe.get(keys.message(message_id))
                    pipe.get(keys.message_tracking(message_id))
                found = await pipe.execute()
            if len(self._bodies) > 256:
                self._bodies.clear()
            for message_id, body, plan in zip(missing, found[::2], found[1::2], strict=True):
                if body is not None:
                    self._bodies[message_id] = (
                        wire_body(body.encode()) if plan is None else TrackedMessage(body, plan)
                    )
        return {m: self._bodies.get(m) for m in message_ids}

    async def _send_all(
        self,
        destinations: list[Destination],
        domain: str,
        emails: list[Pending],
        report: BatchReport,
        lease_deadline_ms: int | None,
        attempted: Callable[[Update], None],
    ) -> list[Update]:
        bodies = await self._bodies_for({e.message_id for e in emails})
        updates: list[Update] = []
        todo = asyncio.Queue[Pending]()
        for email in emails:
            todo.put_nowait(email)
        # A transaction started later could outlive the lease, and another engine
        # would then send the same email: a slow MP gets the rest back instead.
        margin_ms = int(
            min(3 * self.config.smtp_timeout_seconds, self.config.lease_seconds / 2) * 1000
        )
        last_start_ms = None if lease_deadline_ms is None else lease_deadline_ms - margin_ms

        refused: list[NoConnection] = []

        async def lane() -> None:
            while not todo.empty():
                email = todo.get_nowait()
                if report.pause or (last_start_ms is not None and self.now_ms() > last_start_ms):
                    updates.append(Update(email, {}, retry_at_ms=self.now_ms()))
                    continue
                body = bodies[email.message_id]
                if body is None:
                    updates.append(self._lost_body(email))
                    continue
                started = time.perf_counter()
                signed = token(self.config.secret, email.email_id)
                try:
                    result = await send_one(
                        self.pool,
                        destinations,
                        domain,
                        self._envelope_sender(email, signed),
                        email.recipient,
                        self._message(email, body, signed),
                        smtputf8=not email.recipient.isascii(),
                        # Cut at the lease's end: another engine may have the email then.
                        within=None
                        if lease_deadline_ms is None
                        else (lease_deadline_ms - self.now_ms()) / 1000,
                    )
                except NoConnection as exc:
                    # This lane gets no connection; the others carry on with the rest.
                    refused.append(exc)
                    updates.append(Update(email, {}, retry_at_ms=self.now_ms()))
                    return
                report.attempts.append(result)
                update = self._after_attempt(email, result, report)
                update.attempt, update.seconds = result, time.perf_counter() - started
                attempted(update)
                if not update.final:
                    updates.append(update)

        p = self.pool.policy
        lanes = min(len(emails), p.for_domain(domain).max_connections * max(1, len(p.sources)))
        await asyncio.gather(*(lane() for _ in range(lanes)))
        while not todo.empty():
            updates.append(Update(todo.get_nowait(), {}, retry_at_ms=self.now_ms()))
        report.busy = report.busy or any(exc.pause is None for exc in refused)
        for exc in refused:
            # Spent IP quotas stop the queue; a spent connection rate only when no
            # connection of this batch could carry on.
            stop = exc.pause is PauseReason.IP_QUOTA or (exc.pause and not report.attempts)
            if stop and exc.pause and not report.pause:
                report.pause = (exc.pause, exc.reply, exc.retry_at_ms)
        return updates

    def _envelope_sender(self, email: Pending, signed: str) -> str:
        if self.config.return_path_domain:
            return return_path(signed, self.config.return_path_domain)
        return email.sender

    def _message(self, email: Pending, body: bytes | TrackedMessage, signed: str) -> bytes:
        id_domain = self.config.return_path_domain or email.sender.rpartition("@")[2]
        prefix = recipient_prefix(email.recipient, email.email_id, id_domain, signed)
        if isinstance(body, TrackedMessage):
            headers, wire = body.render(
                self.config.secret,
                email.email_id,
                email.account,
                email.api_user,
                email.recipient,
                self.config.return_path_domain,
            )
            return (prefix + headers).encode() + wire
        return prefix.encode() + body

    def _log_entry(self, result: AttemptResult) -> dict[str, Any]:
        return {
            "time": iso(self.now_ms()),
            "mx": result.mx,
            "sending_ip": result.sending_ip or None,
            "stage": result.stage,
            "code": result.code,
            "reply": result.reply,
            "outcome": result.outcome.value,
        }

    def _after_attempt(
        self, email: Pending, result: AttemptResult, report: BatchReport | None = None
    ) -> Update:
        now = self.now_ms()
        connected = email.connected or result.connected
        fields = {
            "attempts": str(email.attempts + 1),
            "mp_reply": result.mp_reply,
            "log": self._log(email, self._log_entry(result)),
            "connected": "1" if connected else "0",
        }
        if result.sending_ip:
            fields["sending_ip"] = result.sending_ip
        if result.connected:
            fields["billable"] = "1"
        if result.outcome is Outcome.DELIVERED:
            fields |= {"status": Status.DELIVERED, "send_ms": str(now)}
            return Update(email, fields, final=(Status.DELIVERED, ""))
        verdict = classify_reply(result.code, result.reply) if result.code else None
        if verdict is not None and verdict.pause_reason is not None and report is not None:
            # A throttle, even one an MP words as 5xx (QQ "550 Ip frequency limited"):
            # the pause is this email's backoff; it goes when the queue resumes.
            report.pause = report.pause or (verdict.pause_reason, result.mp_reply, None)
            return Update(email, fields, retry_at_ms=now)
        if result.outcome is Outcome.PERMANENT:
            category = (verdict or classify_reply(550, result.reply)).category
            reason = invalid_reason(category)
            fields |= {"status": Status.INVALID, "reason": reason}
            return Update(email, fields, final=(Status.INVALID, reason))
        retry_at = now + int(self.config.retry_delay(email.attempts + 1) * 1000)
        if retry_at - email.request_ms > self.config.max_age_seconds * 1000:
            reason = InvalidReason.OTHER if connected else InvalidReason.SERVER_UNREACHABLE
            fields |= {"status": Status.INVALID, "reason": reason}
            return Update(email, fields, final=(Status.INVALID, reason))
        return Update(email, fields, retry_at_ms=retry_at)

    def _log(self, email: Pending, entry: dict[str, Any]) -> str:
        entries = [*email.delivery_log, entry][-DELIVERY_LOG_LIMIT:]
        return json.dumps(entries, separators=(",", ":"))

    def _fail(self, email: Pending, reason: InvalidReason, reply: str) -> Update:
        entry = {
            "time": iso(self.now_ms()),
            "stage": "queue",
            "reply": reply,
            "outcome": "permanent",
        }
        fields = {
            "status": Status.INVALID,
            "reason": reason,
            "mp_reply": reply,
            "log": self._log(email, entry),
            "attempts": str(email.attempts),
        }
        return Update(email, fields, final=(Status.INVALID, reason))

    def _expired(self, email: Pending) -> Update:
        reason = InvalidReason.OTHER if email.connected else InvalidReason.SERVER_UNREACHABLE
        hours = self.config.max_age_seconds / 3600
        return self._fail(email, reason, f"mailpulse: not delivered within {hours:g} hours")

    def _unroutable(self, email: Pending, exc: RoutingError) -> Update:
        if exc.permanent:
            return self._fail(email, invalid_reason(Category.SERVER_UNREACHABLE), exc.reply)
        result = AttemptResult(Outcome.TEMPORARY, None, exc.reply, "", "", False, "dns")
        return self._after_attempt(email, result)

    def _lost_body(self, email: Pending) -> Update:
        return self._fail(email, InvalidReason.OTHER, "mailpulse: message body expired")

    async def _write_statuses(self, updates: list[Update]) -> list[bool]:
        """Apply each update's status transition, all in one round trip; whether each
        applied (one handed back untried has nothing to write: True)."""
        calls = []
        for u in updates:
            if u.fields:
                args = [Status.REQUESTING.value, str(u.email.attempts)]
                for name, value in u.fields.items():
                    args += [name, value]
                calls.append(([keys.email(u.email.email_id)], args))
        replies = await self._transition.run(calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        applied = iter(replies)
        return [bool(next(applied)) if u.fields else True for u in updates]

    async def _book(
        self,
        tag: str,
        updates: list[Update],
        applied: list[bool],
        gone: list[Settled],
        report: BatchReport,
        recovered: list[Settled] | None = None,
    ) -> None:
        """Index moves, acknowledgement, requeueing and counting of written updates;
        `gone`: emails found final, whose index moves are redone and which are
        acknowledged; `recovered`: those of them to count for a dead engine."""
        recovered = recovered or []
        api_user, domain = keys.split_queue_tag(tag)
        label = await self.labels.label(domain)
        overtaken = [u.email.email_id for u, ok in zip(updates, applied, strict=True) if not ok]
        if overtaken:
            gone = gone + (await self._load(overtaken))[1]
        acks = [g.email_id for g in gone]
        retries: dict[str, int] = {}
        # Index moves grouped per key: one ZREM and a ZADD or two per batch, not per email.
        moved: dict[str, list[str]] = defaultdict(list)
        added: dict[str, dict[str, int]] = defaultdict(dict)
        outcomes: Counter[tuple[str, str, str]] = Counter((*g.outcome, label) for g in recovered)
        delivered = 0

        def move(email_id: str, account: str, status: str, reason: str | None) -> None:
            moved[keys.index_status(account, Status.REQUESTING)].append(email_id)
            added[keys.index_status(account, status)][email_id] = 0
            if reason:
                added[keys.index_status(account, status, reason)][email_id] = 0

        for g in gone:
            if g.account and g.status:  # an expired record has no indexes to mend
                move(g.email_id, g.account, g.status, g.reason)
        report.skipped += len(overtaken)
        bounced = [
            (u.email.recipient, u.fields.get("mp_reply", ""))
            for u, ok in zip(updates, applied, strict=True)
            if ok and u.final == (Status.INVALID, InvalidReason.ADDRESS_NOT_EXIST)
        ]
        tencent = bool(bounced) and await is_tencent(domain, self.router.mx_hosts)
        for u, ok in zip(updates, applied, strict=True):
            if not ok:
                continue
            if u.final:
                status, reason = u.final
                acks.append(u.email.email_id)
                outcomes[(status, reason, label)] += 1
                move(u.email.email_id, u.email.account, status, reason)
                if status is Status.DELIVERED:
                    delivered += 1
                else:
                    report.failed += 1
            else:
                assert u.retry_at_ms is not None
                retries[u.email.email_id] = u.retry_at_ms
                report.retried += 1
        report.delivered += delivered
        attempts = [u for u in updates if u.attempt is not None]
        recovered_attempts = sum(g.attempted for g in recovered)
        recovered_outbound = sum(g.outcome[0] == Status.DELIVERED for g in recovered)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, ids in moved.items():
                pipe.zrem(key, *ids)
            for key, members in added.items():
                pipe.zadd(key, members)
            await self.queues.windows.add(
                pipe,
                tag,
                self.now_ms() // 1000,
                attempted=len(attempts) + recovered_attempts,
                outbound=delivered + recovered_outbound,
            )
            count_outcomes(pipe, outcomes)
            count_attempts(
                pipe,
                api_user,
                label,
                [u.attempt.outcome.value for u in attempts if u.attempt],
                [u.seconds for u in attempts],
                delivered,
            )
            count_sent(pipe, api_user, label, recovered_attempts, recovered_outbound)
            self.queues.ack(pipe, tag, acks)
            await self.queues.requeue(pipe, tag, retries)
            await self.suppressions.add_bounces(
                [(address, tencent, reply) for address, reply in bounced], Origin.MP, pipe=pipe
            )
            await pipe.execute()
