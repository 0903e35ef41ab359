"""`WS /ws/queues` sends a row again only when it changed; a page that connects gets them all."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websockets
from console.conftest import screenshot, session_cookie

from queue_engine import keys
from queue_engine.queues import QueueStore
from queue_engine.statuses import PauseReason
from web.console.queue_frames import row_id


async def _send(client: Any, sender: Any, domain: str) -> None:
    body = {"from": "shop@acme.example", "to": [f"u@{domain}"], "text": "t"}
    assert (await client.post("/v1/mail/send", json=body, headers=sender.basic)).status_code == 202


async def _pause(redis: Any, api_user: str, domain: str) -> None:
    now = int(time.time() * 1000)
    tag = keys.queue_tag(api_user, domain)
    await QueueStore(redis).pause(tag, PauseReason.MANUAL, now, now + 3_600_000, "by hand")


async def _frames_until(ws: Any, seen: list[str], until: str) -> None:
    while True:
        frame = await asyncio.wait_for(ws.recv(), 10)
        seen.append(frame)
        if until in frame:
            return


async def test_unchanged_rows_are_not_resent_and_a_new_client_gets_every_row(
    live, client, redis, console_user, engine_config
):
    user = await console_user()
    api_user = user.sender.api_user
    for domain in ("gmail.example", "outlook.example"):
        await _send(client, user.sender, domain)
    quiet, turning = row_id(api_user, "gmail.example"), row_id(api_user, "outlook.example")
    url = live.url.replace("http", "ws") + "/ws/queues"
    headers = {"cookie": session_cookie(engine_config, "acme", user.email)}
    async with websockets.connect(url, origin=live.url, additional_headers=headers) as first:
        assert json.loads(await first.recv())["type"] == "history"
        full = await first.recv()
        assert quiet in full and turning in full and f'"{quiet}":[1,' in full  # one pending
        # Two ticks go by with nothing new to show: no rows, only the summary.
        seen: list[str] = []
        for _ in range(2):
            await _frames_until(first, seen, 'id="queue-summary"')
        assert all(f'id="{quiet}"' not in f and f'id="{turning}"' not in f for f in seen)
        await _pause(redis, api_user, "outlook.example")
        seen = []
        await _frames_until(first, seen, "badge paused")
        assert f'id="{turning}"' in seen[-1] and f'id="{quiet}"' not in "".join(seen)

        async with websockets.connect(url, origin=live.url, additional_headers=headers) as late:
            assert json.loads(await late.recv())["type"] == "history"
            everything = await late.recv()
            assert f'id="{quiet}"' in everything and f'id="{turning}"' in everything
            assert "badge paused" in everything and '"full":1' in everything


async def test_rows_come_and_go_in_the_open_page(browser, console_user, client, redis):
    user = await console_user()
    api_user = user.sender.api_user
    await _send(client, user.sender, "gmail.example")
    page = await browser.page(user)
    await page.wait_for_selector("#live[data-state=open]")
    gmail = page.locator("tbody.queue[data-domain='gmail.example']")
    assert await gmail.locator("td.pen").inner_text() == "1"
    # A queue with nothing pending and no traffic shows only while it is paused.
    await redis.sadd(keys.api_user_queues(api_user), "qq.example")
    await _pause(redis, api_user, "qq.example")
    qq = page.locator("tbody.queue[data-domain='qq.example']")
    await qq.locator(".pause-reason").wait_for()
    assert await qq.locator(".pause-reason").inner_text() == "Paused by a person"
    await page.select_option("#sort", "domain")
    domains = await page.locator("tbody.queue").evaluate_all("rs => rs.map(r => r.dataset.domain)")
    assert domains == ["gmail.example", "qq.example"]
    await screenshot(page, "queues-rows-come-and-go")
    await qq.locator("button:has-text('Resume')").click()
    await qq.wait_for(state="detached")
    # The row's look is the same, so only its numbers come: the page puts them in.
    await _send(client, user.sender, "gmail.example")
    await page.wait_for_function(
        "() => document.querySelector(\"tbody.queue[data-domain='gmail.example'] td.pen\")"
        ".textContent === '2'"
    )
    assert await gmail.count() == 1
