"""`GET /metrics` for Prometheus, behind an optional bearer token and IP allow-list.

Every figure comes from Redis (prometheus/readings.py), so any web process can
be scraped and answers the same, apart from its own process metrics. Each web
process also reports its websocket clients to Redis, for that global view.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prometheus.exposition import CONTENT_TYPE, scrape
from queue_engine.stats import CLIENTS_FRESH_MS, report_clients
from web.api import ApiConfig
from web.errors import error_response
from web.requests import Networks, client_ip


class MetricsRoute:
    def __init__(self, redis: Redis, config: ApiConfig) -> None:
        self.redis = redis
        self.config = config

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.metrics, methods=["GET"], name="metrics")]

    async def metrics(self, request: Request) -> Response:
        allow = self.config.metrics_allow
        if allow and not _within(client_ip(request, self.config.trusted_proxies), allow):
            return error_response(403, "forbidden", "this address may not read metrics", None)
        token = self.config.metrics_token
        if token and not _bearer_matches(request.headers.get("authorization", ""), token):
            return error_response(
                401,
                "unauthorized",
                "metrics need the configured bearer token",
                None,
                {"WWW-Authenticate": 'Bearer realm="mailpulse metrics"'},
            )
        body = await scrape(self.redis, self.config.engine.metrics_top_domains)
        return Response(body, media_type=CONTENT_TYPE)


def _within(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, credentials = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


async def report_websocket_clients(redis: Redis, connected: Callable[[], int]) -> None:
    """Tell Redis, until cancelled, how many console clients this process holds."""
    process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    while True:
        # A missed report is made good by the next; the scrape sees Redis down anyway.
        with contextlib.suppress(RedisError, OSError):
            await report_clients(redis, process, connected(), int(time.time() * 1000))
        await asyncio.sleep(CLIENTS_FRESH_MS / 3000)
