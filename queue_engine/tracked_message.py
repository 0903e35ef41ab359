"""The parts of a message that differ per recipient: tracked links, the pixel, List-Unsubscribe.

A send call's body is built once and shared by its recipients, but tracking
tokens are per email. So at send the tracked parts (the HTML, and the text
when asked) are rewritten once into templates: literal pieces with a token
slot between each two, stored beside the body as a plan, while the body holds
a marker line in place of each such part. At delivery each email fills its
tokens in and quoted-printable-encodes just those parts (binascii, in C);
encoding after filling means no QP soft line break can ever split a token.
Mail without tracking keeps the plain path: one shared body, no plan.

Links are found with the standard library's HTML parser, then rewritten by
their exact position in the source, so everything else (tables, entities,
comments, `<a>` without href, mailto: links, other attributes) stays byte for
byte what the sender wrote.
"""

from __future__ import annotations

import binascii
import html as html_lib
import json
import re
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser

from queue_engine.smtp_client import LEADING_DOT, LINE_ENDINGS, wire_body
from queue_engine.tracking import (
    MAX_URL_BYTES,
    TrackingOptions,
    click_token,
    open_token,
    unsubscribe_mailto,
    unsubscribe_token,
)

_TAG_NAME = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*(?:\s|/(?!>))*")
# The attribute grammar of html.parser (attrfind_tolerant), to find a value's position.
_ATTRIBUTE = re.compile(
    r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?(?:\s|/(?!>))*"""
)
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}"
"""Punctuation that ends a sentence rather than a URL in plain text."""


@dataclass(slots=True)
class Template:
    """Literal pieces with a token slot between each two: a click's URL, or None (pixel)."""

    pieces: list[str]
    slots: list[str | None]

    def fill(self, tokens: list[str]) -> str:
        out = [self.pieces[0]]
        for token, piece in zip(tokens, self.pieces[1:], strict=True):
            out += (token, piece)
        return "".join(out)


class _TemplateBuilder:
    def __init__(self) -> None:
        self.template = Template([""], [])

    def literal(self, text: str) -> None:
        self.template.pieces[-1] += text

    def slot(self, url: str | None) -> None:
        self.template.slots.append(url)
        self.template.pieces.append("")


def _trackable(url: str, base: str) -> bool:
    return (
        url.lower().startswith(("http://", "https://"))
        and len(url.encode()) <= MAX_URL_BYTES
        and not url.startswith((f"{base}/t/", f"{base}/u/"))  # ours already
    )


class _LinkFinder(HTMLParser):
    """Spans (start, end) of the href values of <a> and <area> with their URLs, and where
    the last </body> tag starts: positions in the source, of real tags only (not of text
    in comments, scripts or attribute values)."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.links: list[tuple[int, int, str]] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "area"):
            return
        href = next((value for name, value in attrs if name == "href"), None)
        raw = self.get_starttag_text()
        start = self._offset()
        if href is None or raw is None or not self.source.startswith(raw, start):
            return
        span = _href_span(raw)
        # Rewrite only where our reading of the tag agrees with the parser's.
        if span is not None and _attribute_value(raw[span[0] : span[1]]) == href:
            self.links.append((start + span[0], start + span[1], href.strip()))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body" and self.source.startswith("</", self._offset()):
            self.body_end = self._offset()

    def scan(self) -> None:
        try:
            self.feed(self.source)
            self.close()
        except AssertionError:
            # html.parser gives up on some malformed markup (`<![foo[`); what it found
            # before that is right, the rest stays as written.
            pass


def _href_span(raw: str) -> tuple[int, int] | None:
    name = _TAG_NAME.match(raw)
    k = name.end() if name else len(raw)
    while k < len(raw):
        match = _ATTRIBUTE.match(raw, k)
        if not match:
            return None
        if match.group(1).lower() == "href":
            return match.span(3) if match.group(3) is not None else None
        k = match.end()
    return None


def _attribute_value(quoted: str) -> str:
    if quoted[:1] == quoted[-1:] and quoted[:1] in ("'", '"') and len(quoted) >= 2:
        quoted = quoted[1:-1]
    return html_lib.unescape(quoted)


def rewrite_html(source: str, base: str, clicks: bool, opens: bool) -> Template:
    """The HTML with http(s) links through /t/c/ (clicks) and a pixel before </body> (opens)."""
    finder = _LinkFinder(source)
    finder.scan()
    edits: list[tuple[int, int, str | None]] = []
    if clicks:
        edits += [(s, e, url) for s, e, url in finder.links if _trackable(url, base)]
    if opens:
        at = len(source) if finder.body_end is None else finder.body_end
        edits.append((at, at, None))
    escaped = html_lib.escape(base)
    builder = _TemplateBuilder()
    at = 0
    for start, end, url in sorted(edits, key=lambda edit: edit[:2]):
        builder.literal(source[at:start])
        if url is None:
            builder.literal(f'<img src="{escaped}/t/o/')
            builder.slot(None)
            builder.literal('" width="1" height="1" alt="" border="0">')
        else:
            builder.literal(f'"{escaped}/t/c/')
            builder.slot(url)
            builder.literal('"')
        at = end
    builder.literal(source[at:])
    return builder.template


def rewrite_text(source: str, base: str) -> Template:
    """Plain text with its http(s) URLs through /t/c/ (only when the sender asks)."""
    builder = _TemplateBuilder()
    at = 0
    for match in _TEXT_URL.finditer(source):
        url = match.group().rstrip(_TRAILING)
        if not _trackable(url, base):
            continue
        builder.literal(source[at : match.start()] + f"{base}/t/c/")
        builder.slot(url)
        at = match.start() + len(url)
    builder.literal(source[at:])
    return builder.template


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the body is built from, and the plan stored beside it (None: nothing varies)."""

    html: str | None
    text: str | None
    plan: str | None


def prepare(
    html: str | None,
    text: str | None,
    options: TrackingOptions,
    list_unsubscribe: bool,
    base: str,
) -> Prepared:
    nonce = secrets.token_hex(8)
    markers: list[str] = []
    parts: list[dict[str, object]] = []

    def templated(template: Template, original: str) -> str:
        if not template.slots:
            return original
        markers.append(f"mailpulse-part-{nonce}-{len(markers)}")
        parts.append({"pieces": template.pieces, "slots": template.slots})
        return markers[-1]

    if html is not None and (options.opens or options.clicks):
        html = templated(rewrite_html(html, base, options.clicks, options.opens), html)
    if text is not None and options.clicks and options.text_links:
        text = templated(rewrite_text(text, base), text)
    if not parts and not list_unsubscribe:
        return Prepared(html, text, None)
    plan = {"markers": markers, "parts": parts, "unsubscribe": base if list_unsubscribe else None}
    return Prepared(html, text, json.dumps(plan, separators=(",", ":")))


class TrackedMessage:
    """A stored body and its plan, ready to render one email after another.

    All but the tokens is put in wire form once, here: each literal piece of a
    template is quoted-printable encoded on its own and ends with a soft line
    break, and each token goes on lines of its own (base64url needs no
    encoding), so a QP line break can never split a token and rendering an
    email is signing its tokens and one join.
    """

    def __init__(self, body: str, plan: str) -> None:
        loaded = json.loads(plan)
        self.unsubscribe_base: str | None = loaded["unsubscribe"]
        where = [body.find(marker) for marker in loaded["markers"]]
        if -1 in where:
            raise ValueError("a stored body lacks a marker of its plan")
        self.chunks: list[bytes] = []
        """Wire bytes, with a token slot between each two."""
        self.slots: list[str | None] = []
        """A click's URL, or None for the open pixel."""
        at, pending = 0, b""
        for i in sorted(range(len(where)), key=where.__getitem__):  # text before HTML
            template = Template(**loaded["parts"][i])
            pieces = [p.replace("\r\n", "\n").replace("\r", "\n") for p in template.pieces]
            if not pieces[-1].endswith("\n"):  # as the email package ends a text part
                pieces[-1] += "\n"
            pending += _wire(body[at : where[i]])
            for piece, url in zip(pieces, template.slots, strict=False):
                self.chunks.append(
                    pending + _wire_lines(_soft_end(binascii.b2a_qp(piece.encode())))
                )
                self.slots.append(url)
                pending = b""
            pending = _wire_lines(_qp(pieces[-1]))
            at = where[i] + len(loaded["markers"][i])
            at += 2 if body.startswith("\r\n", at) else 1 if body.startswith("\n", at) else 0
        self.chunks.append(pending + _wire(body[at:]))

    def render(
        self,
        secret: bytes,
        email_id: str,
        account: str,
        api_user: str,
        recipient: str,
        mailto_domain: str | None,
    ) -> tuple[str, bytes]:
        """(header lines to add, the body in wire form) of one email."""
        out = [self.chunks[0]]
        for url, chunk in zip(self.slots, self.chunks[1:], strict=True):
            token = (
                open_token(secret, email_id) if url is None else click_token(secret, email_id, url)
            ).encode()
            # Lines of at most 75 characters, each ended by a soft line break.
            out += (*(token[i : i + 75] + b"=\r\n" for i in range(0, len(token), 75)), chunk)
        headers = ""
        if self.unsubscribe_base is not None:
            link = unsubscribe_token(secret, email_id, account, api_user, recipient)
            headers = f"List-Unsubscribe: <{self.unsubscribe_base}/u/{link}>"
            if mailto_domain:
                mailto = unsubscribe_mailto(secret, email_id, mailto_domain)
                headers += f",\r\n <mailto:{mailto}?subject=unsubscribe>"
            headers += "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        return headers, b"".join(out)


def _wire(segment: str) -> bytes:
    # Every segment starts and ends at a line boundary, so each can be put in wire form
    # on its own; an empty one (a single-part body ends at its marker) stays empty.
    return wire_body(segment.encode()) if segment else b""


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode())  # in C: ten times quoprimime's speed


def _wire_lines(data: bytes) -> bytes:
    """CRLF line ends and dot-stuffing (wire_body without its final CRLF): a piece
    always starts a line, after a soft line break or a token's."""
    return LEADING_DOT.sub(b"..", LINE_ENDINGS.sub(b"\r\n", data))


def _soft_end(qp: bytes) -> bytes:
    """QP text that goes on, on the same decoded line, after a soft line break: its last
    line is cut so that with the `=` no line is longer than 76 characters."""
    head, newline, last = qp.rpartition(b"\n")
    out = [head + newline]
    while len(last) > 75:
        escape = last.rfind(b"=", 73, 75)  # never cut an =XX in two
        cut = 75 if escape == -1 else escape
        out.append(last[:cut] + b"=\n")
        last = last[cut:]
    return b"".join(out) + last + b"=\n"
