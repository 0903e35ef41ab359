"""The email status pages in Chromium: filters, the 30-day limit, one email's story."""

from __future__ import annotations

from typing import Any

from console.conftest import screenshot

RECIPIENTS = ["ok1@gmail.example", "unknown1@gmail.example", "ok2@outlook.example"]


async def _statuses(client: Any, sender: Any) -> dict[str, str]:
    response = await client.get("/v1/emails", headers=sender.basic)
    return {item["recipient"]: item["status"] for item in response.json()["items"]}


async def test_email_page_filters_by_status_and_address_and_shows_the_log(
    browser, console_user, client, mp, start_engine, wait_for
):
    user = await console_user()
    await start_engine(mp)
    body = {"from": "shop@acme.example", "to": RECIPIENTS, "text": "t", "tag": "order"}
    response = await client.post("/v1/mail/send", json=body, headers=user.sender.basic)
    assert response.status_code == 202

    async def settled() -> bool:
        statuses = await _statuses(client, user.sender)
        return len(statuses) == 3 and "requesting" not in statuses.values()

    await wait_for(settled)
    page = await browser.page(user)
    await page.click("nav >> text=Emails")
    rows = page.locator(".emails-table tbody tr")
    await rows.first.wait_for()
    assert await rows.count() == 3
    await screenshot(page, "emails")

    await page.select_option("select[name=status]", "invalid")
    await page.click("form#email-filters button[type=submit]")
    await page.wait_for_url("**status=invalid**")
    assert await rows.count() == 1
    assert "unknown1@gmail.example" in await rows.first.inner_text()
    # "Export to CSV" posts this very filter; the API request is there to copy.
    assert await page.locator("#export-this input[name=status]").input_value() == "invalid"
    export = await page.locator(".export-box pre").text_content() or ""
    assert "/v1/exports" in export and '"filter": {"status": "invalid"}' in export
    assert "Address does not exist" in await rows.first.inner_text()

    await page.goto("/emails")
    await page.fill("input[name=address]", "OK2@outlook.example")
    await page.click("form#email-filters button[type=submit]")
    await page.wait_for_url("**address=**")
    assert await rows.count() == 1
    await rows.first.locator("a").click()
    await page.wait_for_selector("h1:has-text('ok2@outlook.example')")
    assert "Delivered" in await page.locator(".detail .badge").inner_text()
    log = await page.locator(".timeline").first.inner_text()
    assert "250" in log
    assert await page.locator("text=No opens or clicks recorded").count() == 1
    await screenshot(page, "email-detail")

    await page.goto("/emails?start=2024-01-01T00:00&end=2024-03-01T00:00")
    error = await page.locator("#filter-error").inner_text()
    assert "at most 30 days" in error and "Pick a period of 30 days or less" in error
    assert await page.locator("label.invalid input[name=end]").count() == 1
    await screenshot(page, "emails-period-error")


async def test_pages_without_data_say_what_to_do(browser, console_user):
    user = await console_user()
    page = await browser.page(user)
    assert await page.locator("text=No active queues").count() == 1
    await page.goto("/emails")
    assert await page.locator("text=No emails match").count() == 1
    await page.goto("/suppressions")
    assert await page.locator(".tile").count() == 5
    await screenshot(page, "suppressions")
    # A POST without the token, from this logged-in page: refused.
    response = await page.request.post("/logout")
    assert response.status == 403
    await page.goto("/")
    assert await page.locator("text=No active queues").count() == 1  # still logged in


async def test_login_page(browser):
    page = await browser.page()
    await page.goto("/")
    await page.wait_for_selector("h1:has-text('Log in to mailpulse')")
    await page.fill("input[name=email]", "nobody@acme.example")
    await page.fill("input[name=password]", "wrong")
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=Wrong email or password.")
    await screenshot(page, "login")
