"""The exports page in Chromium: export the email page's filter, watch it finish without a
reload, download the file, and retry a failed task."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest
from console.conftest import screenshot
from redis.asyncio import Redis

from queue_engine.config import EngineConfig
from queue_engine.export_worker import ExportWorker


@pytest.fixture
def engine_config(engine_config: EngineConfig, tmp_path: Path) -> EngineConfig:
    return replace(engine_config, exports_dir=tmp_path / "exports")


async def test_export_a_filter_watch_it_finish_download_and_retry(
    browser, console_user, client, redis: Redis, engine_config: EngineConfig
) -> None:
    user = await console_user()
    body = {"from": "shop@acme.example", "to": ["a@gmail.example", "b@gmail.example"], "text": "t"}
    assert (await client.post("/v1/mail/send", json=body, headers=user.sender.basic)).is_success
    exports_dir = engine_config.exports_dir
    assert exports_dir is not None
    worker = ExportWorker(redis, exports_dir)
    page = await browser.page(user)

    await page.goto("/emails?address=a%40gmail.example")
    await page.click("#export-this button[type=submit]")
    await page.wait_for_url("**/exports")
    row = page.locator(".exports-table tbody tr").first
    assert await row.get_attribute("data-status") == "pending"
    assert "address: a@gmail.example" in await row.inner_text()
    assert await worker.run_once() is not None
    # The table polls while a task is open: it turns to success without a reload.
    await page.wait_for_selector(".exports-table tr[data-status=success]")
    assert "1 row" in await row.inner_text()
    await screenshot(page, "exports")
    async with page.expect_download() as info:
        await page.click(".exports-table tr[data-status=success] >> text=Download")
    download = await info.value
    text = gzip.decompress(await anyio.Path(await download.path()).read_bytes()).decode()
    lines = text.strip().splitlines()
    assert len(lines) == 2 and "a@gmail.example" in lines[1]

    # A task that fails says why and can be retried.
    exports_dir.rename(exports_dir.with_name("moved"))
    exports_dir.write_text("not a directory")
    await page.goto("/exports")
    await page.click("#start-export")
    await page.wait_for_url("**/exports")
    assert await worker.run_once() is not None
    await page.wait_for_selector(".exports-table tr[data-status=failed]")
    exports_dir.unlink()
    exports_dir.with_name("moved").rename(exports_dir)
    await page.click(".exports-table tr[data-status=failed] >> text=Retry")
    await page.wait_for_selector(".exports-table tr[data-status=pending]")
    assert await worker.run_once() is not None
    await page.wait_for_selector(".exports-table tbody tr:first-child[data-status=success]")


async def test_a_bad_filter_is_named_and_other_accounts_cannot_download(
    browser, console_user, client, redis: Redis, engine_config: EngineConfig, live
) -> None:
    owner = await console_user("acme", "acme-tx")
    other = await console_user("globex", "globex-tx")
    assert engine_config.exports_dir is not None
    page = await browser.page(owner)
    await page.goto("/exports")
    await page.fill("#export-form input[name=status]", "lost")
    await page.click("#start-export")
    assert "status" in await page.locator("#export-error").inner_text()
    response = await client.post("/v1/exports", json={}, headers=owner.sender.bearer)
    task_id = response.json()["id"]
    assert await ExportWorker(redis, engine_config.exports_dir).run_once() is not None
    theirs = await browser.page(other)
    await theirs.goto("/exports")
    assert await theirs.locator(".exports-table").count() == 0
    cookies = {c["name"]: c["value"] for c in await theirs.context.cookies()}
    async with httpx.AsyncClient(base_url=live.url, cookies=cookies) as http:
        assert (await http.get(f"/exports/{task_id}/download")).status_code == 404
        assert (await http.get("/exports")).status_code == 200
