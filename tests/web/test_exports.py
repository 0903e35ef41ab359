"""/v1/exports: an export matches /v1/emails row for row; tasks, progress, retry,
download by the owning account only, validation, CSV injection, expiry."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from crash_harness import page_all
from redis.asyncio import Redis

from app.runtime import connect
from queue_engine import keys
from queue_engine.config import EngineConfig
from queue_engine.export_worker import ExportWorker
from queue_engine.exports import MAX_ACTIVE_PER_ACCOUNT
from queue_engine.tracking import TrackingEvents
from web.api import ApiConfig
from web.app import create_web_app

DAY_MS = 86_400_000


@pytest.fixture
def engine_config(engine_config: EngineConfig, tmp_path: Path) -> EngineConfig:
    return replace(engine_config, exports_dir=tmp_path / "exports")


@pytest.fixture
def worker(redis: Redis, engine_config: EngineConfig) -> ExportWorker:
    assert engine_config.exports_dir is not None
    return ExportWorker(redis, engine_config.exports_dir, chunk_size=700)


async def send(
    client: httpx.AsyncClient, auth: dict[str, str], to: list[str], **extra: Any
) -> list[str]:
    body = {"from": "shop@acme.example", "to": to, "subject": "Hi", "text": "Hi", **extra}
    response = await client.post("/v1/mail/send", json=body, headers=auth)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    return ids


async def export(
    client: httpx.AsyncClient, auth: dict[str, str], worker: ExportWorker, **body: Any
) -> dict[str, Any]:
    """Create an export, let the worker run it, and return the finished task."""
    response = await client.post("/v1/exports", json=body, headers=auth)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] == "pending" and task["download_url"] is None
    assert response.headers["location"] == f"/v1/exports/{task['id']}"
    assert await worker.run_once() is not None
    response = await client.get(f"/v1/exports/{task['id']}", headers=auth)
    assert response.status_code == 200, response.text
    done: dict[str, Any] = response.json()
    return done


async def download(
    client: httpx.AsyncClient, auth: dict[str, str], task: dict[str, Any]
) -> list[dict[str, str]]:
    response = await client.get(task["download_url"], headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert (
        f'filename="mailpulse-{task["type"]}-{task["id"]}.csv.gz"'
        in response.headers["content-disposition"]
    )
    assert int(response.headers["content-length"]) == task["file_size"] == len(response.content)
    text = gzip.decompress(response.content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def neutral(cell: str | None) -> str:
    """What a spreadsheet-safe export writes for a text cell (OWASP: a leading ')."""
    cell = cell or ""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def as_row(item: dict[str, Any]) -> dict[str, Any]:
    """A /v1/emails item as the export's CSV writes it (delivery_log compared parsed)."""
    return {
        "email_id": item["email_id"],
        "api_user": item["api_user"],
        "recipient": neutral(item["recipient"]),
        "type": item["type"],
        "tag": neutral(item["tag"]),
        "status": item["status"],
        "reason": item["reason"] or "",
        "request_time": item["request_time"],
        "request_ip": neutral(item["request_ip"]),
        "send_time": item["send_time"] or "",
        "sending_ip": neutral(item["sending_ip"]),
        "mp_reply": neutral(item["mp_reply"]),
        "delivery_log": item["delivery_log"],
        "billable": "true" if item["billable"] else "false",
        "attempts": str(item["attempts"]),
    }


def parsed(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{**row, "delivery_log": json.loads(row["delivery_log"])} for row in rows]


async def settle(redis: Redis, account: str, ids: list[str]) -> None:
    """Give records the fields and index entries delivery outcomes leave (a real engine is
    too slow for 10,000 emails here; tests/queue_engine exports an engine's own records)."""
    now_ms = int(time.time() * 1000)
    log = [{"time": "2026-01-01T00:00:00.000Z", "code": 250, "reply": '250 ok, "quoted"'}]
    outcomes = {
        "delivered": {
            "status": "delivered",
            "send_ms": str(now_ms),
            "sending_ip": "192.0.2.10",
            "mp_reply": "250 2.0.0 OK, queued\nsecond line",
            "log": json.dumps(log),
            "billable": "1",
            "attempts": "1",
        },
        "invalid": {
            "status": "invalid",
            "reason": "address_not_exist",
            "mp_reply": "-ERR 550 5.1.1 <x>: user unknown",
            "attempts": "2",
        },
    }
    requesting = keys.index_status(account, "requesting")
    async with redis.pipeline(transaction=False) as pipe:
        for i, email_id in enumerate(ids):
            fields = (
                outcomes["delivered"] if i % 3 == 0 else outcomes["invalid"] if i % 7 == 0 else None
            )
            if fields is None:
                continue
            pipe.hset(keys.email(email_id), mapping=fields)
            pipe.zrem(requesting, email_id)
            pipe.zadd(keys.index_status(account, fields["status"]), {email_id: 0})
            if "reason" in fields:
                pipe.zadd(
                    keys.index_status(account, fields["status"], fields["reason"]), {email_id: 0}
                )
        await pipe.execute()


async def test_an_export_of_10000_emails_matches_the_email_listing_row_for_row(
    client: httpx.AsyncClient, redis: Redis, sender: Any, worker: ExportWorker
) -> None:
    odd = ["o'brien@gmail.example", "=1+1@gmail.example", "-dash@gmail.example", "@SUM(1)", "x,y@z"]
    ids: list[str] = []
    for call in range(10):
        to = [f"user{call}.{i}@gmail.example" for i in range(1000 - len(odd))] + odd
        ids += await send(client, sender.basic, to, tag=f"=tag{call % 3}")
    await settle(redis, sender.account, ids)

    task = await export(client, sender.bearer, worker)
    assert task["status"] == "success", task
    assert task["rows"] == task["progress"]["rows"] == 10_000
    assert task["progress"]["percent"] == 100.0
    rows = await download(client, sender.bearer, task)
    items = await page_all(client, sender.bearer)
    assert len(items) == len(rows) == 10_000
    assert parsed(rows) == [as_row(item) for item in items]
    assert {r["recipient"] for r in rows} >= {
        "'=1+1@gmail.example",
        "'-dash@gmail.example",
        "'@SUM(1)",
        "x,y@z",
    }
    assert {r["tag"] for r in rows} == {"'=tag0", "'=tag1", "'=tag2"}
    assert {r["status"] for r in rows} == {"requesting", "delivered", "invalid"}

    # A filtered export walks the filter's own index, as the listing does.
    tagged = await export(
        client, sender.basic, worker, filter={"tag": "=tag1", "status": "delivered"}
    )
    rows = await download(client, sender.basic, tagged)
    items = await page_all(client, sender.basic, tag="=tag1", status="delivered")
    assert 0 < len(rows) == len(items) < 10_000
    assert parsed(rows) == [as_row(item) for item in items]
    assert tagged["filter"]["tag"] == "=tag1" and tagged["filter"]["api_user"] == sender.api_user


async def test_a_task_is_returned_at_once_and_shows_type_filter_times_and_link(
    client: httpx.AsyncClient, sender: Any, worker: ExportWorker
) -> None:
    await send(client, sender.basic, ["a@gmail.example", "b@gmail.example"])
    start = "2026-01-01T00:00:00+00:00"
    before = time.time()
    response = await client.post(
        "/v1/exports",
        json={"type": "email_status", "filter": {"start": start, "address": " A@Gmail.example "}},
        headers=sender.bearer,
    )
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["type"] == "email_status" and pending["status"] == "pending"
    assert pending["api_user"] is None  # the account key asked
    assert pending["filter"]["address"] == "a@gmail.example"
    assert (
        pending["filter"]["start"] >= "2026-01-01T00:00:00.000Z"
    )  # moved to the retention start at most
    assert pending["progress"] == {"rows": 0, "estimated_rows": None, "percent": 0.0}
    assert pending["started_at"] is None and pending["expires_at"] is None
    listed = (await client.get("/v1/exports", headers=sender.bearer)).json()["items"]
    assert [t["id"] for t in listed] == [pending["id"]]

    assert await worker.run_once() is not None
    done = (await client.get(f"/v1/exports/{pending['id']}", headers=sender.bearer)).json()
    assert done["status"] == "success" and done["rows"] == 1
    assert done["progress"] == {"rows": 1, "estimated_rows": 1, "percent": 100.0}
    assert done["download_url"] == f"/v1/exports/{pending['id']}/download"
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]
    finished, expires = seconds(done["finished_at"]), seconds(done["expires_at"])
    assert expires - finished == 7 * 86400 and finished >= before - 1
    assert done["file_size"] > 0 and done["error"] is None
    rows = await download(client, sender.bearer, done)
    assert [r["recipient"] for r in rows] == ["a@gmail.example"]


async def test_the_period_may_exceed_30_days_but_starts_at_the_retention_at_the_earliest(
    client: httpx.AsyncClient, sender: Any, engine_config: EngineConfig
) -> None:
    now = time.time()
    sixty_days_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60 * 86400))
    response = await client.get(
        "/v1/emails", params={"start": sixty_days_ago}, headers=sender.basic
    )
    assert response.status_code == 400  # the listing's 30-day limit
    response = await client.post(
        "/v1/exports", json={"filter": {"start": sixty_days_ago}}, headers=sender.basic
    )
    assert response.status_code == 202, response.text
    assert response.json()["filter"]["start"] == sixty_days_ago.replace("Z", ".000Z")

    long_ago = "2000-01-01T00:00:00Z"
    response = await client.post(
        "/v1/exports", json={"filter": {"start": long_ago}}, headers=sender.basic
    )
    assert response.status_code == 202, response.text
    start = response.json()["filter"]["start"]
    retention_start = now - engine_config.retention_days * 86400
    assert abs(seconds(start) - retention_start) < 5


async def test_only_the_owning_account_sees_retries_or_downloads_a_task(
    client: httpx.AsyncClient, make_sender: Any, worker: ExportWorker
) -> None:
    owner = await make_sender(account="acme", api_user="acme-tx")
    colleague = await make_sender(account="acme", api_user="acme-mk", email_type="marketing")
    stranger = await make_sender(account="evil", api_user="evil-tx")
    await send(client, owner.basic, ["a@gmail.example"])
    task = await export(client, owner.basic, worker)
    assert task["status"] == "success" and task["api_user"] == "acme-tx"
    url = task["download_url"]
    for auth in (stranger.basic, stranger.bearer, colleague.basic):
        for method, path in (
            ("GET", f"/v1/exports/{task['id']}"),
            ("GET", url),
            ("POST", f"/v1/exports/{task['id']}/retry"),
        ):
            response = await client.request(method, path, headers=auth)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["field"] == "task_id"
        assert (await client.get("/v1/exports", headers=auth)).json()["items"] == []
    response = await client.get(url)
    assert response.status_code == 401
    # The account key sees every API_USER's tasks.
    assert len(await download(client, owner.bearer, task)) == 1
    assert [
        t["id"] for t in (await client.get("/v1/exports", headers=owner.bearer)).json()["items"]
    ] == [task["id"]]


async def test_retry_and_download_answer_409_unless_the_task_is_failed_or_done(
    client: httpx.AsyncClient,
    redis: Redis,
    sender: Any,
    engine_config: EngineConfig,
    worker: ExportWorker,
) -> None:
    await send(client, sender.basic, ["a@gmail.example"])
    created = (await client.post("/v1/exports", json={}, headers=sender.basic)).json()
    for method, path in (
        ("GET", f"/v1/exports/{created['id']}/download"),
        ("POST", f"/v1/exports/{created['id']}/retry"),
    ):
        response = await client.request(method, path, headers=sender.basic)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "conflict"
        assert "pending" in response.json()["error"]["message"]

    assert engine_config.exports_dir is not None
    engine_config.exports_dir.write_text("not a directory")
    assert await worker.run_once() is not None
    failed = (await client.get(f"/v1/exports/{created['id']}", headers=sender.basic)).json()
    assert failed["status"] == "failed" and failed["error"] == "File exists"
    assert failed["download_url"] is None and failed["expires_at"] is not None

    engine_config.exports_dir.unlink()
    response = await client.post(f"/v1/exports/{created['id']}/retry", headers=sender.basic)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending" and response.json()["error"] is None
    assert await worker.run_once() is not None
    done = (await client.get(f"/v1/exports/{created['id']}", headers=sender.basic)).json()
    assert done["status"] == "success" and done["attempts"] == 1
    assert len(await download(client, sender.basic, done)) == 1

    # The file gone from under the task (deleted by hand): 404, not a 500.
    (engine_config.exports_dir / await redis.hget(keys.export_task(done["id"]), "file")).unlink()
    response = await client.get(done["download_url"], headers=sender.basic)
    assert response.status_code == 404 and "gone" in response.json()["error"]["message"]


async def test_an_expired_task_is_gone_from_the_api_before_the_sweep(
    client: httpx.AsyncClient, redis: Redis, sender: Any, worker: ExportWorker
) -> None:
    task = await export(client, sender.basic, worker)
    await redis.hset(keys.export_task(task["id"]), "expires_ms", int(time.time() * 1000) - 1)
    assert (await client.get(f"/v1/exports/{task['id']}", headers=sender.basic)).status_code == 404
    assert (await client.get(task["download_url"], headers=sender.basic)).status_code == 404
    assert (await client.get("/v1/exports", headers=sender.basic)).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ([], "body", "JSON object"),
        ({"kind": "x"}, "kind", "not a field"),
        ({"type": "everything"}, "type", "must be one of email_status"),
        ({"type": 3}, "type", "must be one of"),
        ({"filter": "tag=x"}, "filter", "object"),
        ({"filter": {"colour": "red"}}, "filter.colour", "unknown filter"),
        ({"filter": {"tag": 5}}, "filter.tag", "string"),
        ({"filter": {"status": "lost"}}, "filter.status", "status must be one of"),
        ({"filter": {"status": "delivered", "reason": "spam"}}, "filter.reason", "does not go"),
        ({"filter": {"type": "bulk"}}, "filter.type", "transactional or marketing"),
        ({"filter": {"start": "yesterday"}}, "filter.start", "ISO 8601"),
        ({"filter": {"start": "2026-02-01", "end": "2026-01-01"}}, "filter.start", "after end"),
        ({"filter": {"api_user": "someone-else"}}, "filter.api_user", "its own"),
    ],
)
async def test_bad_export_requests_name_the_field(
    client: httpx.AsyncClient, sender: Any, body: Any, field: str, words: str
) -> None:
    response = await client.post("/v1/exports", json=body, headers=sender.basic)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error


async def test_the_shared_bounce_list_is_not_exported(
    client: httpx.AsyncClient, sender: Any
) -> None:
    response = await client.post("/v1/exports", json={"type": "bounces"}, headers=sender.bearer)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "type"
    assert "shared by all accounts" in response.json()["error"]["message"]


async def test_opens_and_clicks_export_one_row_per_event(
    client: httpx.AsyncClient, redis: Redis, sender: Any, worker: ExportWorker
) -> None:
    quiet, busy = await send(
        client, sender.basic, ["quiet@gmail.example", "busy@gmail.example"], tag="=t"
    )
    events = TrackingEvents(redis)
    await events.clicked(
        busy,
        "https://shop.example/a?b=1,2",
        "2026-01-01T00:00:02.000Z",
        "198.51.100.1",
        "=cmd|' /C calc'!A0",
    )
    await events.opened(busy, "2026-01-01T00:00:01.000Z", "198.51.100.1", 'Mozilla/5.0 "quoted"')
    await events.opened(busy, "2026-01-01T00:00:03.000Z", "2001:db8::1", "")

    task = await export(client, sender.basic, worker, type="opens_clicks")
    assert task["status"] == "success" and task["rows"] == 3
    assert task["progress"]["estimated_rows"] >= 3
    rows = await download(client, sender.basic, task)
    assert [(r["email_id"], r["event"], r["time"]) for r in rows] == [
        (busy, "open", "2026-01-01T00:00:01.000Z"),
        (busy, "click", "2026-01-01T00:00:02.000Z"),
        (busy, "open", "2026-01-01T00:00:03.000Z"),
    ]
    assert rows[1]["url"] == "https://shop.example/a?b=1,2"
    assert rows[1]["user_agent"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["user_agent"] == 'Mozilla/5.0 "quoted"'
    assert {r["recipient"] for r in rows} == {"busy@gmail.example"}
    assert {r["tag"] for r in rows} == {"'=t"}
    # The same events as the email's own record shows.
    item = (await client.get(f"/v1/emails/{busy}", headers=sender.basic)).json()
    shown = [("open", e["time"], e["ip"]) for e in item["opens"]]
    shown += [("click", e["time"], e["ip"]) for e in item["clicks"]]
    assert [(r["event"], r["time"], r["ip"]) for r in rows] == sorted(shown, key=lambda e: e[1])
    assert quiet not in {r["email_id"] for r in rows}


async def test_a_suppression_list_exports_as_its_listing_shows_it(
    client: httpx.AsyncClient, make_sender: Any, worker: ExportWorker
) -> None:
    tx = await make_sender(api_user="acme-tx")
    mk = await make_sender(api_user="acme-mk", email_type="marketing")
    items = [
        {"address": "a@gmail.example", "reason": "=HYPERLINK(1)"},
        {"address": "b@gmail.example", "api_user": "acme-mk"},
        {"domain": "spam.example", "reason": "whole domain, no thanks"},
    ]
    response = await client.post(
        "/v1/suppressions/blocks", json={"items": items}, headers=tx.bearer
    )
    assert response.status_code == 200, response.text

    task = await export(client, tx.bearer, worker, type="blocks")
    assert task["status"] == "success" and task["rows"] == 3
    rows = await download(client, tx.bearer, task)
    listed = (await client.get("/v1/suppressions/blocks", headers=tx.bearer)).json()["items"]
    expected = [
        {
            "address": neutral(e.get("address")),
            "domain": e.get("domain") or "",
            "list": "blocks",
            "api_user": e["api_user"] or "",
            "reason": neutral(e["reason"]),
            "origin": e["origin"],
            "created_at": e["created_at"],
            "expires_at": e["expires_at"] or "",
            "count": str(e["count"]),
        }
        for e in listed
    ]
    assert rows == expected
    assert any(r["reason"] == "'=HYPERLINK(1)" for r in rows)

    # An API_USER sees its own entries and the account's unscoped ones, as it lists them.
    mine = await export(client, mk.basic, worker, type="blocks", filter={"domain": "spam.example"})
    assert [r["domain"] for r in await download(client, mk.basic, mine)] == ["spam.example"]
    assert mine["filter"] == {"domain": "spam.example", "api_user": "acme-mk"}
    response = await client.post(
        "/v1/exports", json={"type": "blocks", "filter": {"tag": "x"}}, headers=mk.basic
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "filter.tag"


async def test_an_account_may_have_only_so_many_exports_waiting(
    client: httpx.AsyncClient, sender: Any
) -> None:
    for _ in range(MAX_ACTIVE_PER_ACCOUNT):
        assert (await client.post("/v1/exports", json={}, headers=sender.basic)).status_code == 202
    response = await client.post("/v1/exports", json={}, headers=sender.bearer)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_exports"


async def test_unknown_and_malformed_task_ids_are_404(
    client: httpx.AsyncClient, sender: Any
) -> None:
    for task_id in ("0" * 24, "nope", "..%2F..%2Fsecret.key"):
        response = await client.get(f"/v1/exports/{task_id}/download", headers=sender.basic)
        assert response.status_code == 404, task_id


@pytest.fixture
async def client_without_exports(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(ApiConfig(engine=EngineConfig()), connect(redis_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mailpulse.test") as c:
        yield c


async def test_without_an_exports_dir_creating_an_export_is_503(
    client_without_exports: httpx.AsyncClient, sender: Any
) -> None:
    response = await client_without_exports.post("/v1/exports", json={}, headers=sender.basic)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
