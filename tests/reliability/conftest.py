"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from crash_harness import TracingMP


@pytest.fixture
async def tracing_mp() -> AsyncIterator[TracingMP]:
    """An MP that accepts everything and traces each copy to the engine that sent it."""
    server = await TracingMP().start()
    try:
        yield server
    finally:
        await server.stop()
