"""Hostile-input tests: exports enabled (POST /v1/exports reaches its handler), and the
web app under a real uvicorn wired as `mailpulse web` wires it, with short deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from redis.asyncio import Redis

from app.http_protocol import GuardedHttpProtocol
from app.runtime import connect
from queue_engine.config import EngineConfig
from web.api import ApiConfig
from web.app import create_web_app

DEADLINE = 0.5
"""Header and body deadlines of the `server` fixture (10 s and 60 s in production)."""


@pytest.fixture
def engine_config(engine_config: EngineConfig, tmp_path: Path) -> EngineConfig:
    return replace(engine_config, exports_dir=tmp_path / "exports")


class FastGuard(GuardedHttpProtocol):
    header_timeout_seconds = DEADLINE


@pytest.fixture
async def server(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[tuple[str, int]]:
    app = create_web_app(
        ApiConfig(engine=engine_config, body_timeout_seconds=DEADLINE), connect(redis_url)
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="on", http=FastGuard
    )
    uv = uvicorn.Server(config)
    uv.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield "127.0.0.1", uv.servers[0].sockets[0].getsockname()[1]
    uv.should_exit = True
    await task
