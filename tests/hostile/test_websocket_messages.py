"""Hostile messages on the console's websocket (a logged-in page, or a script with its
cookie): none ends the socket or the server; they are ignored or refused."""

from __future__ import annotations

import json

import websockets
from conftest import Sender

from queue_engine.config import EngineConfig
from web.session import COOKIE, Session, SessionCodec

HOSTILE = [
    "not json",
    "[1, 2]",
    "null",
    '"resume"',
    json.dumps({"action": "history", "queue": ["a"]}),
    json.dumps({"action": "history", "queue": {"a": 1}}),
    json.dumps({"action": "history", "queue": None}),
    json.dumps({"action": "resume", "api_user": 5, "domain": ["x"]}),
    json.dumps({"action": "resume", "HEADERS": [], "api_user": "acme-tx"}),
    json.dumps({"action": "resume", "HEADERS": {"X-CSRF-Token": ["t"]}}),
    json.dumps({"action": "nope"}),
    "{" * 10_000,
    "x" * 100_000,
]


async def test_hostile_messages_leave_the_socket_serving(
    server: tuple[str, int], sender: Sender, engine_config: EngineConfig
) -> None:
    host, port = server
    session = Session("tok", sender.account, "admin@acme.example", 2**31)
    cookie = f"{COOKIE}={SessionCodec(engine_config.secret).encode(session)}"
    async with websockets.connect(
        f"ws://{host}:{port}/ws/queues",
        origin=f"http://{host}:{port}",
        additional_headers={"cookie": cookie},
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "history"
        for message in HOSTILE:
            await ws.send(message)
        # Still answering, in order: the next good request gets its answer.
        await ws.send(json.dumps({"action": "history", "queue": "q-none"}))
        while True:
            frame = await ws.recv()
            if frame.startswith("{") and json.loads(frame).get("type") == "queue_history":
                break
        assert json.loads(frame) == {"type": "queue_history", "queue": "q-none", "points": []}
