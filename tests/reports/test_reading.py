# ruff: noqa: RUF001  (bounce wording in CJK uses full-width punctuation)
"""The parts the report readers are built from: MIME, charsets, replies in prose, classification."""

from __future__ import annotations

import base64

import pytest

from queue_engine import dsn
from queue_engine.reports import (
    CONTRACT_KEYS,
    Finding,
    decode_bytes,
    decode_words,
    finding_json,
    parse_report,
    read_mail,
    reply_finding,
    split_multipart,
    split_reply,
)
from queue_engine.statuses import Category, PauseReason


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def test_finding_json_has_exactly_the_contract_keys() -> None:
    f = Finding(kind="dsn", category=Category.SPAM, pause_reason=PauseReason.IP_QUOTA)
    line = finding_json(f, "x.eml")
    assert tuple(line) == CONTRACT_KEYS
    assert line["category"] == "spam" and line["pause_reason"] == "ip_quota"
    assert line["source"] == "x.eml" and line["permanent"] is False


@pytest.mark.parametrize(
    ("reply", "code", "rest"),
    [
        ("550 5.1.1 no such user", 550, "5.1.1 no such user"),
        ("550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third", 550, "5.1.1 first second third"),
        (
            "550 550 5.1.1 <a@b.example>: User unknown (state 14).",
            550,
            "5.1.1 <a@b.example>: User unknown (state 14).",
        ),
        ("554: delivery error", 554, "delivery error"),
        ("user unknown", None, "user unknown"),
        ("550-5.1.1 a 550-5.1.1 b 550 5.1.1 c", 550, "5.1.1 a b c"),
    ],
)
def test_split_reply(reply: str, code: int | None, rest: str) -> None:
    assert split_reply(reply) == (code, rest)


def test_reply_finding_forms() -> None:
    r = reply_finding("550 5.1.1 The email account that you tried to reach does not exist.")
    assert (r.kind, r.smtp_code, r.enhanced_status, r.category) == (
        "reply",
        550,
        "5.1.1",
        Category.ADDRESS_NOT_EXIST,
    )
    assert r.permanent
    ok = reply_finding("250 2.0.0 OK queued")
    assert ok.category is None and not ok.permanent and ok.enhanced_status == "2.0.0"
    throttle = reply_finding(
        "421 4.7.28 Our system has detected an unusual rate of mail from your IP"
    )
    assert throttle.pause_reason is PauseReason.IP_QUOTA and not throttle.permanent
    bare = reply_finding("5.1.1 user unknown")
    assert bare.smtp_code is None and bare.category is Category.ADDRESS_NOT_EXIST


def test_a_codeless_failure_is_other_unless_its_words_say_more() -> None:
    f = parse_report(
        crlf(
            "From: MAILER-DAEMON@relay.example\nSubject: Undelivered Mail Returned to Sender\n"
            "Content-Type: text/plain\n\nThis is the mail system at host relay.example.\n\n"
            "<a@example.com>: something went wrong somewhere\n"
        )
    )
    assert [(x.recipient, x.category, x.smtp_code) for x in f] == [
        ("a@example.com", Category.OTHER, None)
    ]


def test_encoded_words_split_inside_a_character_are_joined() -> None:
    raw = "退信通知".encode("gb18030")
    first, second = base64.b64encode(raw[:3]).decode(), base64.b64encode(raw[3:]).decode()
    assert decode_words(f"=?GB2312?B?{first}?= =?GB2312?B?{second}?=") == "退信通知"
    assert decode_words("=?iso-8859-1?Q?R=E9ponse_automatique?=: x") == "Réponse automatique: x"
    assert decode_words("plain") == "plain"


@pytest.mark.parametrize(
    ("text", "charset"),
    [
        ("收件人不存在", "gb2312"),
        ("收件人不存在", "GBK"),
        ("無法投遞", "big5"),
        ("宛先不明", "iso-2022-jp"),
    ],
)
def test_charsets(text: str, charset: str) -> None:
    codec = {"gb2312": "gb18030", "GBK": "gbk", "big5": "big5", "iso-2022-jp": "iso2022_jp"}[
        charset
    ]
    assert decode_bytes(text.encode(codec), charset) == text


def test_undeclared_8bit_text_is_guessed() -> None:
    assert decode_bytes("退信原因".encode("gb18030"), None) == "退信原因"
    assert decode_bytes("naïve".encode(), "us-ascii") == "naïve"
    assert decode_bytes(b"caf\xe9 ", "x-unknown-charset") == "café "


@pytest.mark.parametrize("charset", ["idna", "punycode", "utf-8\x00", "hex"])
def test_charsets_that_refuse_to_decode_text_read_as_undeclared(charset: str) -> None:
    """Found by the damaged-corpus property test: idna refuses the "replace" handler,
    punycode raises on 8-bit bytes, a NUL in the name is a ValueError, hex is no text codec."""
    assert decode_bytes(b"caf\xe9 ", charset) == "café "


def test_truncated_multipart_keeps_its_last_part() -> None:
    body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntwo, cut he"
    assert split_multipart(body, b"b") == [
        b"Content-Type: text/plain\r\n\r\none",
        b"\r\ntwo, cut he",
    ]
    # a longer boundary sharing the prefix is not a delimiter
    assert split_multipart(b"--b\r\nx\r\n--bb\r\ny\r\n--b--\r\n", b"b") == [b"x\r\n--bb\r\ny"]


def test_inline_original_headers_are_read() -> None:
    mail = read_mail(
        crlf(
            "Subject: failure notice\n\nHi. This is the qmail-send program at x.\n\n"
            "<a@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
            "--- Below this line is a copy of the message.\n\n"
            "Message-ID: <m1@shop.example>\nX-Mailpulse-Id: tok\nTo: a@example.com\n\nbody\n"
        )
    )
    assert mail.original_message_id() == "<m1@shop.example>"
    assert mail.original_dict()["X-Mailpulse-Id"] == "tok"
    assert "Below this line" not in mail.text


def test_reply_scoring_prefers_the_quoted_reply_over_other_numbers() -> None:
    text = (
        "We tried for 450 minutes on port 465.\n"
        "The response from the remote server was:\n"
        "552 5.2.2 The email account that you tried to reach is over quota.\n"
    )
    reply = dsn.best_reply(text)
    assert reply is not None and (reply.code, reply.enhanced) == (552, "5.2.2")


def test_hints_turn_codeless_wording_into_a_canonical_reply() -> None:
    cls, line = dsn.judge("failed", None, None, "", "原因：收件人邮箱空间不足\n")
    assert cls is not None and cls.category is Category.OTHER and line == "原因：收件人邮箱空间不足"
    cls, _ = dsn.judge("failed", None, None, "", "User x not listed in Domino Directory")
    assert cls is not None and cls.category is Category.ADDRESS_NOT_EXIST
    assert dsn.judge("delayed", 451, "4.7.1", "greylisted", "") == (None, None)


def test_a_delay_without_a_machine_part_is_not_a_failure() -> None:
    [f] = parse_report(
        crlf(
            "From: Mail Delivery Subsystem <MAILER-DAEMON@x.example>\n"
            "Subject: Delivery Status Notification (Delay)\n\n"
            "This is an automatically generated Delivery Status Notification\n\n"
            "THIS IS A WARNING MESSAGE ONLY.\n\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n"
            "Delivery to the following recipient has been delayed:\n\n     bob@example.org\n\n"
            "Message will be retried for 2 more day(s)\n"
        )
    )
    assert (f.kind, f.action, f.recipient, f.category, f.permanent) == (
        "dsn",
        "delayed",
        "bob@example.org",
        None,
        False,
    )


def test_an_autoreply_is_not_taken_for_a_bounce_and_vice_versa() -> None:
    [vacation] = parse_report(
        crlf("From: a@example.org\nSubject: Out of Office\nAuto-Submitted: auto-replied\n\nAway.\n")
    )
    assert vacation.kind == "autoreply" and vacation.recipient == "a@example.org"
    [bounce] = parse_report(
        crlf(
            "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\n"
            "Auto-Submitted: auto-replied\n\nThis is the mail system at host x.example.\n\n"
            "<b@example.org>: host mx[192.0.2.1] said: 550 5.1.1 user unknown\n"
        )
    )
    assert bounce.kind == "dsn" and bounce.category is Category.ADDRESS_NOT_EXIST


def test_the_guard_turns_any_internal_error_into_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    import queue_engine.reports as reports

    def boom(raw: bytes) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(reports, "read_mail", boom)
    assert parse_report(b"anything") == [Finding(kind="unknown")]
    assert parse_report("not bytes") == [Finding(kind="unknown")]  # type: ignore[arg-type]
