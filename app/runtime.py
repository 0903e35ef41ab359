"""Building the running parts from settings: Redis, router, engine, web app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar, cast

import uvloop
from redis.asyncio import Redis

from app.embedded_redis import EmbeddedRedis
from app.redis_cluster import ClusterClient, is_cluster_url
from app.redis_packing import FAST
from app.settings import Settings
from queue_engine.engine import Engine
from queue_engine.policy import DEFAULT_POLICY_FILE, Policy, load_policy
from queue_engine.routing import Router, load_routes
from web.api import ApiConfig
from web.ratelimit import RateLimits

T = TypeVar("T")


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """REDIS_URL when set; else the data dir's embedded server, started or adopted."""
    with redis_server(settings) as (url, _):
        yield url


@contextlib.contextmanager
def redis_server(settings: Settings) -> Iterator[tuple[str, EmbeddedRedis | None]]:
    """`redis_url`, with the embedded server too (None with REDIS_URL), for its supervisor."""
    if settings.redis_url:
        yield settings.redis_url, None
        return
    embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
    try:
        yield embedded.start(), embedded
    finally:
        embedded.stop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop: the engine's SMTP and Redis I/O costs about 15% less CPU."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def connect(url: str) -> Redis:
    """A client for REDIS_URL: a cluster client for `redis+cluster://`, else the plain one.

    The cluster client is typed as `Redis` for the code below `app/`: it runs
    every command, pipeline, script and pubsub the engine and the web app use
    (see app/redis_cluster.py, and tests/cluster for the proof on a cluster).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    if is_cluster_url(url):
        return cast(Redis, ClusterClient.from_cluster_url(url, **options))
    client: Redis = Redis.from_url(url, **options)
    pool = client.connection_pool
    pool.connection_class = FAST.get(pool.connection_class, pool.connection_class)
    return client


def router(settings: Settings) -> Router:
    routes = load_routes(settings.routes_file) if settings.routes_file else {}
    return Router(routes, dns_server=settings.dns_server)


def policy(settings: Settings) -> Policy:
    return load_policy(settings.policy_file or DEFAULT_POLICY_FILE)


def engine(settings: Settings, redis: Redis) -> Engine:
    return Engine(redis, settings.engine_config(), router(settings), policy=policy(settings))


def api_config(settings: Settings) -> ApiConfig:
    return ApiConfig(
        engine=settings.engine_config(),
        trusted_proxies=settings.trusted_proxies,
        metrics_token=settings.metrics_token,
        metrics_allow=settings.metrics_allow,
        rate_limits=RateLimits(
            api_per_minute=settings.api_rate_limit,
            auth_failures_per_minute=settings.auth_failure_limit,
            login_failures_per_15_minutes=settings.login_failure_limit,
        ),
    )


def configure_logging(settings: Settings, part: str) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s {part} %(levelname)s %(name)s: %(message)s",
    )
    # Per-connection and per-request chatter of libraries drowns what matters.
    for noisy in ("mail.log", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
