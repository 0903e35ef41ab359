"""The console served for real (uvicorn on a free 127.0.0.1 port), and Chromium to drive it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import Sender
from redis.asyncio import Redis

from app.runtime import connect
from queue_engine.accounts import EmailType, create_account, create_api_user
from queue_engine.config import EngineConfig
from web.api import ApiConfig
from web.app import create_web_app
from web.session import COOKIE, Session, SessionCodec

TICK_SECONDS = 0.5
"""The console's snapshot interval in these tests (5 s in production)."""

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FOUND = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class ConsoleUser:
    email: str
    password: str
    sender: Sender


@pytest.fixture
def console_user(redis: Redis) -> Callable[..., Awaitable[ConsoleUser]]:
    """An account with a console login and one API_USER."""

    async def make(account: str = "acme", api_user: str = "acme-tx") -> ConsoleUser:
        new = await create_account(redis, account, f"admin@{account}.example")
        au = await create_api_user(redis, account, api_user, EmailType.TRANSACTIONAL)
        sender = Sender(account, new.account_key, api_user, au.api_key)
        return ConsoleUser(new.email, new.password, sender)

    return make


class LiveServer:
    """uvicorn in this event loop; `restart()` stops it the graceful way and starts anew."""

    def __init__(self, redis_url: str, engine_config: EngineConfig) -> None:
        self.redis_url = redis_url
        self.engine_config = engine_config
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = create_web_app(
            ApiConfig(engine=self.engine_config, console_tick_seconds=TICK_SECONDS),
            connect(self.redis_url),
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._server = server
        self._task = asyncio.create_task(server.serve())
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.fixture
async def live(
    redis_url: str, redis: Redis, engine_config: EngineConfig
) -> AsyncIterator[LiveServer]:
    server = LiveServer(redis_url, engine_config)
    await server.start()
    yield server
    await server.stop()


@dataclass
class Browser:
    """Pages logged in as a console user, with every console error they log kept."""

    browser: Any
    base_url: str
    errors: list[str] = field(default_factory=list)

    async def page(self, user: ConsoleUser | None = None, width: int = 1280) -> Any:
        context = await self.browser.new_context(
            base_url=self.base_url, viewport={"width": width, "height": 900}
        )
        page = await context.new_page()

        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.errors.append(f"{page.url}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        if user is not None:
            await page.goto("/login")
            await page.fill("input[name=email]", user.email)
            await page.fill("input[name=password]", user.password)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{self.base_url}/")
        return page


@pytest.fixture
async def browser(live: LiveServer) -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        pytest.skip("needs Debian's chromium (make test installs it when run as root)")
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        wrapper = Browser(chromium, live.url)
        yield wrapper
        await chromium.close()
    assert wrapper.errors == []


def session_cookie(engine_config: EngineConfig, account: str, email: str, csrf: str = "tok") -> str:
    """A Cookie header of a logged-in console session, for websocket clients."""
    session = Session(csrf, account, email, int(time.time()) + 600)
    return f"{COOKIE}={SessionCodec(engine_config.secret).encode(session)}"


async def screenshot(page: Any, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
