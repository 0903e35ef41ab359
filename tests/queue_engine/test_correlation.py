"""Signed ids in return paths and headers: they round-trip, and forgeries match nothing."""

from __future__ import annotations

from email import message_from_bytes

from queue_engine.correlation import email_id_from, return_path, signature, token
from queue_engine.records import new_email_id

SECRET = b"s3cret"


def test_a_signed_id_comes_back_from_return_path_and_header() -> None:
    email_id = new_email_id(1_800_000_000_000)
    address = return_path(token(SECRET, email_id), "bounces.example")
    assert address.startswith("bounce+") and address.endswith("@bounces.example")
    assert email_id_from(SECRET, address) == email_id
    assert email_id_from(SECRET, f"X-Mailpulse-Id: {token(SECRET, email_id)}") == email_id
    assert email_id_from(SECRET, address.upper()) == email_id  # MTAs may change case


def test_forged_or_foreign_tokens_match_nothing() -> None:
    email_id = new_email_id(1_800_000_000_000)
    other = new_email_id(1_800_000_000_001)
    assert email_id_from(b"another key", return_path(token(SECRET, email_id), "b.example")) is None
    forged = f"bounce+{other}.{signature(SECRET, email_id)}@b.example"
    assert email_id_from(SECRET, forged) is None
    assert email_id_from(SECRET, f"bounce+{email_id}@b.example") is None
    assert email_id_from(SECRET, None) is None


async def test_outgoing_mail_carries_the_signed_return_path_and_header(
    client, sender, mp, start_engine, wait_for, engine_config
):
    await start_engine(mp, return_path_domain="bounces.mailpulse.test")
    body = {"from": "a@acme.example", "to": ["x@gmail.example"], "text": "t"}
    [email_id] = (await client.post("/v1/mail/send", json=body, headers=sender.basic)).json()[
        "email_ids"
    ]

    async def received() -> bool:
        return mp.state.accepted == 1

    await wait_for(received)
    [message] = mp.state.received
    assert email_id_from(engine_config.secret, message.mail_from) == email_id
    assert message.mail_from.endswith("@bounces.mailpulse.test")
    header = message_from_bytes(message.data)["X-Mailpulse-Id"]
    assert email_id_from(engine_config.secret, header) == email_id
