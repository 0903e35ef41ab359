"""POST /v1/mail/send: every refused input gets its 4xx, names its field, and stores nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from queue_engine import keys

GOOD: dict[str, Any] = {
    "from": "Shop <shop@acme.example>",
    "to": ["user@gmail.example"],
    "subject": "Hello",
    "text": "Hi",
}


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k not in names}


def good(**changes: Any) -> dict[str, Any]:
    """The good body with some fields replaced (`from_` stands for "from")."""
    body = dict(GOOD)
    for name, value in changes.items():
        body[name.rstrip("_")] = value
    return body


def raw_json(value: Any) -> bytes:
    """JSON text as Python writes it (ASCII escapes), so lone surrogates can be sent."""
    return json.dumps(value).encode()


def assert_error(response: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["field"] == field
    result: dict[str, Any] = error
    return result


async def assert_nothing_stored(client: httpx.AsyncClient, redis, sender) -> None:
    for auth in (sender.basic, sender.bearer):
        listing = await client.get("/v1/emails", headers=auth)
        assert listing.status_code == 200, listing.text
        assert listing.json() == {"items": [], "next_cursor": None}
    # No record, no body and no queue entry either: a refused call leaves no trace.
    assert [k async for k in redis.scan_iter("em:*")] == []
    assert [k async for k in redis.scan_iter("msg:*")] == []
    assert [k async for k in redis.scan_iter("q:*")] == []


async def post(
    client: httpx.AsyncClient, auth: dict[str, str], body: Any = None, **kwargs: Any
) -> httpx.Response:
    if body is not None:
        kwargs["json"] = body
    return await client.post("/v1/mail/send", headers=auth, **kwargs)


# --- refused bodies ---------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not an object: a list", ["user@gmail.example"], "body"),
    ("not an object: a string", "hello", "body"),
    ("not an object: null", None, "body"),
    ("missing from", without("from"), "from"),
    ("from not an address", good(from_="x"), "from"),
    ("from without domain", good(from_="shop@"), "from"),
    ("from not a string", good(from_=42), "from"),
    ("from with a line break", good(from_="Shop\r\nBcc: x@y.example <s@a.example>"), "from"),
    ("from with U+2028", good(from_="Shop\u2028 <shop@acme.example>"), "from"),
    ("missing to", without("to"), "to"),
    ("empty to", good(to=[]), "to"),
    ("to not a list", good(to={"a": "user@gmail.example"}), "to"),
    ("to with a non-string", good(to=["user@gmail.example", 7]), "to"),
    ("1001 recipients", good(to=[f"u{i}@gmail.example" for i in range(1001)]), "to"),
    ("CR in subject", good(subject="Hello\rBcc: victim@x.example"), "subject"),
    ("LF in subject", good(subject="Hello\nBcc: victim@x.example"), "subject"),
    ("NUL in subject", good(subject="Hello\0"), "subject"),
    ("U+2028 in subject", good(subject="Hello\u2028there"), "subject"),
    ("VT in subject", good(subject="Hello\x0bthere"), "subject"),
    ("subject too long", good(subject="s" * 999), "subject"),
    ("subject not a string", good(subject=["Hello"]), "subject"),
    ("CR/LF in a header value", good(headers={"X-Foo": "a\r\nBcc: x@y.example"}), "headers.X-Foo"),
    ("LF in a header value", good(headers={"X-Foo": "a\nb"}), "headers.X-Foo"),
    ("U+2028 in a header value", good(headers={"X-Foo": "a\u2028b"}), "headers.X-Foo"),
    ("reserved header To", good(headers={"To": "other@gmail.example"}), "headers.To"),
    ("reserved header any case", good(headers={"message-id": "<x@y>"}), "headers.message-id"),
    (
        "reserved header Content-Type",
        good(headers={"Content-Type": "text/x"}),
        "headers.Content-Type",
    ),
    ("non-string header value", good(headers={"X-Foo": 1}), "headers.X-Foo"),
    ("header value an object", good(headers={"X-Foo": {"a": 1}}), "headers.X-Foo"),
    ("bad header name", good(headers={"X Foo": "v"}), "headers.X Foo"),
    ("headers not an object", good(headers=["X-Foo: v"]), "headers"),
    ("unknown top-level field", good(bcc=["spy@x.example"]), "bcc"),
    ("html and text both missing", without("text"), "html"),
    ("html not a string", {**without("text"), "html": 1}, "html"),
    ("text not a string", good(text=["Hi"]), "text"),
    ("tag too long", good(tag="t" * 65), "tag"),
    ("tag not a string", good(tag=5), "tag"),
    ("tag not printable", good(tag="a\tb"), "tag"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [pytest.param(body, field, id=name) for name, body, field in BAD_BODIES],
)
async def test_bad_body_is_refused_naming_its_field(client, redis, sender, body, field):
    response = await post(client, sender.basic, content=raw_json(body))
    error = assert_error(response, 400, field)
    assert error["code"] == "bad_request"
    await assert_nothing_stored(client, redis, sender)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"from": "shop@acme.example", "to": [', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{'from': 'single quotes'}", id="single-quotes"),
        pytest.param(b'{"from": "\xff\xfe"}', id="not-utf8"),
        pytest.param(b'{"a": NaN}x', id="trailing-garbage"),
    ],
)
async def test_malformed_json_is_400_body(client, redis, sender, content):
    response = await post(client, sender.basic, content=content)
    assert_error(response, 400, "body")
    await assert_nothing_stored(client, redis, sender)


async def test_lone_surrogate_escape_is_400_not_500(client, redis, sender):
    # "\ud800" is valid JSON syntax but no Unicode text; it cannot be stored or sent.
    for body in (
        good(subject="\ud800"),
        good(to=["\ud800@gmail.example"]),
        {**GOOD, "\udc00": 1},
    ):
        response = await post(client, sender.basic, content=raw_json(body))
        assert_error(response, 400, "body")
    await assert_nothing_stored(client, redis, sender)


@pytest.mark.parametrize("levels", [33, 500, 10_000])
async def test_deeply_nested_json_is_400_not_500(client, redis, sender, levels):
    content = b"[" * levels + b"]" * levels
    response = await post(client, sender.basic, content=content)
    assert_error(response, 400, "body")
    nested = b'{"from": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"
    response = await post(client, sender.basic, content=nested)
    assert_error(response, 400, "body")
    await assert_nothing_stored(client, redis, sender)


async def test_nesting_within_the_limit_reaches_field_validation(client, redis, sender):
    # 20 levels is allowed JSON: the refusal now comes from the send fields, not the parser.
    nested: Any = "x"
    for _ in range(20):
        nested = [nested]
    response = await post(client, sender.basic, good(subject=nested))
    assert_error(response, 400, "subject")
    await assert_nothing_stored(client, redis, sender)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_wrong_content_type_is_415(client, redis, sender, content_type):
    response = await post(
        client,
        {**sender.basic, "content-type": content_type},
        content=raw_json(GOOD),
    )
    error = assert_error(response, 415, "body")
    assert error["code"] == "unsupported_media_type"
    await assert_nothing_stored(client, redis, sender)


async def test_json_content_type_with_charset_is_accepted(client, sender):
    response = await post(
        client,
        {**sender.basic, "content-type": "application/json; charset=utf-8"},
        content=raw_json(GOOD),
    )
    assert response.status_code == 202, response.text


# --- body size -------------------------------------------------------------------------------


def oversized_body(limit: int) -> bytes:
    content = raw_json(good(text="x" * limit))
    assert len(content) > limit
    return content


async def test_body_over_limit_with_content_length_is_413(client, redis, sender, engine_config):
    content = oversized_body(engine_config.max_body_bytes)
    response = await post(client, sender.basic, content=content)
    assert response.request.headers["content-length"] == str(len(content))
    error = assert_error(response, 413, "body")
    assert error["code"] == "too_large"
    await assert_nothing_stored(client, redis, sender)


async def test_lying_small_content_length_does_not_get_past_the_limit(
    client, redis, sender, engine_config
):
    content = oversized_body(engine_config.max_body_bytes)
    response = await post(client, {**sender.basic, "content-length": "10"}, content=content)
    assert_error(response, 413, "body")
    await assert_nothing_stored(client, redis, sender)


async def test_chunked_body_over_limit_is_413_and_not_read_to_the_end(
    client, redis, sender, engine_config
):
    limit = engine_config.max_body_bytes
    chunk = b" " * 65536  # JSON whitespace: the body would parse if it were read whole
    total_chunks = 4 * limit // len(chunk)
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield raw_json(GOOD)
        for _ in range(total_chunks):
            sent += 1
            yield chunk

    response = await post(client, sender.basic, content=stream())
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "body")
    # The server stopped reading soon after the limit instead of buffering all 4 MiB.
    assert sent * len(chunk) <= limit + len(chunk)
    await assert_nothing_stored(client, redis, sender)


async def test_chunked_body_under_limit_is_accepted(client, sender):
    async def stream() -> AsyncIterator[bytes]:
        content = raw_json(GOOD)
        for i in range(0, len(content), 7):
            yield content[i : i + 7]

    response = await post(client, sender.basic, content=stream())
    assert response.status_code == 202, response.text
    assert len(response.json()["email_ids"]) == 1


async def test_body_just_under_limit_is_accepted(client, sender, engine_config):
    content = raw_json(good(text=""))
    content = raw_json(good(text="x" * (engine_config.max_body_bytes - len(content))))
    assert len(content) == engine_config.max_body_bytes
    response = await post(client, sender.basic, content=content)
    assert response.status_code == 202, response.text


# --- authentication ---------------------------------------------------------------------------


def basic(user: str, key: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


AUTH_CASES: dict[str, Any] = {
    "no credentials": lambda s: {},
    "wrong api key": lambda s: basic(s.api_user, s.api_key + "x"),
    "unknown api_user": lambda s: basic("nobody", s.api_key),
    "empty user and key": lambda s: basic("", ""),
    "no colon": lambda s: {"authorization": "Basic " + base64.b64encode(b"acme-tx").decode()},
    "malformed base64": lambda s: {"authorization": "Basic !!!not-base64!!!"},
    "base64 without padding": lambda s: {"authorization": "Basic YWJj"[:-1]},
    "non-ascii basic": lambda s: {"authorization": b"Basic \xff\xfe\xfd"},
    "not utf-8 inside base64": lambda s: {
        "authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode()
    },
    "basic without credentials": lambda s: {"authorization": "Basic"},
    "wrong bearer": lambda s: {"authorization": "Bearer mpa_not-a-key"},
    "api key as bearer": lambda s: {"authorization": f"Bearer {s.api_key}"},
    "account key as basic": lambda s: basic(s.account, s.account_key),
    "unknown scheme": lambda s: {"authorization": f"Token {s.account_key}"},
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
async def test_bad_credentials_are_401_with_www_authenticate(client, redis, sender, case):
    response = await post(client, AUTH_CASES[case](sender), GOOD)
    error = assert_error(response, 401, None)
    assert error["code"] == "unauthorized"
    assert response.headers["www-authenticate"].lower().startswith("basic")
    await assert_nothing_stored(client, redis, sender)


async def test_auth_is_checked_before_the_body(client, redis, sender):
    # Without credentials even a malformed body gets 401, not a hint about the body.
    response = await post(client, {}, content=b"{not json")
    assert_error(response, 401, None)
    await assert_nothing_stored(client, redis, sender)


# --- good paths -------------------------------------------------------------------------------


async def get_record(client: httpx.AsyncClient, auth: dict[str, str], email_id: str) -> Any:
    response = await client.get(f"/v1/emails/{email_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_string_to_is_one_recipient(client, sender):
    response = await post(client, sender.basic, good(to="single@gmail.example"))
    assert response.status_code == 202, response.text
    [email_id] = response.json()["email_ids"]
    record = await get_record(client, sender.basic, email_id)
    assert record["recipient"] == "single@gmail.example"
    assert record["status"] == "requesting"
    assert record["api_user"] == sender.api_user


async def test_account_bearer_key_sends_as_the_named_api_user(client, sender, make_sender):
    marketing = await make_sender(api_user="acme-mk", email_type="marketing")
    response = await post(client, sender.bearer, good(api_user="acme-mk"))
    assert response.status_code == 202, response.text
    [email_id] = response.json()["email_ids"]
    record = await get_record(client, sender.bearer, email_id)
    assert record["api_user"] == "acme-mk"
    assert record["type"] == "marketing"
    # It is that API_USER's email: its Basic credentials see it, the sibling's do not.
    assert (await get_record(client, marketing.basic, email_id))["email_id"] == email_id
    response = await client.get(f"/v1/emails/{email_id}", headers=sender.basic)
    assert response.status_code == 404


@pytest.mark.parametrize("api_user", [None, "", 5, ["acme-tx"]])
async def test_account_bearer_key_without_api_user_is_400(client, redis, sender, api_user):
    body = GOOD if api_user is None else good(api_user=api_user)
    response = await post(client, sender.bearer, body)
    assert_error(response, 400, "api_user")
    await assert_nothing_stored(client, redis, sender)


async def test_account_bearer_key_with_another_accounts_api_user_is_400(
    client, redis, sender, make_sender
):
    other = await make_sender(account="other", api_user="other-tx")
    for name in ("other-tx", "no-such-user"):
        response = await post(client, sender.bearer, good(api_user=name))
        assert_error(response, 400, "api_user")
    await assert_nothing_stored(client, redis, sender)
    listing = await client.get("/v1/emails", headers=other.bearer)
    assert listing.json()["items"] == []


async def test_idn_recipient_is_recorded_with_its_punycode_domain(client, redis, sender):
    response = await post(client, sender.basic, good(to=["user@bücher.example"]))
    assert response.status_code == 202, response.text
    [email_id] = response.json()["email_ids"]
    record = await get_record(client, sender.basic, email_id)
    assert record["recipient"] == "user@xn--bcher-kva.example"
    assert record["status"] == "requesting" and record["reason"] is None
    assert await redis.hget(keys.email(email_id), "domain") == "xn--bcher-kva.example"
    queue = keys.queue_ready(keys.queue_tag(sender.api_user, "xn--bcher-kva.example"))
    assert await redis.zscore(queue, email_id) is not None
    # The address filter finds it by the form it was recorded with.
    listing = await client.get(
        "/v1/emails", params={"address": "user@xn--bcher-kva.example"}, headers=sender.basic
    )
    assert [i["email_id"] for i in listing.json()["items"]] == [email_id]


async def test_malformed_recipient_is_logged_invalid_and_the_others_proceed(client, redis, sender):
    to = ["good1@gmail.example", "not an address", "good2@qq.example"]
    response = await post(client, sender.basic, good(to=to))
    assert response.status_code == 202, response.text
    ids = response.json()["email_ids"]
    assert len(ids) == 3 and len(set(ids)) == 3
    first, bad, second = [await get_record(client, sender.basic, i) for i in ids]
    assert bad["status"] == "invalid" and bad["reason"] == "address_format_error"
    assert bad["billable"] is False
    assert bad["delivery_log"] == [] and bad["send_time"] is None
    for ok, rcpt in ((first, to[0]), (second, to[2])):
        assert ok["recipient"] == rcpt
        assert ok["status"] == "requesting" and ok["reason"] is None
    # Only the good ones are queued for delivery.
    queued = [
        email_id
        for domain in ("gmail.example", "qq.example")
        for email_id in await redis.zrange(
            keys.queue_ready(keys.queue_tag(sender.api_user, domain)), 0, -1
        )
    ]
    assert sorted(queued) == sorted([ids[0], ids[2]])
    listing = await client.get("/v1/emails", headers=sender.basic)
    assert {i["email_id"] for i in listing.json()["items"]} == set(ids)


async def test_one_id_per_recipient_in_order_at_the_limit(client, sender):
    to = [f"u{i}@gmail.example" for i in range(1000)]
    response = await post(client, sender.basic, good(to=to))
    assert response.status_code == 202, response.text
    ids = response.json()["email_ids"]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    for index in (0, 499, 999):
        assert (await get_record(client, sender.basic, ids[index]))["recipient"] == to[index]
