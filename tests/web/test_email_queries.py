"""GET /v1/emails and /v1/emails/{id}: filters, period, validation, cursor paging, tenancy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from queue_engine import keys


async def send(
    client: httpx.AsyncClient, auth: dict[str, str], to: list[str], **extra: Any
) -> list[str]:
    body = {"from": "Shop <shop@acme.example>", "to": to, "subject": "Hello", "text": "Hi", **extra}
    response = await client.post("/v1/mail/send", json=body, headers=auth)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["email_ids"]
    assert len(ids) == len(to)
    return ids


async def listing(client: httpx.AsyncClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/emails", params=params, headers=auth)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def found(client: httpx.AsyncClient, auth: dict[str, str], **params: Any) -> set[str]:
    page = await listing(client, auth, limit=1000, **params)
    assert page["next_cursor"] is None
    ids = [item["email_id"] for item in page["items"]]
    assert len(ids) == len(set(ids))
    return set(ids)


def assert_error(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["field"] == field
    assert error["message"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- filters over a delivered mix ------------------------------------------------------------


@dataclass
class World:
    """Two API_USERs of one account, their emails delivered or failed by a real engine."""

    tx: Any  # Sender, transactional
    mk: Any  # Sender, marketing
    alice: str  # tx, tag welcome, "Alice@Gmail.example", delivered
    unknown: str  # tx, tag welcome, invalid/address_not_exist
    malformed: str  # tx, tag welcome, invalid/address_format_error
    bob: str  # tx, tag receipt, delivered
    carol: str  # mk, tag promo, delivered
    alice_mk: str  # mk, tag promo, "alice@gmail.example", delivered

    @property
    def all(self) -> set[str]:
        return {
            self.alice,
            self.unknown,
            self.malformed,
            self.bob,
            self.carol,
            self.alice_mk,
        }

    @property
    def of_tx(self) -> set[str]:
        return {self.alice, self.unknown, self.malformed, self.bob}

    @property
    def of_mk(self) -> set[str]:
        return {self.carol, self.alice_mk}

    @property
    def delivered(self) -> set[str]:
        return {self.alice, self.bob, self.carol, self.alice_mk}


@pytest.fixture
async def world(client, redis, sender, make_sender, mp, start_engine, wait_for) -> World:
    mk = await make_sender(api_user="acme-mk", email_type="marketing")
    alice, unknown, malformed = await send(
        client,
        sender.basic,
        ["Alice@Gmail.example", "unknown1@gmail.example", "not-an-address"],
        tag="welcome",
    )
    [bob] = await send(client, sender.basic, ["bob@gmail.example"], tag="receipt")
    carol, alice_mk = await send(
        client, mk.basic, ["carol@gmail.example", "alice@gmail.example"], tag="promo"
    )
    await start_engine(mp)

    async def settled() -> bool:
        # Wait on storage, not on the API under test: every outcome recorded and indexed.
        delivered = await redis.zcard(keys.index_status(sender.account, "delivered"))
        invalid = await redis.zcard(keys.index_status(sender.account, "invalid"))
        requesting = await redis.zcard(keys.index_status(sender.account, "requesting"))
        return delivered == 4 and invalid == 2 and requesting == 0

    await wait_for(settled)
    return World(sender, mk, alice, unknown, malformed, bob, carol, alice_mk)


async def test_status_filter(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, status="delivered") == world.delivered
    assert await found(client, auth, status="invalid") == {world.unknown, world.malformed}
    assert await found(client, auth, status="requesting") == set()
    assert await found(client, auth, status="soft_bounce") == set()
    for item in (await listing(client, auth, status="delivered"))["items"]:
        assert item["status"] == "delivered"


async def test_status_and_reason_filter(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, status="invalid", reason="address_not_exist") == {
        world.unknown
    }
    assert await found(client, auth, status="invalid", reason="address_format_error") == {
        world.malformed
    }
    assert await found(client, auth, status="invalid", reason="spam") == set()
    # The sub-reason names a different index than the status alone; both agree with the record.
    [item] = (await listing(client, auth, status="invalid", reason="address_not_exist"))["items"]
    assert item["email_id"] == world.unknown
    assert item["status"] == "invalid" and item["reason"] == "address_not_exist"


async def test_reason_filter_alone(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, reason="address_format_error") == {world.malformed}
    assert await found(client, auth, reason="address_not_exist") == {world.unknown}
    assert await found(client, auth, reason="spam_rejected") == set()


async def test_tag_filter(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, tag="welcome") == {
        world.alice,
        world.unknown,
        world.malformed,
    }
    assert await found(client, auth, tag="receipt") == {world.bob}
    assert await found(client, auth, tag="promo") == world.of_mk
    assert await found(client, auth, tag="Welcome") == set()  # tags are exact
    assert await found(client, auth, tag="nothing") == set()


async def test_address_filter_is_case_insensitive(client, world):
    both = {world.alice, world.alice_mk}
    for address in (
        "alice@gmail.example",
        "ALICE@GMAIL.EXAMPLE",
        "Alice@Gmail.example",
        " alice@gmail.example ",
    ):
        assert await found(client, world.tx.bearer, address=address) == both, address
    # An API_USER's Basic key sees only its own email to that address.
    assert await found(client, world.tx.basic, address="ALICE@gmail.example") == {world.alice}
    assert await found(client, world.mk.basic, address="ALICE@gmail.example") == {world.alice_mk}
    assert await found(client, world.tx.bearer, address="alice@qq.example") == set()


async def test_type_filter(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, type="marketing") == world.of_mk
    assert await found(client, auth, type="transactional") == world.of_tx
    for item in (await listing(client, auth, type="marketing"))["items"]:
        assert item["type"] == "marketing" and item["api_user"] == "acme-mk"
    assert_error(
        await client.get("/v1/emails", params={"type": "promo"}, headers=auth), 400, "type"
    )


async def test_api_user_filter_and_visibility(client, world):
    bearer, tx, mk = world.tx.bearer, world.tx.basic, world.mk.basic
    # The account key sees every API_USER and can narrow to one.
    assert await found(client, bearer) == world.all
    assert await found(client, bearer, api_user="acme-tx") == world.of_tx
    assert await found(client, bearer, api_user="acme-mk") == world.of_mk
    assert await found(client, bearer, api_user="nobody") == set()
    # Basic sees only its own, and asking for a sibling gives an empty list, not its emails.
    assert await found(client, tx) == world.of_tx
    assert await found(client, tx, api_user="acme-tx") == world.of_tx
    assert await found(client, tx, api_user="acme-mk") == set()
    assert await found(client, mk) == world.of_mk
    assert await found(client, mk, api_user="acme-tx") == set()


async def test_filters_combine(client, world):
    auth = world.tx.bearer
    assert await found(client, auth, tag="welcome", status="delivered") == {world.alice}
    assert await found(
        client, auth, address="alice@gmail.example", type="marketing", status="delivered"
    ) == {world.alice_mk}
    assert await found(client, auth, tag="promo", api_user="acme-tx") == set()


# --- period ----------------------------------------------------------------------------------


async def test_period_includes_now_and_excludes_the_past(client, sender):
    ids = set(await send(client, sender.basic, ["a@gmail.example", "b@gmail.example"]))
    now = datetime.now(UTC)
    around = {"start": iso(now - timedelta(hours=1)), "end": iso(now + timedelta(hours=1))}
    assert await found(client, sender.basic, **around) == ids
    # Other offsets and the Z form name the same instants.
    tokyo = timezone(timedelta(hours=9))
    around_tokyo = {
        "start": iso((now - timedelta(hours=1)).astimezone(tokyo)),
        "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    assert await found(client, sender.basic, **around_tokyo) == ids
    past = {"start": iso(now - timedelta(days=3)), "end": iso(now - timedelta(days=2))}
    assert await found(client, sender.basic, **past) == set()
    future = {"start": iso(now + timedelta(hours=1)), "end": iso(now + timedelta(days=2))}
    assert await found(client, sender.basic, **future) == set()
    # Default period: the last 30 days up to now.
    assert await found(client, sender.basic) == ids
    assert await found(client, sender.basic, end=iso(now + timedelta(minutes=1))) == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-02-15T00:00:00Z"}, "end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T00:00:00.001Z"}, "end"),
        ({"start": "2020-01-01"}, "end"),  # end defaults to now: far more than 30 days
        ({"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2024-01-01T25:00:00Z"}, "start"),
        ({"end": "2024-13-01"}, "end"),
        ({"end": "01/02/2024"}, "end"),
        ({"end": "2024-01-01T00:00:00+25:00"}, "end"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"limit": "1" * 5000}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "0" * 27}, "cursor"),
        ({"cursor": "A" * 28}, "cursor"),
        ({"color": "red"}, "color"),
        ({"Status": "delivered"}, "Status"),
        ({"status": "bounced"}, "status"),
        ({"status": "DELIVERED"}, "status"),
        ({"status": "delivered", "reason": "spam"}, "reason"),
        ({"status": "requesting", "reason": "other"}, "reason"),
        ({"status": "soft_bounce", "reason": "blacklist"}, "reason"),
        ({"status": "invalid", "reason": "spam_rejected"}, "reason"),
        ({"reason": "made_up"}, "reason"),
        ({"type": "bulk"}, "type"),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, dict) else str(v),
)
async def test_bad_query_is_400_naming_the_parameter(client, sender, params, field):
    response = await client.get("/v1/emails", params=params, headers=sender.basic)
    assert_error(response, 400, field)


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T00:00:00Z"},  # exactly 30 days
        {"start": "2024-01-01", "end": "2024-01-01"},  # an instant
        {"end": "2024-01-01T00:00:00+05:30"},
        {"limit": "1"},
        {"limit": "1000"},
        {"status": "soft_bounce", "reason": "spam_rejected"},
        {"status": "invalid", "reason": "blacklist"},
        {"type": "marketing"},
    ],
)
async def test_good_query_edges_are_accepted(client, sender, params):
    page = await listing(client, sender.basic, **params)
    assert page == {"items": [], "next_cursor": None}


async def test_query_needs_credentials(client, sender):
    await send(client, sender.basic, ["a@gmail.example"])
    response = await client.get("/v1/emails")
    assert_error(response, 401, None)
    assert "www-authenticate" in response.headers
    response = await client.get("/v1/emails", headers={"authorization": "Bearer nope"})
    assert_error(response, 401, None)


# --- cursor pagination -----------------------------------------------------------------------


async def pages(
    client: httpx.AsyncClient, auth: dict[str, str], limit: int, **params: Any
) -> list[list[str]]:
    result: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        page = await listing(client, auth, **query)
        result.append([item["email_id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return result
        assert cursor == result[-1][-1]
        assert len(result) < 100, "paging does not end"


async def test_cursor_pages_cover_everything_once_newest_first(client, sender):
    first = await send(client, sender.basic, [f"u{i}@gmail.example" for i in range(120)])
    second = await send(client, sender.basic, [f"v{i}@qq.example" for i in range(130)])
    ids = first + second
    got = await pages(client, sender.basic, 100)
    assert [len(p) for p in got] == [100, 100, 50]
    flat = [i for p in got for i in p]
    assert len(flat) == len(set(flat)) == 250
    assert set(flat) == set(ids)
    assert flat == sorted(flat, reverse=True)
    # Newest first: ids begin with the request time, so a later call's emails come first.
    first_ms, second_ms = first[0][:12], second[0][:12]
    assert second_ms >= first_ms
    if second_ms > first_ms:
        assert set(flat[:130]) == set(second)
    # The same pages through the account key and the API_USER filter.
    assert await pages(client, sender.bearer, 100) == got
    assert await pages(client, sender.bearer, 100, api_user=sender.api_user) == got


async def test_exact_multiple_of_the_limit_has_no_empty_last_page(client, sender):
    ids = await send(client, sender.basic, [f"u{i}@gmail.example" for i in range(200)])
    got = await pages(client, sender.basic, 100)
    assert [len(p) for p in got] == [100, 100]
    assert {i for p in got for i in p} == set(ids)


async def test_cursor_paging_within_a_filter(client, sender):
    tagged = await send(client, sender.basic, [f"t{i}@gmail.example" for i in range(130)], tag="a")
    await send(client, sender.basic, [f"n{i}@gmail.example" for i in range(70)], tag="b")
    more = await send(client, sender.basic, [f"m{i}@gmail.example" for i in range(15)], tag="a")
    got = await pages(client, sender.basic, 50, tag="a")
    assert [len(p) for p in got] == [50, 50, 45]
    flat = [i for p in got for i in p]
    assert len(flat) == len(set(flat))
    assert set(flat) == set(tagged + more)
    assert flat == sorted(flat, reverse=True)


async def test_a_foreign_id_as_cursor_is_only_a_position(client, sender, make_sender):
    # A cursor bounds the range; another account's id in it reveals nothing of theirs.
    other = await make_sender(account="other", api_user="other-tx")
    older = await send(client, sender.basic, [f"a{i}@gmail.example" for i in range(3)])
    [theirs] = await send(client, other.basic, ["b@gmail.example"])
    newer = await send(client, sender.basic, [f"c{i}@gmail.example" for i in range(3)])
    expected = {i for i in older + newer if i < theirs}
    assert set(older) <= expected or older[0][:12] == theirs[:12]
    assert await found(client, sender.basic, cursor=theirs) == expected
    assert await found(client, sender.bearer, cursor=theirs) == expected
    assert await found(client, sender.basic, cursor="f" * 28) == set(older + newer)
    assert await found(client, other.basic, cursor=theirs) == set()


# --- tenancy ---------------------------------------------------------------------------------


async def test_other_account_gets_404_for_my_email_and_an_empty_list(client, sender, make_sender):
    other = await make_sender(account="other", api_user="other-tx")
    [email_id] = await send(client, sender.basic, ["secret@gmail.example"])
    for auth in (sender.basic, sender.bearer):
        response = await client.get(f"/v1/emails/{email_id}", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["email_id"] == email_id
    for auth in (other.basic, other.bearer):
        response = await client.get(f"/v1/emails/{email_id}", headers=auth)
        assert_error(response, 404, "email_id")
        assert "secret" not in response.text
        assert await found(client, auth) == set()
        assert await found(client, auth, address="secret@gmail.example") == set()
    # Asking for the other account's API_USER by name does not cross the account either.
    assert await found(client, other.bearer, api_user=sender.api_user) == set()


async def test_a_sibling_api_user_gets_404_for_my_email(client, sender, make_sender):
    sibling = await make_sender(api_user="acme-mk", email_type="marketing")
    [email_id] = await send(client, sender.basic, ["a@gmail.example"])
    response = await client.get(f"/v1/emails/{email_id}", headers=sibling.basic)
    assert_error(response, 404, "email_id")
    # The account key of both sees it.
    response = await client.get(f"/v1/emails/{email_id}", headers=sibling.bearer)
    assert response.status_code == 200 and response.json()["api_user"] == sender.api_user


@pytest.mark.parametrize(
    "email_id",
    [
        "0" * 28,
        "f" * 28,
        "not-an-id",
        "0" * 29,
        "%2e%2e",
        "x" * 1000,
    ],
)
async def test_unknown_or_malformed_id_is_404(client, sender, email_id):
    await send(client, sender.basic, ["a@gmail.example"])
    response = await client.get(f"/v1/emails/{email_id}", headers=sender.basic)
    assert_404(response)


def assert_404(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"


async def test_id_is_case_sensitive(client, sender):
    [email_id] = await send(client, sender.basic, ["a@gmail.example"])
    upper = email_id.upper()
    assert upper != email_id
    response = await client.get(f"/v1/emails/{upper}", headers=sender.basic)
    assert_404(response)


async def test_single_email_needs_credentials(client, sender):
    [email_id] = await send(client, sender.basic, ["a@gmail.example"])
    response = await client.get(f"/v1/emails/{email_id}")
    assert_error(response, 401, None)
