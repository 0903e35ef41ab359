"""Tracking on real parts: send → engine → MP, then the recipient opens, clicks and
unsubscribes through the links of the email the MP received."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
from api_calls import email_record, send_to

from queue_engine import keys
from queue_engine.inbound import serve_inbound

HTML = (
    "<html><body><table><tr><td>"
    '<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale</a> '
    '<a href="mailto:help@acme.example">help</a>'
    "</td></tr></table></body></html>"
)
TEXT = "Sale: https://shop.example.com/sale?a=1&b=2\n"


async def received(mp, wait_for, rcpt: str) -> EmailMessage:
    async def arrived() -> bytes | None:
        found = [r.data for r in mp.state.received if r.rcpt_to == rcpt]
        return found[-1] if found else None

    msg = message_from_bytes(await wait_for(arrived), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> dict[str, str]:
    return {
        p.get_content_type(): p.get_content().replace("\r\n", "\n")
        for p in msg.walk()
        if not p.is_multipart()
    }


async def test_opens_and_clicks_through_the_delivered_email(
    client, sender, mp, start_engine, wait_for
):
    await start_engine(mp)
    email_id = await send_to(client, sender, "ann@gmail.example", html=HTML, text=TEXT)
    msg = await received(mp, wait_for, "ann@gmail.example")
    body = parts(msg)
    assert body["text/plain"] == TEXT  # text links stay unless asked
    html = body["text/html"]
    assert '<a href="mailto:help@acme.example">help</a>' in html
    [link] = re.findall(r'href="(http://127\.0\.0\.1:8025/t/c/[^"]+)"', html)
    [pixel] = re.findall(r'<img src="(http://127\.0\.0\.1:8025/t/o/[^"]+)"', html)
    assert "List-Unsubscribe" not in msg  # transactional, not asked
    opened = await client.get(urlsplit(pixel).path, headers={"user-agent": "Thunderbird"})
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    clicked = await client.get(urlsplit(link).path)
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://shop.example.com/sale?a=1&b=2"
    item = await email_record(client, sender, email_id)
    assert item["status"] == "delivered"
    assert (item["open_count"], item["click_count"]) == (1, 1)
    assert item["opens"][0]["user_agent"] == "Thunderbird"
    assert item["clicks"][0]["url"] == "https://shop.example.com/sale?a=1&b=2"
    assert item["clicks"][0]["ip"] == "203.0.113.7"


async def test_tracking_off_sends_the_html_as_written(client, sender, mp, start_engine, wait_for):
    await start_engine(mp)
    await send_to(client, sender, "bob@gmail.example", html=HTML, tracking={"opens": False,
               "clicks": False})  # fmt: skip
    assert parts(await received(mp, wait_for, "bob@gmail.example"))["text/html"] == HTML + "\n"
    await send_to(client, sender, "cy@gmail.example", text=TEXT, tracking={"text_links": True})
    text = parts(await received(mp, wait_for, "cy@gmail.example"))["text/plain"]
    assert re.fullmatch(r"Sale: http://127\.0\.0\.1:8025/t/c/[A-Za-z0-9_-]+\n", text)


def tracking_url(redis_url: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "account", "tracking-url", *args],
        cwd=root,
        env={**env, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_an_account_base_url_set_by_the_cli_is_used_for_its_links(
    client, sender, redis_url, repo_root, mp, start_engine, wait_for
):
    await start_engine(mp)
    bad = await asyncio.to_thread(tracking_url, redis_url, repo_root, sender.account, "ftp://x")
    assert bad.returncode == 2 and "must be an http:// or https:// URL" in bad.stderr
    done = await asyncio.to_thread(
        tracking_url, redis_url, repo_root, sender.account, "https://click.acme.example/"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "tracking base URL of acme: https://click.acme.example\n"
    await send_to(client, sender, "dee@gmail.example", html=HTML)
    html = parts(await received(mp, wait_for, "dee@gmail.example"))["text/html"]
    assert html.count("https://click.acme.example/t/") == 2
    cleared = await asyncio.to_thread(tracking_url, redis_url, repo_root, sender.account)
    assert cleared.stdout == "tracking base URL of acme: (MAILPULSE_TRACKING_BASE_URL)\n"
    await send_to(client, sender, "fay@gmail.example", html=HTML)
    html = parts(await received(mp, wait_for, "fay@gmail.example"))["text/html"]
    assert html.count("http://127.0.0.1:8025/t/") == 2


async def test_marketing_mail_unsubscribes_in_one_click_and_later_sends_fail(
    client, make_sender, mp, start_engine, wait_for
):
    await start_engine(mp, return_path_domain="bounces.mailpulse.test")
    marketing = await make_sender(api_user="acme-mk", email_type="marketing")
    first = await send_to(client, marketing, "eve@gmail.example", text="News")
    msg = await received(mp, wait_for, "eve@gmail.example")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link, mailto = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
    assert link.startswith("http://127.0.0.1:8025/u/")
    assert re.fullmatch(
        rf"mailto:unsubscribe\+{first}\.[a-z2-7]{{16}}@bounces\.mailpulse\.test\?subject=unsubscribe",
        mailto,
    )
    # What a mailbox provider does on the recipient's click (RFC 8058).
    response = await client.post(
        urlsplit(link).path,
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert (await email_record(client, marketing, first))["unsubscribe"]["reason"] == "not_given"
    later = await send_to(client, marketing, "eve@gmail.example", text="More news")
    item = await email_record(client, marketing, later)
    assert (item["status"], item["reason"]) == ("invalid", "unsubscribed")


async def test_mail_to_the_mailto_address_unsubscribes(
    client, make_sender, redis, mp, start_engine, wait_for
):
    domain = "bounces.mailpulse.test"
    await start_engine(mp, return_path_domain=domain)  # its feedback consumer reads the mail
    inbound = await serve_inbound(redis, "127.0.0.1", 0, domain, "inbound.test")
    try:
        marketing = await make_sender(api_user="acme-mk", email_type="marketing")
        email_id = await send_to(client, marketing, "gil@gmail.example", text="News")
        msg = await received(mp, wait_for, "gil@gmail.example")
        mailto = re.findall(r"<mailto:([^?>]+)\?", msg["List-Unsubscribe"])[0]
        port = inbound.sockets[0].getsockname()[1]
        note = b"From: gil@gmail.example\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"
        forged = mailto.replace(email_id, email_id[:-1] + ("0" if email_id[-1] != "0" else "1"))
        for rcpt in (forged, mailto, mailto):  # a forgery, then the real one twice
            await aiosmtplib.send(
                note, sender="gil@gmail.example", recipients=[rcpt], hostname="127.0.0.1", port=port
            )

        async def on_the_list() -> list[dict[str, Any]]:
            r = await client.get("/v1/suppressions/unsubscribes", headers=marketing.bearer)
            items: list[dict[str, Any]] = r.json()["items"]
            return items

        [entry] = await wait_for(on_the_list)
        assert (entry["address"], entry["reason"]) == ("gil@gmail.example", "not_given")
        item = await email_record(client, marketing, email_id)
        assert item["unsubscribe"]["reason"] == "not_given"

        async def all_read() -> bool:  # the forgery and the repeat were read and changed nothing
            pending = await redis.xpending(keys.INBOUND_STREAM, "feedback")
            return await redis.xlen(keys.INBOUND_STREAM) == 3 and pending["pending"] == 0

        await wait_for(all_read)
        assert len(await on_the_list()) == 1
    finally:
        inbound.close()
