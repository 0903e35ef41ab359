"""Offline export tasks (SPEC X1-X3): what was asked, which worker runs it, how far it got.

A task is a Redis hash and a member of exactly one status set. A worker takes
a task with a lease and renews it as it writes (exports_claim.lua,
exports_beat.lua); a worker that dies leaves its lease to run out and the next
claim takes the task over, so nothing stays `running` forever. Every write of
a worker carries its token: one that lost its lease (stalled, cut off from
Redis) can no longer touch the new owner's progress or result. A task and its
file are deleted `RETENTION_MS` after the task ends, whether it succeeded or
failed (exports_expire.lua).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.accounts import Principal
from queue_engine.records import iso

_HERE = Path(__file__).parent

RETENTION_MS = 7 * 86_400_000
MAX_ATTEMPTS = 3
"""Claims of one task whose worker died before the task fails for good (retry resets it)."""
MAX_ACTIVE_PER_ACCOUNT = 10
"""Pending or running tasks one account may have: one account cannot hold every worker."""
LISTED = 1000
"""Most recent tasks an account's list shows; with 7-day retention this is all of them."""


class ExportType(StrEnum):
    EMAIL_STATUS = "email_status"
    """One row per email and recipient, every S1 field."""
    OPENS_CLICKS = "opens_clicks"
    """One row per open or click (SPEC O1)."""
    BOUNCES = "bounces"
    BLOCKS = "blocks"
    COMPLAINTS = "complaints"
    UNSUBSCRIBES = "unsubscribes"
    EXEMPTIONS = "exemptions"


class ExportStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class ExportLimitError(Exception):
    """The account already has MAX_ACTIVE_PER_ACCOUNT tasks waiting or running."""


def new_task_id(now_ms: int) -> str:
    """Creation time in hex, then randomness: ids sort by age."""
    return f"{now_ms:012x}{secrets.token_hex(6)}"


def is_task_id(value: str) -> bool:
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


def _int(raw: str | None) -> int | None:
    return int(raw) if raw else None


@dataclass(frozen=True, slots=True)
class ExportTask:
    task_id: str
    account: str
    api_user: str
    """The API_USER that asked for it; "" when the account key did."""
    type: ExportType
    filter: dict[str, Any]
    """What the rows are chosen by: times as epoch ms under `*_ms` names."""
    status: ExportStatus
    created_ms: int
    rows: int = 0
    estimated_rows: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    expires_ms: int | None = None
    file_name: str = ""
    file_size: int | None = None
    error: str = ""
    attempts: int = 0

    @classmethod
    def from_hash(cls, task_id: str, h: dict[str, str]) -> ExportTask:
        return cls(
            task_id=task_id,
            account=h["account"],
            api_user=h.get("api_user", ""),
            type=ExportType(h["type"]),
            filter=json.loads(h["filter"]),
            status=ExportStatus(h["status"]),
            created_ms=int(h["created_ms"]),
            rows=int(h.get("rows") or 0),
            estimated_rows=_int(h.get("estimate")),
            started_ms=_int(h.get("started_ms")),
            finished_ms=_int(h.get("finished_ms")),
            expires_ms=_int(h.get("expires_ms")),
            file_name=h.get("file", ""),
            file_size=_int(h.get("size")),
            error=h.get("error", ""),
            attempts=int(h.get("attempts") or 0),
        )

    def visible_to(self, principal: Principal, now_ms: int) -> bool:
        """The account's key sees all its tasks, an API_USER its own; an expired task is gone
        even before the sweep deletes it."""
        if self.account != principal.account:
            return False
        if principal.api_user and self.api_user != principal.api_user:
            return False
        return self.expires_ms is None or self.expires_ms > now_ms

    @property
    def percent(self) -> float:
        """Share of the estimated total written; the estimate is an upper bound, so a task
        shows 100 only once it has succeeded."""
        if self.status is ExportStatus.SUCCESS:
            return 100.0
        if not self.estimated_rows:
            return 0.0
        return min(99.9, round(self.rows * 100 / self.estimated_rows, 1))

    def to_api(self) -> dict[str, Any]:
        """The task as the API and the console show it (the web layer adds `download_url`)."""
        return {
            "id": self.task_id,
            "type": self.type.value,
            "filter": {
                (name[:-3] if name.endswith("_ms") else name): (
                    iso(value) if name.endswith("_ms") else value
                )
                for name, value in self.filter.items()
            },
            "status": self.status.value,
            "api_user": self.api_user or None,
            "progress": {
                "rows": self.rows,
                "estimated_rows": self.estimated_rows,
                "percent": self.percent,
            },
            "created_at": iso(self.created_ms),
            "started_at": iso(self.started_ms),
            "finished_at": iso(self.finished_ms),
            "expires_at": iso(self.expires_ms),
            "rows": self.rows,
            "file_size": self.file_size,
            "error": self.error or None,
            "attempts": self.attempts,
        }


class ExportStore:
    """Export tasks in Redis: what the API asks of them and what the workers do to them."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script((_HERE / "exports_claim.lua").read_text())
        self._beat = redis.register_script((_HERE / "exports_beat.lua").read_text())
        self._finish = redis.register_script((_HERE / "exports_finish.lua").read_text())
        self._retry = redis.register_script((_HERE / "exports_retry.lua").read_text())
        self._expire = redis.register_script((_HERE / "exports_expire.lua").read_text())

    async def create(
        self,
        principal: Principal,
        export_type: ExportType,
        filter: dict[str, Any],
        now_ms: int,
    ) -> ExportTask:
        active = [
            t
            for t in await self._account_tasks(principal.account)
            if t.status in (ExportStatus.PENDING, ExportStatus.RUNNING)
        ]
        if len(active) >= MAX_ACTIVE_PER_ACCOUNT:
            raise ExportLimitError(
                f"{len(active)} export tasks of this account are waiting or running;"
                f" at most {MAX_ACTIVE_PER_ACCOUNT}"
            )
        task = ExportTask(
            task_id=new_task_id(now_ms),
            account=principal.account,
            api_user=principal.api_user or "",
            type=export_type,
            filter=filter,
            status=ExportStatus.PENDING,
            created_ms=now_ms,
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            # The hash first: a claim that finds an id without its hash drops the id.
            pipe.hset(
                keys.export_task(task.task_id),
                mapping={
                    "account": task.account,
                    "api_user": task.api_user,
                    "type": task.type.value,
                    "filter": json.dumps(filter, separators=(",", ":")),
                    "status": task.status.value,
                    "created_ms": str(now_ms),
                },
            )
            pipe.zadd(keys.export_account(task.account), {task.task_id: now_ms})
            pipe.zadd(keys.export_status(ExportStatus.PENDING), {task.task_id: now_ms})
            await pipe.execute()
        return task

    async def load(self, task_id: str) -> ExportTask | None:
        raw = await self.redis.hgetall(keys.export_task(task_id))
        return ExportTask.from_hash(task_id, raw) if raw else None

    async def get(self, principal: Principal, task_id: str, now_ms: int) -> ExportTask | None:
        """The task if the caller may see it; None for unknown, foreign and expired ids alike."""
        if not is_task_id(task_id):
            return None
        task = await self.load(task_id)
        return task if task is not None and task.visible_to(principal, now_ms) else None

    async def listing(self, principal: Principal, now_ms: int) -> list[ExportTask]:
        """The caller's tasks, newest first."""
        return [
            t
            for t in await self._account_tasks(principal.account)
            if t.visible_to(principal, now_ms)
        ]

    async def _account_tasks(self, account: str) -> list[ExportTask]:
        ids = await self.redis.zrevrange(keys.export_account(account), 0, LISTED - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(keys.export_task(task_id))
            hashes = await pipe.execute()
        return [ExportTask.from_hash(i, h) for i, h in zip(ids, hashes, strict=True) if h]

    async def retry(self, task_id: str, now_ms: int) -> bool:
        """Queue a failed task again from scratch; False if it is not failed."""
        done = await self._retry(
            keys=[
                keys.export_status(ExportStatus.FAILED),
                keys.export_status(ExportStatus.PENDING),
                keys.export_task(task_id),
            ],
            args=[task_id, now_ms],
        )
        return bool(done)

    async def claim(self, token: str, now_ms: int, lease_ms: int) -> ExportTask | None:
        """The oldest task nobody holds (waiting, or its worker's lease ran out), now ours."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.export_status(ExportStatus.RUNNING), "-inf", now_ms, 0, 10)
            pipe.zrange(keys.export_status(ExportStatus.PENDING), 0, 9)
            abandoned, waiting = await pipe.execute()
        for task_id in [*abandoned, *waiting]:
            claimed = await self._claim(
                keys=[
                    keys.export_status(ExportStatus.PENDING),
                    keys.export_status(ExportStatus.RUNNING),
                    keys.export_status(ExportStatus.FAILED),
                    keys.export_task(task_id),
                ],
                args=[
                    task_id,
                    now_ms,
                    now_ms + lease_ms,
                    token,
                    MAX_ATTEMPTS,
                    now_ms + RETENTION_MS,
                    f"the export stopped {MAX_ATTEMPTS} times without finishing"
                    " (its worker was killed or lost Redis); retry it to start again",
                ],
            )
            if claimed == 1:
                return await self.load(task_id)
        return None

    async def beat(
        self, task_id: str, token: str, lease_until_ms: int, **fields: int | str
    ) -> bool:
        """Renew the lease and record progress; False: the task is no longer ours."""
        args: list[str | int] = [task_id, token, lease_until_ms]
        for name, value in fields.items():
            args += [name, value]
        done = await self._beat(
            keys=[keys.export_status(ExportStatus.RUNNING), keys.export_task(task_id)], args=args
        )
        return bool(done)

    async def succeed(
        self, task_id: str, token: str, now_ms: int, rows: int, file_name: str, size: int
    ) -> bool:
        return await self._end(
            task_id,
            token,
            ExportStatus.SUCCESS,
            now_ms,
            rows=rows,
            estimate=rows,
            file=file_name,
            size=size,
        )

    async def fail(self, task_id: str, token: str, now_ms: int, error: str) -> bool:
        return await self._end(task_id, token, ExportStatus.FAILED, now_ms, error=error)

    async def _end(
        self, task_id: str, token: str, status: ExportStatus, now_ms: int, **fields: int | str
    ) -> bool:
        args: list[str | int] = [task_id, token, now_ms + RETENTION_MS]
        for name, value in {"status": status.value, "finished_ms": now_ms, **fields}.items():
            args += [name, value]
        done = await self._finish(
            keys=[
                keys.export_status(ExportStatus.RUNNING),
                keys.export_status(status),
                keys.export_task(task_id),
            ],
            args=args,
        )
        return bool(done)

    async def expire(self, now_ms: int) -> list[str]:
        """Delete the tasks whose time is up; returns their ids (their files are the
        caller's to delete)."""
        deleted: list[str] = []
        for status in (ExportStatus.SUCCESS, ExportStatus.FAILED):
            ids = await self.redis.zrangebyscore(keys.export_status(status), "-inf", now_ms)
            for task_id in ids:
                account = await self.redis.hget(keys.export_task(task_id), "account")
                done = await self._expire(
                    keys=[
                        keys.export_status(status),
                        keys.export_task(task_id),
                        keys.export_account(account or ""),
                    ],
                    args=[task_id, now_ms],
                )
                if done:
                    deleted.append(task_id)
        return deleted

    async def exists(self, task_ids: list[str]) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.exists(keys.export_task(task_id))
            return [bool(n) for n in await pipe.execute()]


async def task_counts(redis: Redis) -> dict[str, int]:
    """How many tasks are in each status, over every account (for metrics)."""
    async with redis.pipeline(transaction=False) as pipe:
        for status in ExportStatus:
            pipe.zcard(keys.export_status(status))
        counts = await pipe.execute()
    return {status.value: int(n) for status, n in zip(ExportStatus, counts, strict=True)}
