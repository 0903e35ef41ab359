"""The suppression pages in Chromium: check an address, add, upload, delete with confirmation."""

from __future__ import annotations

from pathlib import Path

import httpx
from console.conftest import screenshot
from redis.asyncio import Redis

from queue_engine.suppression import Origin, SuppressionList, Suppressions


async def test_check_add_upload_and_delete_with_confirmation(
    browser, console_user, redis: Redis, tmp_path: Path
) -> None:
    user = await console_user()
    account = user.sender.account
    sup = Suppressions(redis)
    await sup.add_bounces([("gone@gmail.example", False, "550 5.1.1 no such user")], Origin.MP)
    await sup.complain(account, user.sender.api_user, "angry@qq.example", "abuse", Origin.ARF)
    page = await browser.page(user)

    await page.click("nav >> text=Suppressions")
    await page.fill("#check-form input[name=address]", "Gone@gmail.example")
    await page.click("#check-form button[type=submit]")
    result = page.locator("#check-result")
    await result.wait_for()
    text = await result.inner_text()
    assert "Blocked" in text and "bounces" in text and "550 5.1.1" in text
    await screenshot(page, "suppressions")

    # Custom blocks: one by the form, more by a CSV upload with a bad line.
    await page.goto("/suppressions/blocks")
    await page.fill("#add-form input[name=target]", "vip@gmail.example")
    await page.fill("#add-form input[name=reason]", "asked by phone")
    await page.click("#add-form button[type=submit]")
    await page.wait_for_selector("#notice:has-text('Added vip@gmail.example')")
    csv = tmp_path / "blocks.csv"
    csv.write_text("one@x.example\nnot-an-address@\n@whole.example\n")
    await page.set_input_files("#upload-form input[name=file]", str(csv))
    await page.click("#upload-form button[type=submit]")
    errors = page.locator("#upload-errors")
    await errors.wait_for()
    assert "line 2" in await errors.inner_text()
    assert "2 lines taken" in await page.locator("#notice").inner_text()
    listed = await page.locator(".suppression-table tbody").inner_text()
    assert "vip@gmail.example" in listed and "All of whole.example" in listed
    await screenshot(page, "suppression-blocks")

    # Deleting a spam report asks first, and says why it is discouraged.
    await page.goto("/suppressions/complaints")
    await page.check("input[name=entry][value='angry@qq.example']")
    await page.click("#delete-selected")
    confirm = page.locator("#confirm-delete")
    await confirm.wait_for()
    assert "Deleting spam reports is discouraged" in await confirm.inner_text()
    assert await sup.account_sizes(account) == {
        "blocks": 3,
        "complaints": 1,
        "unsubscribes": 0,
        "exemptions": 0,
    }
    await screenshot(page, "suppression-delete-confirm")
    await page.click("#confirm")
    await page.wait_for_selector("#notice:has-text('Deleted 1')")
    assert (await sup.account_sizes(account))["complaints"] == 0
    changes = await sup.changes(account)
    assert changes[0]["action"] == "removed" and changes[0]["origin"] == "console"


async def test_other_accounts_see_none_of_it_and_forms_need_the_token(
    browser, console_user, redis: Redis, live
) -> None:
    owner = await console_user("acme", "acme-tx")
    other = await console_user("globex", "globex-tx")
    await Suppressions(redis).add(
        owner.sender.account,
        SuppressionList.BLOCKS,
        [("secret@x.example", None, None, "")],
        Origin.API,
    )
    page = await browser.page(other)
    await page.goto("/suppressions/blocks")
    assert await page.locator("text=secret@x.example").count() == 0
    assert "This list is empty" in await page.locator(".empty").inner_text()
    await page.goto("/suppressions?address=secret@x.example")
    assert "On no list" in await page.locator("#check-result").inner_text()
    # A cross-site form post carries the victim's cookie but not the page's token.
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with httpx.AsyncClient(base_url=live.url, cookies=cookies) as client:
        response = await client.post(
            "/suppressions/blocks/add", data={"target": "x@y.example", "csrf_token": "forged"}
        )
        assert response.status_code == 403
        response = await client.post(
            "/suppressions/blocks/delete", data={"entry": "secret@x.example", "confirm": "yes"}
        )
        assert response.status_code == 403
    assert (await Suppressions(redis).account_sizes(other.sender.account))["blocks"] == 0
