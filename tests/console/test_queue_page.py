"""The live queue page in Chromium: rates over ticks, window switch, pause and Resume, restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from console.conftest import screenshot

from app.simulator import Limit, MPServer, Profile
from queue_engine.routing import Destination, Router

THROTTLE = "451 Ip frequency limited. http://service.mail.qq.com/cgi-bin/help?id=20022"


async def _send(client: Any, sender: Any, n: int, domain: str = "gmail.example") -> list[str]:
    body = {"from": "shop@acme.example", "to": [f"u{i}@{domain}" for i in range(n)], "text": "t"}
    response = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    return ids


@contextlib.asynccontextmanager
async def steady_traffic(client: Any, sender: Any) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await _send(client, sender, 5)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _tick(page: Any) -> str:
    value: str = await page.get_attribute("#queues", "data-tick") or ""
    return value


async def _next_tick(page: Any, after: str) -> str:
    await page.wait_for_function(
        "t => document.getElementById('queues').getAttribute('data-tick') > t", arg=after or "0"
    )
    return await _tick(page)


async def _visible_rate(page: Any, row: Any, kind: str) -> str:
    text: str = await row.locator(f"td.{kind}").inner_text()
    return text.removesuffix("/s")


async def test_rates_change_over_ticks_and_window_switch_changes_them(
    browser, console_user, client, mp, start_engine
):
    user = await console_user()
    await start_engine(mp)
    async with steady_traffic(client, user.sender):
        page = await browser.page(user)
        row = page.locator("tbody.queue[data-domain='gmail.example']")
        await row.wait_for()
        await page.wait_for_selector("#live[data-state=open]")
        first = await _next_tick(page, await _tick(page))
        before = await _visible_rate(page, row, "out")
        seen = {before}
        # Over two more ticks the rates move (the traffic has only just begun).
        tick = first
        for _ in range(2):
            tick = await _next_tick(page, tick)
            seen.add(await _visible_rate(page, row, "out"))
        assert len(seen) > 1, seen
        # 30 s averages still count the quiet seconds before the traffic began.
        five = await _visible_rate(page, row, "inb")
        await page.click("label:has(input[value='30'])")
        assert await page.get_attribute("#queues", "data-window") == "30"
        thirty = await _visible_rate(page, row, "inb")
        assert float(thirty) < float(five)
        assert "window=30" in page.url
        await page.click("label:has(input[value='15'])")
        assert await _visible_rate(page, row, "inb") != thirty
        assert await page.locator("#total-chart canvas").count() == 1
        await row.locator(".chart-btn").click()
        await page.wait_for_selector("#queue-chart canvas")
        await screenshot(page, "queues")


@pytest.fixture
async def throttling_mp() -> AsyncIterator[tuple[MPServer, list[float]]]:
    """An MP that throttles after 3 messages a minute; its minute moves only when the test says."""
    now = [1000.0]
    profile = Profile(name="qq", per_minute=Limit(3, THROTTLE))
    server = await MPServer(profile=profile, clock=lambda: now[0]).start()
    yield server, now
    await server.stop()


async def test_paused_queue_shows_why_and_resume_sends_without_reload(
    browser, console_user, client, start_engine, throttling_mp, test_policy
):
    mp, clock = throttling_mp
    user = await console_user()
    policy = replace(test_policy, default=replace(test_policy.default, throttle_pause_seconds=3600))
    router = Router({"*": Destination("127.0.0.1", mp.port, "mx1.qq.com")})
    await start_engine(router=router, policy=policy)
    await _send(client, user.sender, 20, "qq.example")
    page = await browser.page(user)
    row = page.locator("tbody.queue[data-domain='qq.example']")
    await page.wait_for_selector("tbody.queue.paused[data-domain='qq.example']")
    assert await row.locator(".badge").inner_text() == "Paused"
    assert await row.locator(".pause-reason").inner_text() == "Sending IP quota reached"
    assert "Ip frequency limited" in await row.locator(".mp-reply").inner_text()
    countdown = await row.locator("time.countdown").inner_text()
    assert countdown.startswith("in ") and ("59 min" in countdown or "1 h" in countdown), countdown
    await screenshot(page, "queues-paused")

    clock[0] += 120  # the MP's minute has passed: it takes mail again
    await page.evaluate("window.notReloaded = true")
    await row.locator("button:has-text('Resume')").click()
    await page.wait_for_selector("tbody.queue.active[data-domain='qq.example']")
    assert await row.locator(".badge").inner_text() == "Active"
    # Outbound flows (or the queue has drained and gone idle, so it leaves the table).
    await page.wait_for_function(
        """() => {
            const row = document.querySelector("tbody.queue[data-domain='qq.example']");
            return !row || parseFloat(row.querySelector("td.out").textContent) > 0;
        }"""
    )
    assert await page.evaluate("window.notReloaded") is True
    assert mp.state.accepted > 3


async def test_page_recovers_after_a_server_restart(browser, console_user, client, live):
    user = await console_user()
    await _send(client, user.sender, 3)
    page = await browser.page(user)
    await page.wait_for_selector("#live[data-state=open]")
    await live.restart()
    tick = await _tick(page)
    # Closed with 1012 by uvicorn: the page reconnects by itself and ticks on.
    await _next_tick(page, tick)
    await page.wait_for_selector("#live[data-state=open]")
    assert await page.locator("tbody.queue[data-domain='gmail.example']").count() == 1
    # A retry that came while the server was down was refused, and the browser and
    # htmx (its wsError, an Event) logged it: expected here, and the page tried again.
    browser.errors[:] = [
        e for e in browser.errors if "/ws/queues' failed" not in e and "[object Event]" not in e
    ]


async def test_phone_width_shows_the_table(browser, console_user, client):
    user = await console_user()
    await _send(client, user.sender, 3)
    page = await browser.page(user, width=390)
    await page.wait_for_selector("tbody.queue[data-domain='gmail.example']")
    await screenshot(page, "queues-phone")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # the table scrolls inside its box, the page does not
