"""Fuzzing the send API body (hypothesis): any JSON, and near-valid bodies with hostile
text in every field, is a 202 or a 400 naming a field, never a crash; and whatever
is accepted renders to a message whose header lines are exactly the ones meant,
whatever CR, LF, Unicode line breaks, IDN or SMTPUTF8 text the fields held.
(Hand-picked refusals: tests/web/test_send_validation.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_string
from email.header import decode_header, make_header
from email.policy import SMTP
from typing import Any

import httpx
import pytest
from conftest import Sender
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_engine.message import MessageError, build_body
from queue_engine.submission import SendRequest

FIELDS = ["from", "to", "subject", "html", "text", "tag", "headers", "api_user", "tracking"]

# Text a header could be smuggled with, and text of other scripts.
HOSTILE = st.sampled_from(
    [
        "\r\nBcc: victim@x.example",
        "\n",
        "\r",
        "\u2028",
        "\u0085",
        "\x00",
        "=?utf-8?q?=0D=0ABcc:_x@y?=",
        ": ",
        "<",
        ">",
        '"',
        "@",
        ",",
        "ü",
        "用户",
        "😀",
        "\ud7ff",
        "x" * 200,
    ]
)
TEXT = st.lists(st.one_of(HOSTILE, st.text(max_size=8)), max_size=6).map("".join)
ADDRESS = st.one_of(
    st.just("user@gmail.example"),
    st.just("user@bücher.example"),  # IDN domain
    st.just("用户@例え.example"),  # SMTPUTF8 local part
    st.just("Ünïcödé <u@gmail.example>"),
    st.builds(lambda a, b: f"{a}@{b}", TEXT, TEXT),
    TEXT,
)
NEAR_VALID = st.fixed_dictionaries(
    {"from": ADDRESS, "to": st.lists(ADDRESS, min_size=1, max_size=3), "text": TEXT},
    optional={
        "subject": TEXT,
        "html": TEXT,
        "tag": TEXT,
        "headers": st.dictionaries(st.one_of(st.just("X-Campaign"), TEXT), TEXT, max_size=3),
    },
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
ANY_BODY = st.one_of(
    JSON_VALUES, st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=len(FIELDS))
)

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def drawn(strategy: st.SearchStrategy[Any]) -> list[Any]:
    """Examples drawn by hypothesis, for an async test to send (hypothesis cannot await)."""
    found: list[Any] = []

    @SETTINGS
    @given(strategy)
    def draw(value: Any) -> None:
        found.append(value)

    draw()
    return found


async def test_any_body_is_202_or_400_naming_its_field(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    answered = set()
    for body in drawn(NEAR_VALID) + drawn(ANY_BODY):
        content = json.dumps(body).encode()  # ASCII escapes: lone surrogates go as sent
        response = await client.post(
            "/v1/mail/send",
            content=content,
            headers={**sender.basic, "content-type": "application/json"},
        )
        answered.add(response.status_code)
        assert response.status_code in (202, 400), (body, response.text)
        if response.status_code == 400:
            error = response.json()["error"]
            assert isinstance(error["field"], str) and error["message"], (body, error)
        else:
            assert len(response.json()["email_ids"]) == len(
                [body["to"]] if isinstance(body["to"], str) else body["to"]
            )
    assert answered == {202, 400}  # the near-valid bodies reach the accepting path


@SETTINGS
@given(NEAR_VALID)
def test_an_accepted_body_renders_exactly_its_own_header_lines(body: dict[str, Any]) -> None:
    try:
        send = SendRequest.parse(body)
    except MessageError:
        return  # refused: the API answers 400 (above)
    rendered = build_body(
        from_name=send.from_name,
        from_address=send.from_address,
        subject=send.subject,
        html=send.html,
        text=send.text,
        headers=send.headers,
        date=datetime(2025, 1, 1, tzinfo=UTC),
        utf8=not send.from_address.isascii(),
    )
    head = rendered.split("\r\n\r\n", 1)[0]
    # Every line is a header or the folded continuation of one: nothing starts a new one.
    names = [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in (" ", "\t")]
    meant = {"From", "Subject", "Date", "MIME-Version", "Content-Type"}
    meant |= {"Content-Transfer-Encoding"} | set(send.headers)
    assert set(names) <= meant, (names, body)
    assert len(names) == len(set(names))  # nothing given twice, such as a second From
    assert "\n" not in rendered.replace("\r\n", "")  # no bare line ends
    message = message_from_string(rendered, policy=SMTP)
    subject = str(make_header(decode_header(message["Subject"] or "")))
    assert subject == send.subject.strip() or " ".join(subject.split()) == " ".join(
        send.subject.split()
    )


ENCODED_BREAK = "=?utf-8?q?=0D=0ABcc:_victim@x.example?="


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": ENCODED_BREAK}, "subject"),
        ({"headers": {"X-Campaign": f"a {ENCODED_BREAK} b"}}, "headers.X-Campaign"),
        ({"headers": {"Reply-To": f"{ENCODED_BREAK} <r@acme.example>"}}, "headers.Reply-To"),
        ({"from": f"{ENCODED_BREAK} <shop@acme.example>"}, "from"),
    ],
)
async def test_a_line_break_in_an_encoded_word_is_refused(
    client: httpx.AsyncClient, sender: Sender, changes: dict[str, Any], field: str
) -> None:
    """The email package decodes RFC 2047 words of a header it is given, so these
    would have become a Bcc line of their own (or a 500, for an address header)."""
    body = {"from": "shop@acme.example", "to": ["u@gmail.example"], "text": "t", **changes}
    response = await client.post("/v1/mail/send", json=body, headers=sender.basic)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field
