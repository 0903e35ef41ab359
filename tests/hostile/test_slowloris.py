"""Slow clients against a real uvicorn on 127.0.0.1, wired as `mailpulse web` wires it
(app/http_protocol.py for headers, web/body_limit.py for bodies): each is cut off
at its deadline, and the server answers everyone else meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from conftest import Sender
from hostile.conftest import DEADLINE

RESET = b"connection reset"
TRICKLE = 0.05
"""The slow client's pause between two bytes: its own behaviour, not a synchronisation."""


async def trickle(writer: asyncio.StreamWriter, data: bytes, closed: asyncio.Event) -> int:
    """Send a byte at a time until the server hangs up; how many bytes went."""
    for sent, byte in enumerate(data):
        if closed.is_set():
            return sent
        writer.write(bytes([byte]))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(TRICKLE)
    return len(data)


async def slow_client(
    address: tuple[str, int], head: bytes, body: bytes = b""
) -> tuple[bytes, int]:
    """Send the head (a byte at a time unless there is a body), then the body a byte at a
    time; what the server answered before closing, and the bytes it took."""
    reader, writer = await asyncio.open_connection(*address)
    closed = asyncio.Event()

    async def answer() -> bytes:
        try:
            return await reader.read()
        except ConnectionResetError:
            # The server closed with trickled bytes unread, so the kernel sent a reset,
            # which may overtake its 408: cut off all the same.
            return RESET
        finally:
            closed.set()

    reading = asyncio.create_task(answer())
    try:
        if body:
            writer.write(head)
            sent = len(head) + await trickle(writer, body, closed)
        else:
            sent = await trickle(writer, head, closed)
        return await asyncio.wait_for(reading, 5), sent
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def healthy(address: tuple[str, int]) -> float:
    """Seconds /healthz took to answer 200."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    return time.monotonic() - started


ENDLESS_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000


async def test_trickled_headers_are_cut_off_at_the_deadline(server) -> None:
    started = time.monotonic()
    answer, sent = await slow_client(server, ENDLESS_HEAD)
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == RESET
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2
    assert sent < len(ENDLESS_HEAD)


async def test_a_silent_connection_is_closed_at_the_deadline(server) -> None:
    reader, writer = await asyncio.open_connection(*server)
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2


async def test_a_trickled_body_is_408_at_the_deadline(server, sender: Sender) -> None:
    auth = sender.basic["authorization"].encode()
    head = (
        b"POST /v1/mail/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + auth + b"\r\nContent-Length: 10000\r\n\r\n"
    )
    answer, sent = await slow_client(server, head, b" " * 10_000)
    assert sent < len(head) + 10_000
    if answer != RESET:
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b'"code":"request_timeout"' in answer


async def test_oversized_headers_are_431(server) -> None:
    reader, writer = await asyncio.open_connection(*server)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # unread header bytes: the kernel may reset instead
        answer = RESET
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == RESET


async def test_normal_requests_are_served_while_slow_clients_hold_connections(server) -> None:
    slow = [asyncio.create_task(slow_client(server, ENDLESS_HEAD)) for _ in range(50)]
    # Every slow client is connected and trickling; the others get answers at once.
    times = [await healthy(server) for _ in range(5)]
    assert max(times) < DEADLINE
    answers = await asyncio.gather(*slow)
    assert all(answer.startswith(b"HTTP/1.1 408 ") or answer == RESET for answer, _ in answers)
    # Keep-alive requests of a well-behaved client are not cut by the header deadline.
    async with httpx.AsyncClient(base_url=f"http://{server[0]}:{server[1]}") as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
