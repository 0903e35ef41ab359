"""The delivery engine: finds due queues, drains them, keeps the due index honest.

Several engine processes can run against one Redis: claims are atomic per
queue, so they share the work without delivering an email twice. An engine
sleeps until the next due time, a wake-up published on enqueue, or one
second, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.delivery import Deliverer
from queue_engine.export_worker import ExportWorker
from queue_engine.feedback import FeedbackApplier
from queue_engine.limits import SLOT_SECONDS, Limiter
from queue_engine.policy import Policy
from queue_engine.queues import QueueStore
from queue_engine.retention import trim_indexes
from queue_engine.routing import Router
from queue_engine.smtp_client import SmtpPool

log = logging.getLogger(__name__)

STALL_SECONDS = 5.0
"""A queue whose attempts have all been waiting this long (or half the SMTP step timeout,
if shorter) is waiting on a slow MP, and leaves the engine's cap (`_note_stalls`)."""
RECONCILE_SECONDS = 2.0
BUSY_REST_MS = 500
RETENTION_SECONDS = 3600.0
PRUNE_SECONDS = 60.0
"""Expired suppression entries block nothing (checks compare the time); pruning frees memory."""
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class Engine:
    def __init__(
        self,
        redis: Redis,
        config: EngineConfig,
        router: Router,
        clock: Callable[[], float] = time.time,
        policy: Policy | None = None,
    ) -> None:
        self.redis = redis
        self.config = config
        self.clock = clock
        self.limiter = Limiter(redis, policy or Policy(), clock)
        self.pool = SmtpPool(
            helo_name=config.helo_name, timeout=config.smtp_timeout_seconds, limiter=self.limiter
        )
        self.queues = QueueStore(redis)
        self.feedback = FeedbackApplier(redis, config.secret, clock, router.mx_hosts)
        self.deliverer = Deliverer(redis, config, router, self.pool, clock)
        self.exports = (
            ExportWorker(redis, config.exports_dir, clock) if config.exports_dir else None
        )
        self._active: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, float] = {}
        """Active queue → when (monotonic) its batch started or an attempt of it ended."""
        self._stalled: set[str] = set()
        """Active queues whose attempts all waited STALL_SECONDS at some point of this drain."""
        self._slow: set[str] = set()
        """Active queues counted in the slow budget, not the cap."""
        self._known_slow: set[str] = set()
        """Queues whose last drain stalled: started in the slow budget only."""
        self._stall_seconds = min(STALL_SECONDS, config.smtp_timeout_seconds / 2)
        self._wake = asyncio.Event()
        self._resting: dict[str, int] = {}
        """Queue → until when this engine leaves it alone (every connection was busy)."""

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self) -> None:
        """Deliver until cancelled; survives Redis outages by retrying."""
        helpers = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._every(RECONCILE_SECONDS, self._reconcile)),
            asyncio.create_task(self._every(5.0, self.pool.close_idle)),
            asyncio.create_task(self._every(SLOT_SECONDS / 3, self.pool.heartbeat)),
            asyncio.create_task(self._every(RETENTION_SECONDS, self._trim)),
            asyncio.create_task(self._every(PRUNE_SECONDS, self.deliverer.suppressions.maintain)),
            asyncio.create_task(self.feedback.run()),
        ]
        if self.exports is not None:
            helpers.append(asyncio.create_task(self.exports.run()))
        try:
            await self._schedule()
        finally:
            for task in [*helpers, *self._active.values()]:
                task.cancel()
            await asyncio.gather(*helpers, *self._active.values(), return_exceptions=True)
            await self.pool.close()

    async def _schedule(self) -> None:
        backoff = 0.1
        while True:
            self._wake.clear()
            try:
                timeout = await self._start_due()
                backoff = 0.1
            except _REDIS_DOWN as exc:
                log.warning("engine: redis unavailable (%s); retrying in %.1fs", exc, backoff)
                timeout, backoff = backoff, min(backoff * 2, 5.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the event fires, and the engine never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _start_due(self) -> float:
        """Start draining due queues, within two budgets.

        A queue waiting on a slow MP (a tarpit, an MP that stalls at some step: each
        step may take up to the SMTP timeout, each attempt up to its lease) must not
        keep other domains waiting: once all its attempts have waited STALL_SECONDS
        it leaves the cap (`max_active_queues`) for the slow budget
        (`max_slow_queues`), which bounds what stalled MPs hold (tasks, connections).
        A queue whose last drain stalled starts in the slow budget only. So a slow MP
        takes a slot of the cap once: for STALL_SECONDS while the slow budget has
        room, for one batch when it is full.
        """
        now = self.now_ms()
        self._resting = {t: until for t, until in self._resting.items() if until > now}
        self._note_stalls()
        config = self.config
        fast = len(self._active) - len(self._slow)
        fast_room = config.max_active_queues - fast
        slow_room = config.max_slow_queues - len(self._slow)
        if fast_room > 0 or slow_room > 0:
            skipped = len(self._active) + len(self._resting) + len(self._known_slow)
            for tag in await self.queues.due_queues(now, limit=fast_room + slow_room + skipped):
                if tag in self._active or tag in self._resting:
                    continue
                if tag in self._known_slow:
                    if slow_room <= 0:
                        continue
                    slow_room -= 1
                    self._slow.add(tag)
                elif fast_room > 0:
                    fast_room -= 1
                else:
                    continue
                self._active[tag] = asyncio.create_task(self._drain(tag))
        next_due = await self.queues.next_due_ms()
        if next_due is not None and next_due > now:
            return min(1.0, (next_due - now) / 1000)
        return 1.0

    def _note_stalls(self) -> None:
        """Queues whose attempts have all waited STALL_SECONDS leave the cap for the slow
        budget while it has room; the scheduler calls this at least once a second."""
        now = time.monotonic()
        for tag, since in self._progress.items():
            if now - since >= self._stall_seconds:
                if tag not in self._stalled:
                    log.info("engine: queue %s waits on a slow MP", tag)
                self._stalled.add(tag)
        for tag in self._stalled - self._slow:
            if len(self._slow) >= self.config.max_slow_queues:
                break
            self._slow.add(tag)

    def _attempt_ended(self, tag: str) -> None:
        self._progress[tag] = time.monotonic()

    async def _drain(self, tag: str) -> None:
        try:
            while True:
                now = self.now_ms()
                lease_ms = int(self.config.lease_seconds * 1000)
                claim = await self.queues.claim(tag, now, lease_ms, self.config.batch_size)
                if claim.paused:
                    return  # the claim left the due hint at the pause's end
                if not claim.email_ids:
                    await self.queues.set_due(tag, claim.next_due_ms)
                    return
                self._attempt_ended(tag)  # the batch starts: nothing waits yet
                report = await self.deliverer.deliver(
                    tag, claim.email_ids, now + lease_ms, lambda: self._attempt_ended(tag)
                )
                if report.busy and not report.attempts:
                    self._resting[tag] = self.now_ms() + BUSY_REST_MS
                    return
                if tag in self._stalled and tag not in self._slow:
                    return  # no slow slot was free: its cap slot goes back after one batch
        except _REDIS_DOWN as exc:
            log.warning("engine: queue %s interrupted by redis (%s); leases will expire", tag, exc)
        except Exception:
            log.exception("engine: queue %s failed; its leases will expire and be retried", tag)
        finally:
            del self._active[tag]
            self._slow.discard(tag)
            if tag in self._stalled:
                self._stalled.discard(tag)
                self._known_slow.add(tag)
            elif tag in self._progress:  # a batch ran and never stalled
                self._known_slow.discard(tag)
            self._progress.pop(tag, None)
            self._wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.WAKE_CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._wake.set()
            except _REDIS_DOWN:
                await asyncio.sleep(1.0)

    async def _trim(self) -> None:
        await trim_indexes(self.redis, self.now_ms(), self.config.retention_days)

    async def _reconcile(self) -> None:
        await self.queues.reconcile()

    async def _every(self, seconds: float, job: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except _REDIS_DOWN as exc:
                log.warning("engine: %s skipped: %s", getattr(job, "__name__", job), exc)
