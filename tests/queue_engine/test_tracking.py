"""Tracking tokens, link rewriting in real-world HTML, per-email rendering, event records."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from queue_engine import keys
from queue_engine.message import MessageError, build_body
from queue_engine.records import EmailRecord, new_email_id
from queue_engine.statuses import Status
from queue_engine.tracked_message import TrackedMessage, prepare, rewrite_html, rewrite_text
from queue_engine.tracking import (
    EVENTS_KEPT,
    MAX_TOKEN_CHARS,
    TrackingEvents,
    TrackingOptions,
    click_token,
    open_token,
    read_click,
    read_open,
    read_unsubscribe,
    unsubscribe_token,
)

SECRET = b"tracking-secret"
BASE = "https://t.mailpulse.example"
EMAIL_ID = new_email_id(1_800_000_000_000)

# A newsletter as ESP templates write them: doctype, head styles, MSO conditional
# comments with VML buttons, nested tables, entities, a bare anchor, mailto/tel/#
# links, URLs in attributes other than href, odd quoting and case, a commented-out
# </body>, non-ASCII text, a line starting with a dot, and lines far over 76 chars.
NEWSLETTER = (Path(__file__).parent / "tracking_newsletter.html").read_text()

TRACKED = [
    "https://shop.example.com/sale?utm_source=mail&utm_medium=email&id=%C3%A9t%C3%A9",
    "HTTPS://Shop.Example.com/Upper",
    "https://shop.example.com/single?q=1",
    "https://shop.example.com/spaced",
    "https://shop.example.com/area",
]


class Events(HTMLParser):
    """Everything a parser sees, entities unconverted: the document's structure."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.seen: list[tuple[Any, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(("start", tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.seen.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self.seen.append(("data", data))

    def handle_entityref(self, name: str) -> None:
        self.seen.append(("entity", name))

    def handle_charref(self, name: str) -> None:
        self.seen.append(("charref", name))

    def handle_comment(self, data: str) -> None:
        self.seen.append(("comment", data))

    def handle_decl(self, decl: str) -> None:
        self.seen.append(("decl", decl))


def events(html: str) -> list[tuple[Any, ...]]:
    parser = Events()
    parser.feed(html)
    parser.close()
    return parser.seen


def tokens_for(slots: list[str | None]) -> list[str]:
    return [
        open_token(SECRET, EMAIL_ID) if url is None else click_token(SECRET, EMAIL_ID, url)
        for url in slots
    ]


def test_tokens_round_trip_and_are_bound_to_their_purpose() -> None:
    url = "https://shop.example.com/a?b=1&c=%20"
    click = click_token(SECRET, EMAIL_ID, url)
    assert read_click(SECRET, click) == (EMAIL_ID, url)
    opened = open_token(SECRET, EMAIL_ID)
    assert read_open(SECRET, opened) == EMAIL_ID
    unsub = unsubscribe_token(SECRET, EMAIL_ID, "acme", "acme-mk", "Ann@Example.com")
    target = read_unsubscribe(SECRET, unsub)
    assert target is not None
    assert (target.email_id, target.account, target.api_user, target.address) == (
        EMAIL_ID,
        "acme",
        "acme-mk",
        "Ann@Example.com",
    )
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in (click, opened, unsub))
    # A token made for one use is worthless for another, or under another key.
    assert read_open(SECRET, click) is None and read_click(SECRET, opened) is None
    assert read_unsubscribe(SECRET, click) is None and read_click(SECRET, unsub) is None
    assert read_click(b"other key", click) is None


def _flip(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[at] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_a_tampered_or_forged_click_token_reads_as_nothing() -> None:
    good = click_token(SECRET, EMAIL_ID, "https://shop.example.com/")
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    for at in (0, 13, 14, 25, 26, len(raw) - 1):  # id, signature, URL
        assert read_click(SECRET, _flip(good, at)) is None
    # The URL swapped for another one, the signature kept: no open redirect.
    evil = raw[:26] + b"https://evil.example/"
    assert read_click(SECRET, base64.urlsafe_b64encode(evil).decode().rstrip("=")) is None
    for garbage in ("", "a", "abc", "!!!!", "a" * 35, "é", good[:-1], good + "A", "a/b"):
        assert read_click(SECRET, garbage) is None
        assert read_open(SECRET, garbage) is None
        assert read_unsubscribe(SECRET, garbage) is None
    assert read_click(SECRET, "A" * (MAX_TOKEN_CHARS + 4)) is None


def test_rewritten_newsletter_keeps_its_structure() -> None:
    template = rewrite_html(NEWSLETTER, BASE, clicks=True, opens=True)
    assert template.slots == [*TRACKED, None]
    out = template.fill(tokens_for(template.slots))
    # Put the original links back and take the pixel out: the parser then sees
    # exactly the original document, entities, comments and attributes included.
    restored = events(out)
    pixel = [e for e in restored if e[0] == "start" and e[1] == "img" and "/t/o/" in str(e[2])]
    assert len(pixel) == 1
    restored.remove(pixel[0])
    for i, event in enumerate(restored):
        if event[0] == "start" and event[1] in ("a", "area"):
            attrs = [
                (k, read_click(SECRET, v.rsplit("/", 1)[1])[1])  # type: ignore[union-attr, index]
                if k == "href" and v and v.startswith(f"{BASE}/t/c/")
                else (k, v)
                for k, v in event[2]
            ]
            restored[i] = ("start", event[1], attrs)
    original = [
        (e[0], e[1], [(k, v.strip() if k == "href" and v else v) for k, v in e[2]])
        if e[0] == "start" and e[1] in ("a", "area")
        else e
        for e in events(NEWSLETTER)
    ]
    assert restored == original
    # What must not move, byte for byte.
    for kept in (
        '<a href="mailto:help@shop.example.com?subject=Hi%20there">',
        '<a href="tel:+33123456789">',
        '<a href="#top">',
        '<a href="/relative/path">',
        "<a>no href</a>",
        '<a name="top"></a>',
        'background="https://cdn.example.com/hero.jpg"',
        'data-href="https://cdn.example.com/not-a-link"',
        'title="see https://shop.example.com/title-link"',
        'href="https://shop.example.com/sale?utm_source=mso"',  # VML in a comment
        '<link href="https://fonts.example.com/css?family=Roboto" rel="stylesheet">',
        "Caf&eacute; cr&egrave;me &amp; croissants &mdash; 30&nbsp;% off, &#8364;9.99",
        f'<a href="{BASE}/u/already-ours">',
        "<!-- footer </body> inside a comment -->",
    ):
        assert kept in out, kept
    # The pixel goes before the real </body>, not the one in the comment.
    assert re.search(r'<img src="[^"]+/t/o/[^"]+"[^>]*>\n?</body>\n</html>', out)
    assert out.count("/t/c/") == len(TRACKED)


def test_options_choose_what_is_rewritten() -> None:
    only_pixel = rewrite_html(NEWSLETTER, BASE, clicks=False, opens=True)
    assert only_pixel.slots == [None]
    only_links = rewrite_html(NEWSLETTER, BASE, clicks=True, opens=False)
    assert only_links.slots == TRACKED
    bare = "<p>no body tag, <a href='https://x.example/'>x</a>"
    appended = rewrite_html(bare, BASE, clicks=True, opens=True)
    assert appended.slots == ["https://x.example/", None]
    assert appended.pieces[-1].endswith('" width="1" height="1" alt="" border="0">')
    # Markup html.parser gives up on keeps what was found before it, and the rest as is.
    broken = "<a href='https://a.example/'>a</a><![foo[ x ]]><a href='https://b.example/'>"
    assert rewrite_html(broken, BASE, clicks=True, opens=False).slots == ["https://a.example/"]


def test_text_links_are_rewritten_only_when_asked() -> None:
    text = (
        "See https://shop.example.com/sale. Or (https://shop.example.com/faq?a=1&b=2),\n"
        "<https://shop.example.com/angle> and mailto:help@shop.example.com, ftp://x.example/"
    )
    template = rewrite_text(text, BASE)
    assert template.slots == [
        "https://shop.example.com/sale",
        "https://shop.example.com/faq?a=1&b=2",
        "https://shop.example.com/angle",
    ]
    out = template.fill(["T0", "T1", "T2"])
    assert out == (
        f"See {BASE}/t/c/T0. Or ({BASE}/t/c/T1),\n"
        f"<{BASE}/t/c/T2> and mailto:help@shop.example.com, ftp://x.example/"
    )
    default = prepare(NEWSLETTER, text, TrackingOptions(), False, BASE)
    assert default.text == text and default.html != NEWSLETTER
    none = prepare(NEWSLETTER, text, TrackingOptions(opens=False, clicks=False), False, BASE)
    assert (none.html, none.text, none.plan) == (NEWSLETTER, text, None)


def _body(html: str | None, text: str | None) -> str:
    return build_body(
        from_name="Shop",
        from_address="news@shop.example.com",
        subject="Sale",
        html=html,
        text=text,
        headers={},
        date=datetime(2027, 1, 1, tzinfo=UTC),
        utf8=False,
    )


def _received(headers: str, wire: bytes) -> EmailMessage:
    """The message as the MP reads it: dot-stuffing undone (RFC 5321 4.5.2)."""
    data = b"To: a@b.example\r\n" + headers.encode() + wire
    data = data.replace(b"\r\n..", b"\r\n.")
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_each_email_gets_its_own_tokens_whole_through_quoted_printable() -> None:
    long_url = "https://shop.example.com/" + "segment/" * 30 + "?q=" + "x" * 100
    html = NEWSLETTER.replace("https://shop.example.com/area", long_url)
    text = "Plain https://shop.example.com/text-link here.\n"
    prepared = prepare(html, text, TrackingOptions(text_links=True), True, BASE)
    assert prepared.plan is not None
    tracked = TrackedMessage(_body(prepared.html, prepared.text), prepared.plan)
    seen_tokens = set()
    for n in range(3):
        email_id = new_email_id(1_800_000_000_000 + n)
        headers, wire = tracked.render(
            SECRET, email_id, "acme", "acme-mk", f"r{n}@example.com", "bounces.example"
        )
        assert max(len(line) for line in wire.split(b"\r\n")) <= 76
        msg = _received(headers, wire)
        text_part, html_part = (
            p.get_content().replace("\r\n", "\n") for p in msg.walk() if not p.is_multipart()
        )
        text_token = click_token(SECRET, email_id, "https://shop.example.com/text-link")
        assert text_part == f"Plain {BASE}/t/c/{text_token} here.\n"
        links = re.findall(rf'"{re.escape(BASE)}/t/(c|o)/([A-Za-z0-9_-]+)"', html_part)
        assert len(links) == len(TRACKED) + 1
        urls = [read_click(SECRET, t) for kind, t in links if kind == "c"]
        assert urls == [(email_id, u) for u in [*TRACKED[:-1], long_url]]
        [opened] = [t for kind, t in links if kind == "o"]
        assert read_open(SECRET, opened) == email_id
        seen_tokens.add(opened)
        # Everything but the tokens is the sender's HTML, accents and all.
        assert "Grüße aus Köln — 日本語のテキスト" in html_part
        assert "\n.a line starting with a dot\n" in html_part
        # RFC 8058 headers with this email's own unsubscribe link.
        [link, mailto] = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
        assert link.startswith(f"{BASE}/u/")
        target = read_unsubscribe(SECRET, link.rsplit("/", 1)[1])
        assert target is not None and target.address == f"r{n}@example.com"
        assert target.account == "acme" and target.api_user == "acme-mk"
        assert mailto.startswith(f"mailto:unsubscribe+{email_id}.")
        assert mailto.endswith("@bounces.example?subject=unsubscribe")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(seen_tokens) == 3


def test_without_a_return_path_domain_there_is_no_mailto() -> None:
    prepared = prepare(None, "hi", TrackingOptions(), True, BASE)
    assert prepared.plan is not None and prepared.text == "hi"
    headers, wire = TrackedMessage(_body(None, "hi"), prepared.plan).render(
        SECRET, EMAIL_ID, "acme", "acme-mk", "a@b.example", None
    )
    msg = _received(headers, wire)
    assert msg["List-Unsubscribe"].startswith(f"<{BASE}/u/") and "mailto" not in headers
    assert msg.get_content() == "hi\r\n"  # as the email package reads any QP part


async def _record(redis: Any, email_id: str, ttl: int = 1000) -> None:
    record = EmailRecord(
        email_id=email_id, account="acme", api_user="acme-mk", recipient="a@b.example",
        domain="b.example", type="marketing", tag="", message_id="m", sender="s@x.example",
        status=Status.DELIVERED, reason="", request_ms=1, request_ip="",
    )  # fmt: skip
    await redis.hset(keys.email(email_id), mapping=record.to_hash())
    await redis.expire(keys.email(email_id), ttl)


async def test_events_keep_exact_counts_and_the_latest_few(redis) -> None:
    events_ = TrackingEvents(redis)
    await _record(redis, EMAIL_ID)
    for n in range(EVENTS_KEPT + 5):
        count = await events_.opened(EMAIL_ID, f"2027-01-01T00:00:{n:02d}Z", "198.51.100.1", "UA")
        assert count == n + 1
    await events_.clicked(EMAIL_ID, "https://x.example/\nnewline", "t", "::1", "x" * 2000)
    raw = await redis.hgetall(keys.email(EMAIL_ID))
    record = EmailRecord.from_hash(EMAIL_ID, raw)
    assert record.open_count == EVENTS_KEPT + 5 and len(record.opens) == EVENTS_KEPT
    assert [o["time"][-3:-1] for o in record.opens] == [f"{n:02d}" for n in range(5, 25)]
    assert record.click_count == 1
    [click] = record.clicks
    assert click["url"] == "https://x.example/\nnewline" and len(click["user_agent"]) == 512
    assert 0 < await redis.ttl(keys.email(EMAIL_ID)) <= 1000  # events expire with the record
    api = record.to_api()
    assert api["open_count"] == 25 and api["click_count"] == 1 and api["unsubscribe"] is None
    assert json.loads(json.dumps(api)) == api


async def test_an_event_for_a_gone_record_writes_nothing(redis) -> None:
    events_ = TrackingEvents(redis)
    assert await events_.opened(EMAIL_ID, "t", "ip", "ua") == 0
    await events_.unsubscribed(EMAIL_ID, "t", "spam")
    assert await redis.exists(keys.email(EMAIL_ID)) == 0


@pytest.mark.parametrize(
    ("tracking", "unsubscribe", "field"),
    [
        ("yes", None, "tracking"),
        ({"opens": "no"}, None, "tracking.opens"),
        ({"pixel": True}, None, "tracking.pixel"),
        (None, "true", "unsubscribe"),
    ],
)
def test_bad_options_name_their_field(tracking: object, unsubscribe: object, field: str) -> None:
    with pytest.raises(MessageError) as caught:
        TrackingOptions.parse(tracking, unsubscribe)
    assert caught.value.field == field


async def test_concurrent_events_are_written_together_and_each_counted(redis) -> None:
    events_ = TrackingEvents(redis)
    await _record(redis, EMAIL_ID)
    counts = await asyncio.gather(
        *(events_.opened(EMAIL_ID, f"t{n}", "ip", "ua") for n in range(60))
    )
    assert sorted(counts) == list(range(1, 61))
    assert await redis.hget(keys.email(EMAIL_ID), "opens_count") == "60"


async def test_a_redis_that_lost_the_script_gets_it_again(redis) -> None:
    events_ = TrackingEvents(redis)
    await _record(redis, EMAIL_ID)
    assert await events_.opened(EMAIL_ID, "t", "ip", "ua") == 1
    await redis.script_flush()
    assert await events_.clicked(EMAIL_ID, "https://x.example/", "t", "ip", "ua") == 1
    assert await events_.opened(EMAIL_ID, "t", "ip", "ua") == 2


@pytest.mark.parametrize("prefix", [0, 1, 24, 25, 26, 37, 38, 72, 73, 74, 75, 76, 77, 150])
def test_qp_lines_stay_short_and_decode_exactly_around_tokens(prefix: int) -> None:
    # Multibyte text (=C3=A9 escapes) of every length up to a token: the soft line
    # break before the token must never cut an escape or make a line too long.
    html = "é" * prefix + ' <a href="https://x.example/">x</a>' + "x" * prefix + " "
    text = "a" * prefix + " https://y.example/ " + ("é " * prefix)
    prepared = prepare(html, text, TrackingOptions(text_links=True), False, BASE)
    assert prepared.plan is not None
    tracked = TrackedMessage(_body(prepared.html, prepared.text), prepared.plan)
    _, wire = tracked.render(SECRET, EMAIL_ID, "acme", "acme-mk", "a@b.example", None)
    assert max(len(line) for line in wire.split(b"\r\n")) <= 76
    text_part, html_part = (
        p.get_content().replace("\r\n", "\n")
        for p in _received("", wire).walk()
        if not p.is_multipart()
    )
    click = click_token(SECRET, EMAIL_ID, "https://x.example/")
    pixel = open_token(SECRET, EMAIL_ID)
    assert html_part == (
        "é" * prefix + f' <a href="{BASE}/t/c/{click}">x</a>' + "x" * prefix + " "
        f'<img src="{BASE}/t/o/{pixel}" width="1" height="1" alt="" border="0">\n'
    )
    link = click_token(SECRET, EMAIL_ID, "https://y.example/")
    assert text_part == "a" * prefix + f" {BASE}/t/c/{link} " + ("é " * prefix) + "\n"
