# ruff: noqa: RUF001  (full-width CJK punctuation in report wording is meant)
"""What MPs send back to the return path, read into findings: bounces, spam reports, auto-replies.

`parse_report(raw)` takes one received email (bytes as they came over SMTP) and
returns what it says about the emails we sent: one `Finding` per recipient of a
DSN (RFC 3464 or one of the many non-standard bounce layouts of real MTAs and
providers, see `dsn.py`), one per ARF spam report (RFC 5965 and the non-ARF
complaint formats, see `arf.py`), one for an auto-reply (RFC 3834, vacation
messages), else one of kind `unknown`. It is pure and never raises.

This module holds the shared parts: a lenient MIME reader built for this one
job (any charset, any transfer encoding, truncated or broken structure), the
correlation fields every finding carries (return path, original Message-ID and
headers), auto-reply detection, and the CONTRACT line of `mailpulse classify`.
"""

from __future__ import annotations

import binascii
import html
import re
from dataclasses import dataclass, field
from typing import Any

from queue_engine.classify import Classification, classify_reply
from queue_engine.statuses import Category, PauseReason

MAX_REPORT_BYTES = 4 * 1024 * 1024
"""Past this, only the head of the message is read: the report parts come first."""
MAX_TEXT_CHARS = 256 * 1024
"""Of each human-readable part, what is read: no bounce explains itself at greater length."""

MAX_SEARCH_CHARS = 64 * 1024
"""Of all human-readable text, what the bounce and complaint readers search."""
MAX_PARTS = 64
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "dsn" | "arf" | "autoreply" | "unknown" (and "reply" for a bare SMTP reply)
    recipient: str | None = None
    smtp_code: int | None = None
    enhanced_status: str | None = None
    diagnostic: str | None = None
    category: Category | None = None  # None for a non-failure (delay, auto-reply, ARF)
    permanent: bool = False
    pause_reason: PauseReason | None = None
    feedback_type: str | None = None  # ARF Feedback-Type, lower-case
    action: str | None = None  # DSN Action: failed | delayed | delivered | relayed | expanded
    # What ties it to our email: everything that could be found.
    return_path: str | None = None  # where the report was sent (e.g. bounce+<token>@domain)
    original_message_id: str | None = None
    original_headers: dict[str, str] = field(default_factory=dict, hash=False)
    arrival_date: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


CONTRACT_KEYS = (
    "source",
    "kind",
    "recipient",
    "smtp_code",
    "enhanced_status",
    "diagnostic",
    "category",
    "permanent",
    "pause_reason",
    "feedback_type",
)


def finding_json(f: Finding, source: str) -> dict[str, Any]:
    """The CONTRACT line of `mailpulse classify` for one finding."""
    return {
        "source": source,
        "kind": f.kind,
        "recipient": f.recipient,
        "smtp_code": f.smtp_code,
        "enhanced_status": f.enhanced_status,
        "diagnostic": f.diagnostic,
        "category": f.category.value if f.category is not None else None,
        "permanent": f.permanent,
        "pause_reason": f.pause_reason.value if f.pause_reason is not None else None,
        "feedback_type": f.feedback_type,
    }


def parse_report(raw: bytes) -> list[Finding]:
    """Every finding in one received email; bad input gives `[Finding(kind="unknown")]`."""
    try:
        return _parse(raw)
    except Exception:  # never let a hostile or broken email escape: it is just unknown
        return [Finding(kind="unknown")]


def _parse(raw: bytes) -> list[Finding]:
    from queue_engine import arf, dsn  # they build on this module's reader

    if not isinstance(raw, bytes | bytearray | memoryview):
        return [Finding(kind="unknown")]
    mail = read_mail(bytes(raw[:MAX_REPORT_BYTES]))
    found = arf.parse_feedback_report(mail)
    if found is None:
        found = dsn.parse_delivery_status(mail)
    if found is None:
        found = arf.parse_complaint(mail)
    if found is None:
        found = dsn.parse_bounce(mail)
    if found is None:
        found = parse_autoreply(mail)
    if not found:
        found = [
            Finding(
                kind="unknown",
                return_path=mail.return_path(),
                original_message_id=mail.original_message_id(),
                original_headers=mail.original_dict(),
            )
        ]
    return found


# --- SMTP replies (`mailpulse classify --reply`) ------------------------------------------

_REPLY_HEAD = re.compile(r"\A\s*([2-5]\d\d)(?:[ \t]+\1(?=[ \t-]))?[ \t]*[-: \t]?")
_CONTINUATION = re.compile(
    r"\n[ \t]*[2-5]\d\d(?:[ \t]+[2-5]\d\d)?[- \t][ \t]*(?:#?[245]\.\d{1,3}\.\d{1,3}[ \t]+)?"
)
ENHANCED = re.compile(r"(?<![\w.])#?([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")


def split_reply(reply: str) -> tuple[int | None, str]:
    """ "550-5.1.1 a\\n550 5.1.1 b" -> (550, "5.1.1 a 5.1.1 b"): the code and what follows it."""
    reply = reply.replace("\r\n", "\n").replace("\r", "\n").strip()
    m = _REPLY_HEAD.match(reply)
    if not m:
        return None, " ".join(reply.split())
    code = m.group(1)
    rest = _CONTINUATION.sub(" ", reply[m.end() :])
    if f"{code}-" in rest or f" {code} " in rest:  # an unfolded multi-line reply
        rest = re.sub(rf"(?<=\s){code}[- ](?:[245]\.\d{{1,3}}\.\d{{1,3}}\s+)?", " ", rest)
    return int(code), " ".join(rest.split())


def reply_finding(reply: str) -> Finding:
    """One SMTP reply, as `mailpulse classify --reply` reports it (kind "reply")."""
    code, text = split_reply(reply)
    if code is None:  # "host mx[192.0.2.1] said: 550 5.1.1 ...": the code inside the prose
        from queue_engine.dsn import best_reply

        inside = best_reply(reply)
        if inside is not None and inside.code is not None:
            code, text = inside.code, inside.text
    if code is not None and code < 400:
        success = ENHANCED.search(text)
        return Finding(
            kind="reply",
            smtp_code=code,
            enhanced_status=success.group(1) if success else None,
            diagnostic=" ".join(reply.split()) or None,
        )
    if code is None:
        enhanced = ENHANCED.search(text)
        if enhanced is not None and enhanced.group(1)[0] in "45":
            cls = classify_reply(550 if enhanced.group(1)[0] == "5" else 450, text)
        else:
            cls = classify_text(text, failed=True)
    else:
        cls = classify_reply(code, text)
    return Finding(
        kind="reply",
        smtp_code=code,
        enhanced_status=cls.enhanced_status,
        diagnostic=" ".join(reply.split()) or None,
        category=cls.category,
        permanent=cls.permanent,
        pause_reason=cls.pause_reason,
    )


def classify_text(text: str, *, failed: bool) -> Classification:
    """A failure whose reply code is unknown: what the wording alone says, else `other`.

    `classify_reply` with 550 (or 450 when the failure is not final) decides, but
    only if the words moved it: a code-only fallback rule would otherwise give
    every unexplained failure the category of a bare 550.
    """
    code = 550 if failed else 450
    worded = classify_reply(code, text)
    if text.strip():
        bare = classify_reply(code, "")
        if (worded.category, worded.pause_reason) != (bare.category, bare.pause_reason):
            return worded
        # Same outcome as the bare code: is that the wording's doing or the code's?
        neutral = classify_reply(code + 49, text)  # 599 / 499: no rule keys on these
        if neutral.category is not Category.OTHER:
            return worded
    return Classification(Category.OTHER, failed, worded.enhanced_status, None)


# --- a lenient MIME reader ----------------------------------------------------------------


class Headers:
    """Header fields in order, unfolded; look-ups by lower-case name, first one wins."""

    __slots__ = ("_index", "items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self._index: dict[str, str] = {}
        for name, value in items:
            self._index.setdefault(name.lower(), value)

    def get(self, name: str, default: str = "") -> str:
        return self._index.get(name, default)

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.items if n.lower() == name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __bool__(self) -> bool:
        return bool(self.items)


_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
_BLANK_LINE = re.compile(rb"\r?\n[ \t]*\r?\n")


def parse_headers(text: str) -> Headers:
    items: list[tuple[str, str]] = []
    for raw_line in text.split("\n"):
        line = raw_line.rstrip("\r")
        if not line.strip():
            continue
        if line[0] in " \t":
            if items:
                name, value = items[-1]
                items[-1] = (name, f"{value} {line.strip()}" if value else line.strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if sep and _FIELD_NAME.fullmatch(name):
            items.append((name, value.strip()))
    return Headers(items)


def split_entity(data: bytes) -> tuple[bytes, bytes]:
    """Header block and body of a message or MIME part."""
    if data.startswith(b"\n"):
        return b"", data[1:]
    if data.startswith(b"\r\n"):
        return b"", data[2:]
    m = _BLANK_LINE.search(data)
    if m is None:
        return data, b""
    return data[: m.start()], data[m.end() :]


def header_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_CT_PARAM = re.compile(r""";\s*([!#$%&'*+.^`|~\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)""")


def content_type(value: str, default: str = "text/plain") -> tuple[str, dict[str, str]]:
    main = value.split(";", 1)[0].strip().lower()
    if "/" not in main:
        main = default
    params: dict[str, str] = {}
    for name, raw in _CT_PARAM.findall(value):
        val = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        params.setdefault(name.lower().rstrip("*"), val)
    return main, params


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between boundary lines; a missing close delimiter ends the last part at EOF."""
    delim = b"--" + boundary
    n = len(delim)
    marks: list[tuple[int, int, bool]] = []  # (start of delimiter line, start of next line, close)
    i = body.find(delim)
    while i != -1 and len(marks) <= MAX_PARTS:
        after = body[i + n : i + n + 2]
        at_line_start = i == 0 or body[i - 1 : i] == b"\n"
        if at_line_start and (after in (b"", b"--") or after[:1] in (b"\r", b"\n", b" ", b"\t")):
            eol = body.find(b"\n", i)
            closing = after == b"--"
            marks.append((i, len(body) if eol == -1 else eol + 1, closing))
            if closing:
                break
        i = body.find(delim, i + n)
    parts: list[bytes] = []
    for k, (_, start, closing) in enumerate(marks):
        if closing:
            break
        end = marks[k + 1][0] if k + 1 < len(marks) else len(body)
        chunk = body[start:end]
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        elif chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        parts.append(chunk)
    return parts


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def b64decode(data: bytes) -> bytes:
    clean = _B64_JUNK.sub(b"", data)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    try:
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    except binascii.Error:
        return b""


def decode_transfer(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "base64":
        return b64decode(body)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


_CODECS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cn-big5": "big5hkscs",
    "iso-2022-jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
}
_GUESS = {"", "us-ascii", "ascii", "utf-8", "unknown-8bit", "x-unknown", "default", "unknown"}


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in any charset; undeclared or mislabelled 8-bit text is guessed (UTF-8, GB18030)."""
    cs = (charset or "").strip().strip("\"'").lower()
    if cs in _GUESS:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")
    try:
        return data.decode(_CODECS.get(cs, cs), "replace")
    except (LookupError, ValueError):
        # Not a codec, or one that refuses "replace" or its name (idna, punycode, a NUL
        # in the name): read as undeclared.
        return decode_bytes(data, None)


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words; adjacent words in one charset are joined before decoding."""
    if "=?" not in value:
        return value
    value = value[:4096]
    out: list[str] = []
    pos = 0
    pending: tuple[str, bytearray] | None = None
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        charset = m.group(1).split("*", 1)[0]
        data = m.group(3).encode("ascii", "replace")
        b_encoded = m.group(2) in "bB"
        chunk = b64decode(data) if b_encoded else binascii.a2b_qp(data.replace(b"_", b" "))
        if pending is not None and not between.strip() and pending[0].lower() == charset.lower():
            pending[1].extend(chunk)
        else:
            if pending is not None:
                out.append(decode_bytes(bytes(pending[1]), pending[0]))
                if between.strip():
                    out.append(between)
            else:
                out.append(between)
            pending = (charset, bytearray(chunk))
        pos = m.end()
    if pending is not None:
        out.append(decode_bytes(bytes(pending[1]), pending[0]))
    out.append(value[pos:])
    return "".join(out)


_HTML_DROP = re.compile(r"<(script|style|head|title)\b.*?</\1\s*>", re.I | re.S)
_HTML_BREAK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d|/table|p|div|tr|li|hr)\b[^<>]*>", re.I)
_HTML_CELL = re.compile(r"</t[dh]\s*>", re.I)
_HTML_TAG = re.compile(r"<[^<>]*>")
_HTML_MAILTO = re.compile(r"""<a\b[^<>]{0,500}?href=["']?mailto:[^"'<>?\s]+[^<>]*>""", re.I)


def html_to_text(markup: str) -> str:
    markup = _HTML_DROP.sub(" ", markup)
    markup = _HTML_MAILTO.sub(" ", markup)
    markup = _HTML_BREAK.sub("\n", markup)
    markup = _HTML_CELL.sub(" ", markup)
    text = html.unescape(_HTML_TAG.sub("", markup))
    return "\n".join(line.strip() for line in text.split("\n"))


_ORIGINAL_MARKERS = re.compile(
    r"""^[ \t>]*(?:
        -+\s*This\ is\ a\ copy\ of\ (?:the|your)\ message.*
      | -+\s*Below\ this\ line\ is\ a\ copy\ of\ the\ message.*
      | -+\s*(?:Original\ message\ follows|Message\ header\ follows|Original\ message
            |Returned\ Message|Unsent\ Message\ below|The\ header\ of\ the\ original\ message
              \ is\ following|Forwarded\ message|Original\ Message\ Headers|Original\ Headers)
        \b.*
      | Original\ message\ headers:.*
      | (?:The\ )?Original\ message\ follows[.:]?|Message\ header\ follows[.:]?
      | Below\ is\ a\ copy\ of\ the\ original\ message:.*
      | The\ (?:original|returned)\ message\ (?:headers?\ )?(?:follows?|is\ attached\ below)[:.]?
      | Content-Type:\ *(?:message/rfc822|text/rfc822-headers).*
      | (?:原始邮件头|原邮件头|邮件头信息|原始郵件標頭)[:：]?\s*
    )$""",
    re.M | re.I | re.X,
)
_HEADERISH = re.compile(r"^[!-9;-~]{1,76}:[ \t]", re.M)


def cut_original(text: str) -> tuple[str, str]:
    """A human-readable bounce text and the original message quoted inline after it, if any."""
    m = _ORIGINAL_MARKERS.search(text)
    if m is None:
        return text, ""
    return text[: m.start()], text[m.end() :]


@dataclass(slots=True)
class Mail:
    """What the reader found in one email: the parts that matter for reports."""

    headers: Headers
    subject: str = ""
    sender: str = ""  # From, decoded
    content_type: str = "text/plain"
    report_type: str = ""
    texts: list[str] = field(default_factory=list)  # human-readable parts, originals cut off
    html: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)  # message/delivery-status payloads
    feedback: list[str] = field(default_factory=list)  # message/feedback-report payloads
    original: Headers | None = None  # headers of the returned original message
    parts: int = 0
    _text: str | None = None

    @property
    def text(self) -> str:
        """The human-readable report: text parts, or the HTML ones as text when there are none."""
        if self._text is None:
            texts = [t for t in self.texts if t.strip()] or self.html
            self._text = "\n\n".join(texts)[:MAX_SEARCH_CHARS]
        return self._text

    def original_dict(self) -> dict[str, str]:
        if not self.original:
            return {}
        out: dict[str, str] = {}
        for name, value in self.original.items:
            out.setdefault(_CANONICAL.get(name.lower(), name), value)
        return out

    def original_message_id(self) -> str | None:
        if self.original is not None:
            mid = self.original.get("message-id")
            if mid:
                return _msgid(mid)
        for source in (*self.status, self.text):
            m = _MSGID_IN_TEXT.search(source)
            if m:
                return _msgid(m.group(1))
        return None

    def return_path(self, *extra: str | None) -> str | None:
        """The address the report was sent to (our VERP return path, when it shows)."""
        sent_to: list[str] = []  # where this report was delivered: the bounce's own headers
        for name in ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to"):
            for value in self.headers.all(name):
                sent_to.extend(ADDRESS.findall(value))
        # ... and the original's envelope sender, as the report repeats it
        senders: list[str] = [a for value in extra if value for a in ADDRESS.findall(value)]
        if self.original is not None:
            senders.extend(ADDRESS.findall(self.original.get("return-path")))
        for addr in (*sent_to, *senders):
            local = addr.partition("@")[0].lower()
            if "+" in local or local.startswith(("bounce", "bnc", "return")):
                return addr
        return sent_to[0] if sent_to else None


_CANONICAL = {
    "message-id": "Message-ID",
    "x-mailpulse-id": "X-Mailpulse-Id",
    "to": "To",
    "from": "From",
    "subject": "Subject",
    "date": "Date",
    "return-path": "Return-Path",
    "in-reply-to": "In-Reply-To",
    "references": "References",
}
_MSGID_IN_TEXT = re.compile(r"(?im)^[ \t]*(?:X-)?(?:Original-)?Message-ID:[ \t]*(<[^>\s]+>)")
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")


def _msgid(value: str) -> str:
    value = value.strip()
    m = re.search(r"<[^<>\s]+>", value)
    return m.group(0) if m else value.split()[0] if value else value


def read_mail(raw: bytes) -> Mail:
    head, body = split_entity(raw.lstrip(b"\r\n"))
    headers = parse_headers(header_text(head))
    ctype, params = content_type(headers.get("content-type"))
    mail = Mail(
        headers=headers,
        subject=" ".join(decode_words(headers.get("subject")).split()),
        sender=decode_words(headers.get("from")),
        content_type=ctype,
        report_type=params.get("report-type", "").lower(),
    )
    _walk(mail, body, headers, 0, "text/plain")
    for i, text in enumerate(mail.texts):
        human, rest = cut_original(text)
        mail.texts[i] = human
        if rest and mail.original is None:
            found = _inline_headers(rest)
            if found:
                mail.original = found
    return mail


def _inline_headers(text: str) -> Headers | None:
    block = text.lstrip(" \t\r\n")
    end = re.search(r"\n[ \t]*\n", block)
    if end:
        block = block[: end.start()]
    if not _HEADERISH.match(block):
        return None
    found = parse_headers(block)
    return found or None


_ORIGINAL_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "text/global-headers",
        "message/global-headers",
        "message/rfc822-headers",
    }
)


def _walk(mail: Mail, body: bytes, headers: Headers, depth: int, default: str) -> None:
    mail.parts += 1
    ctype, params = content_type(headers.get("content-type"), default)
    cte = headers.get("content-transfer-encoding")
    if ctype.startswith("multipart/"):
        boundary = params.get("boundary")
        if boundary and depth < MAX_DEPTH:
            inner = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
            for chunk in split_multipart(body, boundary.encode("utf-8", "replace")):
                if mail.parts > MAX_PARTS:
                    return
                part_head, part_body = split_entity(chunk)
                _walk(mail, part_body, parse_headers(header_text(part_head)), depth + 1, inner)
            return
        ctype = "text/plain"
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        mail.status.append(_part_text(body, cte, params.get("charset") or "utf-8"))
    elif ctype == "message/feedback-report":
        mail.feedback.append(_part_text(body, cte, params.get("charset") or "utf-8"))
    elif ctype in _ORIGINAL_TYPES:
        if mail.original is None:
            inner_head, _ = split_entity(decode_transfer(body, cte).lstrip(b"\r\n"))
            found = parse_headers(header_text(inner_head))
            mail.original = found or None
    elif ctype == "text/html":
        mail.html.append(html_to_text(_part_text(body, cte, params.get("charset"))))
    elif ctype.startswith("text/"):
        mail.texts.append(_part_text(body, cte, params.get("charset")))


def _part_text(body: bytes, cte: str, charset: str | None) -> str:
    text = decode_bytes(decode_transfer(body, cte)[: MAX_TEXT_CHARS * 2], charset)[:MAX_TEXT_CHARS]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\xa0", " ").replace("\u3000", " ")


# --- auto-replies (RFC 3834, vacation messages) -------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"""(?ix)
    \b(?:out\ of\ (?:the\ )?office|automatic\ reply|auto[- ]?reply|auto[- ]?response|autoresponder
      |auto:|vacation|on\ holiday|on\ leave|away\ from\ (?:the\ )?office|abwesend|abwesenheit
      |automatische\ antwort|r[ée]ponse\ automatique|absence|absent|respuesta\ autom[áa]tica
      |fuera\ de\ la\ oficina|risposta\ automatica|fuori\ ufficio|resposta\ autom[áa]tica
      |automatisch\ antwoord|afwezig|autosvar|automaattinen\ vastaus|automatyczna\ odpowied[źz]
      |otomatik\ yan[ıi]t|automatick[áa]\ odpov[ěe]ď)
    |автоответ|автоматический\ ответ|自动回复|自動回覆|自動回复|自动答复|休假|不在办公室
    |自動返信|自動応答
    |不在のお知らせ|자동\ ?회신|자동\ ?응답|Αυτόματη\ απάντηση
    """
)


def is_autoreply(mail: Mail) -> bool:
    h = mail.headers
    auto = h.get("auto-submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if any(name in h for name in ("x-autoreply", "x-autorespond", "x-autoresponder")):
        return True
    if h.get("x-autogenerated").lower() == "reply" or h.get("precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(mail.subject))


def parse_autoreply(mail: Mail) -> list[Finding] | None:
    if not is_autoreply(mail):
        return None
    sender = ADDRESS.search(mail.sender) or ADDRESS.search(mail.headers.get("return-path"))
    msgids = re.findall(r"<[^<>\s]+>", mail.headers.get("in-reply-to"))
    msgids = msgids[:1] or re.findall(r"<[^<>\s]+>", mail.headers.get("references"))[-1:]
    return [
        Finding(
            kind="autoreply",
            recipient=sender.group(0) if sender else None,
            diagnostic=mail.subject or None,
            return_path=mail.return_path(),
            original_message_id=(msgids[0] if msgids else None) or mail.original_message_id(),
            original_headers=mail.original_dict(),
        )
    ]
