"""The send and read calls tests make through the API, asserting their status."""

from __future__ import annotations

from typing import Any

import httpx


async def send_to(client: httpx.AsyncClient, sender: Any, to: str, **body: Any) -> str:
    """POST /v1/mail/send for one recipient as the sender's API_USER; the email id."""
    response = await client.post(
        "/v1/mail/send",
        json={"from": "shop@acme.example", "to": [to], **body},
        headers=sender.basic,
    )
    assert response.status_code == 202, response.text
    [email_id] = response.json()["email_ids"]
    return str(email_id)


async def email_record(client: httpx.AsyncClient, sender: Any, email_id: str) -> dict[str, Any]:
    """GET /v1/emails/{id} as the sender's API_USER."""
    response = await client.get(f"/v1/emails/{email_id}", headers=sender.basic)
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item
