"""The suppression API over the ASGI app and a real Redis: per-item answers, CSV upload,
scoping between API_USERs and accounts, the global bounce list's lookup-only reads."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import Sender
from fakedns import FakeDNS
from redis.asyncio import Redis

from queue_engine.routing import Router
from queue_engine.suppression import Origin, Suppressions, is_tencent


async def entries(client: httpx.AsyncClient, who: dict[str, str], kind: str, **params: Any) -> list:
    response = await client.get(f"/v1/suppressions/{kind}", params=params, headers=who)
    assert response.status_code == 200, response.text
    items: list = response.json()["items"]
    return items


async def test_add_answers_per_item_and_keeps_the_good_ones(client, sender: Sender) -> None:
    body = {
        "items": [
            {
                "address": "Good@Example.COM",
                "reason": "asked",
                "expires_at": "2099-01-01T00:00:00Z",
            },
            {"address": "not an address"},
            {"domain": "blocked.example"},
            {"address": "x@y.example", "expires_at": "2001-01-01"},
            {"address": "a@b.example", "domain": "b.example"},
            {"address": "z@y.example", "api_user": "someone-else"},
            {"address": "a@b.example", "colour": "red"},
        ]
    }
    response = await client.post("/v1/suppressions/blocks", json=body, headers=sender.bearer)
    assert response.status_code == 207
    answer = response.json()
    assert (answer["added"], answer["updated"], answer["errors"]) == (2, 0, 5)
    assert [
        (r["index"], r["status"], r.get("error", {}).get("field")) for r in answer["results"]
    ] == [
        (0, "added", None),
        (1, "error", "items[1].address"),
        (2, "added", None),
        (3, "error", "items[3].expires_at"),
        (4, "error", "items[4].address"),
        (5, "error", "items[5].api_user"),
        (6, "error", "items[6].colour"),
    ]
    listed = {
        e.get("address") or "@" + e["domain"]: e
        for e in await entries(client, sender.bearer, "blocks")
    }
    assert set(listed) == {"good@example.com", "@blocked.example"}
    assert listed["good@example.com"]["expires_at"] == "2099-01-01T00:00:00.000Z"
    assert listed["good@example.com"]["reason"] == "asked"
    assert listed["good@example.com"]["origin"] == "api"
    assert listed["@blocked.example"]["expires_at"] is None
    # Adding again updates; every item bad is a 400 that changes nothing.
    again = await client.post(
        "/v1/suppressions/blocks",
        json={"items": [{"address": "good@example.com"}]},
        headers=sender.bearer,
    )
    assert again.status_code == 200 and again.json()["updated"] == 1
    bad = await client.post(
        "/v1/suppressions/blocks", json={"items": [{"address": ""}]}, headers=sender.bearer
    )
    assert bad.status_code == 400


async def test_malformed_bodies_name_the_field(client, sender: Sender) -> None:
    for body, field in (
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": [{}] * 1001}, "items"),
        ([], "items"),
    ):
        response = await client.post(
            "/v1/suppressions/unsubscribes", json=body, headers=sender.basic
        )
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field
    response = await client.get(
        "/v1/suppressions/blocks", params={"limit": "0"}, headers=sender.basic
    )
    assert response.json()["error"]["field"] == "limit"
    response = await client.get(
        "/v1/suppressions/blocks", params={"cursor": "zz"}, headers=sender.basic
    )
    assert response.json()["error"]["field"] == "cursor"
    response = await client.get(
        "/v1/suppressions/blocks", params={"start": "soon"}, headers=sender.basic
    )
    assert response.json()["error"]["field"] == "start"
    response = await client.get("/v1/suppressions/check", headers=sender.basic)
    assert response.json()["error"]["field"] == "address"
    assert (await client.get("/v1/suppressions/blocks")).status_code == 401


async def test_bounce_list_is_global_and_read_one_address_at_a_time(
    client, sender: Sender, redis: Redis
) -> None:
    await Suppressions(redis).add_bounces(
        [("gone@gmail.example", False, "550 5.1.1 no")], Origin.MP
    )
    response = await client.get("/v1/suppressions/bounces", headers=sender.bearer)
    assert response.status_code == 400 and response.json()["error"]["field"] == "address"
    [entry] = await entries(client, sender.bearer, "bounces", address="GONE@gmail.example")
    assert (entry["address"], entry["count"], entry["list"]) == ("gone@gmail.example", 1, "bounces")
    assert await entries(client, sender.bearer, "bounces", address="other@gmail.example") == []
    # Nobody deletes from or adds to the shared list; an exemption is the way (SPEC B4).
    for method in ("POST", "DELETE"):
        response = await client.request(
            method,
            "/v1/suppressions/bounces",
            json={"items": [{"address": "gone@gmail.example"}]},
            headers=sender.bearer,
        )
        assert response.status_code == 405


async def test_api_users_and_accounts_see_only_their_own(client, make_sender, redis: Redis) -> None:
    one = await make_sender("acme", "acme-a")
    two = await make_sender("acme", "acme-b")
    stranger = await make_sender("globex", "globex-a")
    await client.post(
        "/v1/suppressions/blocks", json={"items": [{"address": "a@x.example"}]}, headers=one.basic
    )
    await client.post(
        "/v1/suppressions/blocks",
        json={"items": [{"address": "wide@x.example"}]},
        headers=one.bearer,
    )
    assert {e["address"] for e in await entries(client, one.basic, "blocks")} == {
        "a@x.example",
        "wide@x.example",
    }
    assert {e["address"] for e in await entries(client, two.basic, "blocks")} == {"wide@x.example"}
    assert {(e["address"], e["api_user"]) for e in await entries(client, one.bearer, "blocks")} == {
        ("a@x.example", "acme-a"),
        ("wide@x.example", None),
    }
    assert await entries(client, stranger.bearer, "blocks") == []
    check = await client.get(
        "/v1/suppressions/check", params={"address": "a@x.example"}, headers=stranger.basic
    )
    assert check.json() == {
        "address": "a@x.example",
        "blocked": False,
        "exempt": False,
        "entries": [],
    }
    check = await client.get(
        "/v1/suppressions/check", params={"address": "a@x.example"}, headers=two.basic
    )
    assert check.json()["blocked"] is False
    # An API_USER cannot reach into another's entries, nor delete the account-wide one as its own.
    response = await client.get(
        "/v1/suppressions/blocks", params={"api_user": "acme-a"}, headers=two.basic
    )
    assert response.status_code == 404
    gone = await client.request(
        "DELETE",
        "/v1/suppressions/blocks",
        json={"items": [{"address": "a@x.example"}]},
        headers=two.basic,
    )
    assert gone.json()["results"] == [{"index": 0, "status": "not_found"}]
    assert len(await entries(client, one.basic, "blocks")) == 2
    gone = await client.request(
        "DELETE",
        "/v1/suppressions/blocks",
        json={"items": [{"address": "a@x.example"}]},
        headers=one.basic,
    )
    assert gone.json()["removed"] == 1


async def test_deleting_a_spam_report_warns(client, sender: Sender, redis: Redis) -> None:
    await Suppressions(redis).complain(
        sender.account, sender.api_user, "angry@x.example", "abuse", Origin.ARF
    )
    [entry] = await entries(client, sender.basic, "complaints", address="angry@x.example")
    assert entry["reason"] == "abuse" and entry["api_user"] == sender.api_user
    response = await client.request(
        "DELETE",
        "/v1/suppressions/complaints",
        json={"items": [{"address": "angry@x.example"}]},
        headers=sender.bearer,
    )
    assert response.status_code == 200
    assert response.json()["removed"] == 1
    assert "repeat" in response.json()["warning"] or "repeated" in response.json()["warning"]
    assert await entries(client, sender.basic, "complaints") == []


async def test_block_list_upload_reports_bad_lines_by_number(client, sender: Sender) -> None:
    csv = (
        "address,api_user,expires_at,reason\n"
        "one@x.example\n"
        "@whole.example,,2099-01-01,lawyers\n"
        "broken@\n"
        "\n"
        "two@x.example,nobody\n"
        "three@x.example,,next tuesday\n"
        "b.example\n"
        "a,b,c,d,e\n"
    )
    response = await client.post(
        "/v1/suppressions/blocks/upload",
        content=csv.encode(),
        headers={**sender.bearer, "content-type": "text/csv"},
    )
    assert response.status_code == 207, response.text
    answer = response.json()
    assert answer["added"] == 3
    assert [
        (r["line"], r["status"], r.get("error", {}).get("field")) for r in answer["results"]
    ] == [
        (2, "added", None),
        (3, "added", None),
        (4, "error", "address"),
        (6, "error", "api_user"),
        (7, "error", "expires_at"),
        (8, "added", None),
        (9, "error", "line"),
    ]
    listed = {
        e.get("address") or "@" + e["domain"]
        for e in await entries(client, sender.bearer, "blocks")
    }
    assert listed == {"one@x.example", "@whole.example", "@b.example"}
    # The same as a multipart file, as browsers send it.
    files = {"file": ("list.csv", b"four@x.example\n", "text/csv")}
    response = await client.post(
        "/v1/suppressions/blocks/upload", files=files, headers=sender.bearer
    )
    assert response.status_code == 200 and response.json()["added"] == 1


async def test_upload_limits(client, sender: Sender) -> None:
    too_many = "".join(f"u{i}@x.example\n" for i in range(100_001)).encode()
    response = await client.post(
        "/v1/suppressions/blocks/upload",
        content=too_many,
        headers={**sender.bearer, "content-type": "text/csv"},
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "file"
    response = await client.post(
        "/v1/suppressions/blocks/upload",
        content=b"\xff\xfe",
        headers={**sender.bearer, "content-type": "text/csv"},
    )
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]["message"]
    response = await client.post(
        "/v1/suppressions/blocks/upload",
        content=b"a@b.example",
        headers={**sender.bearer, "content-type": "image/png"},
    )
    assert response.status_code == 415


async def test_a_hundred_thousand_line_upload_lands(client, sender: Sender) -> None:
    lines = "".join(f"user{i}@bulk.example\n" for i in range(100_000)).encode()
    response = await client.post(
        "/v1/suppressions/blocks/upload",
        content=lines,
        headers={**sender.bearer, "content-type": "text/csv"},
    )
    assert response.status_code == 200
    assert response.json()["added"] == 100_000
    check = await client.get(
        "/v1/suppressions/check", params={"address": "user99999@bulk.example"}, headers=sender.basic
    )
    assert check.json()["blocked"] is True


async def test_listing_walks_every_entry_with_a_cursor(client, sender: Sender) -> None:
    items = [{"address": f"p{i}@page.example"} for i in range(120)]
    await client.post("/v1/suppressions/unsubscribes", json={"items": items}, headers=sender.basic)
    seen, cursor = [], None
    while True:
        params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            "/v1/suppressions/unsubscribes", params=params, headers=sender.basic
        )
        page = response.json()
        seen += [e["address"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(i["address"] for i in items)


async def test_tencent_mail_is_known_by_domain_or_by_mx(dns_server: FakeDNS) -> None:
    dns_server.add("corp.example", "MX", "5 mxbiz1.qq.com.")
    dns_server.add("mxbiz1.qq.com", "A", "192.0.2.1")
    dns_server.add("plain.example", "MX", "5 mx.plain.example.")
    dns_server.add("mx.plain.example", "A", "192.0.2.2")
    router = Router({}, dns_server=("127.0.0.1", dns_server.port))
    assert await is_tencent("qq.com", router.mx_hosts)
    assert await is_tencent("foxmail.com", router.mx_hosts)
    assert await is_tencent("corp.example", router.mx_hosts)
    assert not await is_tencent("plain.example", router.mx_hosts)
    assert not await is_tencent("nxdomain.example", router.mx_hosts)
