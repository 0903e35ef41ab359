# ruff: noqa: RUF001  (bounce wording in CJK uses full-width punctuation)
"""Whatever arrives at the inbound port, parsing it never raises: bad input is just `unknown`.

`parse_report` has a last-resort guard; these tests also run the unguarded
reader (`reports._parse`), so a bug the guard would hide still fails them.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_engine import reports
from queue_engine.reports import CONTRACT_KEYS, Finding, finding_json, parse_report
from queue_engine.statuses import Category, PauseReason

CORPUS = sorted((Path(__file__).resolve().parent / "corpus").glob("*.eml"))
SAMPLES = [p.read_bytes() for p in CORPUS]
ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def well_formed(findings: list[Finding]) -> None:
    assert findings, "always at least one finding"
    for f in findings:
        assert f.kind in {"dsn", "arf", "autoreply", "unknown"}
        assert f.category is None or isinstance(f.category, Category)
        assert f.pause_reason is None or isinstance(f.pause_reason, PauseReason)
        assert f.smtp_code is None or 400 <= f.smtp_code <= 599
        assert f.enhanced_status is None or ENHANCED.fullmatch(f.enhanced_status)
        assert f.action in (None, "failed", "delayed", "delivered", "relayed", "expanded")
        if f.category is not None:
            assert f.kind == "dsn" and f.action == "failed"
        line = finding_json(f, "x")
        assert tuple(line) == CONTRACT_KEYS
        assert isinstance(line["permanent"], bool)


def check(raw: bytes) -> list[Finding]:
    findings = reports._parse(raw)  # unguarded: must not raise by itself
    well_formed(findings)
    assert parse_report(raw) == findings
    return findings


@FAST
@given(st.binary(max_size=3000))
def test_random_bytes_are_unknown(raw: bytes) -> None:
    findings = check(raw)
    assert [f.kind for f in findings] == ["unknown"]


@FAST
@given(st.text(max_size=2000))
def test_random_text_never_raises(text: str) -> None:
    check(text.encode("utf-8", "surrogatepass"))


# --- random MIME built from fragments of real reports ---------------------------------------

HEADER_LINES = [
    "From: MAILER-DAEMON@mx.example",
    "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
    "From: staff@hotmail.com",
    "From: someone@example.org",
    "Subject: Undelivered Mail Returned to Sender",
    "Subject: failure notice",
    "Subject: Delivery Status Notification (Delay)",
    "Subject: =?GB2312?B?z7XNs83L0MU=?=",
    "Subject: =?utf-8?Q?broken=",
    "Subject: Out of Office",
    "Subject: complaint about message from 192.0.2.1",
    "Auto-Submitted: auto-replied",
    "X-Failed-Recipients: a@example.com, ,,@",
    "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable",
    "To: bounce+0123456789abcdef0123456789ab.abcdefghijklmnop@rp.example",
    "In-Reply-To: <x@y>",
    "\tcontinued header line",
    "Not a header line at all",
]
CONTENT_TYPES = [
    "multipart/report; report-type=delivery-status",
    "multipart/report; report-type=feedback-report",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/digest",
    "message/delivery-status",
    "message/feedback-report",
    "message/rfc822",
    "text/rfc822-headers",
    "text/plain; charset=gb2312",
    "text/plain; charset=iso-2022-jp",
    "text/plain; charset=nonsense-charset",
    "text/html; charset=big5",
    "application/octet-stream",
    "multipart/report",
    "",
    ";;;",
]
BODY_LINES = [
    "This is the mail system at host mx.example.",
    "<a@example.com>: host mx[192.0.2.1] said: 550 5.1.1 user unknown",
    "  b@example.com",
    "    SMTP error from remote mail server after RCPT TO:<b@example.com>:",
    "Remote host said: 554 delivery error: dd This user doesn't have an account",
    "Final-Recipient: rfc822; c@example.com",
    "Original-Recipient: rfc822;",
    "Action: failed",
    "Action: delayed",
    "Status: 5.1.1",
    "Status: 9.9.9.9",
    "Diagnostic-Code: smtp; 550-5.1.1 no",
    " 550 5.1.1 such user",
    "Diagnostic-Code: ;",
    "Feedback-Type: abuse",
    "Original-Rcpt-To: <d@example.com>",
    "Source-IP: 192.0.2.1",
    "--- Below this line is a copy of the message.",
    "Message-ID: <m@example>",
    "X-Mailpulse-Id: 0123456789abcdef0123456789ab.abcdefghijklmnop",
    "收件人：e@example.cn",
    "退信原因：收件人不存在",
    "=E4=BD=A0=",
    "5.1.1 (#5.1.1) 550 #550 ##",
    "<<<<<<<<<<<<<<<<",
    "@@@@ a@ @b .@. a@b",
    "",
    "",
]


@st.composite
def mime(draw: st.DrawFn, depth: int = 0) -> str:
    boundary = draw(st.sampled_from(["b", "b1", "=_x", "bb", "", "b b"]))
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    head = draw(st.lists(st.sampled_from(HEADER_LINES), max_size=6))
    if ctype:
        params = f'; boundary="{boundary}"' if draw(st.booleans()) else ""
        head.append(f"Content-Type: {ctype}{params}")
    body_lines = draw(st.lists(st.sampled_from(BODY_LINES), max_size=14))
    body = "\n".join(body_lines)
    if ctype.startswith("multipart/") and depth < 3:
        parts = draw(st.lists(mime(depth + 1), max_size=4))
        pieces = [f"--{boundary}\n{p}" for p in parts]
        if draw(st.booleans()):
            pieces.append(f"--{boundary}--")
        body = body + "\n" + "\n".join(pieces)
    if draw(st.booleans()):
        body += "\n" + draw(st.text(max_size=200))
    return "\n".join(head) + ("\n\n" if draw(st.booleans()) else "\n") + body


@FAST
@given(
    mime(), st.sampled_from(["\r\n", "\n", "\r"]), st.sampled_from(["utf-8", "gb18030", "latin-1"])
)
def test_random_mime_from_fragments_never_raises(text: str, eol: str, charset: str) -> None:
    check(text.replace("\n", eol).encode(charset, "replace"))


# --- the corpus cut short and damaged --------------------------------------------------------


@FAST
@given(st.sampled_from(SAMPLES), st.floats(0, 1))
def test_truncated_corpus_samples_never_raise(raw: bytes, where: float) -> None:
    check(raw[: int(len(raw) * where)])


@FAST
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=8)), min_size=1, max_size=8),
)
def test_damaged_corpus_samples_never_raise(raw: bytes, edits: list[tuple[float, bytes]]) -> None:
    data = bytearray(raw)
    for where, replacement in edits:
        at = int(len(data) * where)
        data[at : at + len(replacement) or at + 1] = replacement
    check(bytes(data))


def test_every_prefix_of_a_few_samples() -> None:
    """Exhaustive on three layouts (RFC 3464, plain text, ARF): every 7th cut."""
    names = {
        "postfix_dsn_user_unknown.eml",
        "qmail_remote_user_unknown.eml",
        "arf_yahoo_cfl_abuse.eml",
    }
    for path in CORPUS:
        if path.name in names:
            raw = path.read_bytes()
            for cut in range(0, len(raw), 7):
                check(raw[:cut])
