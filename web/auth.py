"""API authentication: API_USER Basic credentials or an account Bearer key."""

from __future__ import annotations

import base64
import binascii

from redis.asyncio import Redis
from starlette.requests import Request

from queue_engine.accounts import Principal, authenticate_account_key, authenticate_api_user
from web.errors import ApiError
from web.ratelimit import RateLimiter
from web.requests import client_ip


async def authenticate(redis: Redis, request: Request) -> Principal:
    """The caller, rate limited (web/ratelimit.py) when the app carries a limiter."""
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    try:
        principal = await _credentials(redis, request)
    except ApiError:
        if limiter is not None:
            ip = client_ip(request, request.app.state.trusted_proxies)
            wait = await limiter.count(limiter.auth_failures, ip)
            if wait is not None:
                raise ApiError(
                    429,
                    "too many failed authentications from this address; retry later",
                    retry_after=wait,
                ) from None
        raise
    if limiter is not None:
        ip = client_ip(request, request.app.state.trusted_proxies)
        caller = principal.api_user or f"account:{principal.account}"
        wait = await limiter.admit(ip, caller)
        if wait is not None:
            raise ApiError(429, "rate limit reached; retry later", retry_after=wait)
    return principal


async def _credentials(redis: Redis, request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # ValueError: non-ASCII; UnicodeDecodeError too
            raise ApiError(401, "malformed Basic credentials") from None
        user, sep, key = decoded.partition(":")
        if sep and len(user) <= 64 and len(key) <= 256:
            principal = await authenticate_api_user(redis, user, key)
    elif scheme.lower() == "bearer" and credentials and len(credentials) <= 256:
        principal = await authenticate_account_key(redis, credentials.strip())
    if principal is None:
        raise ApiError(
            401, "authentication required: API_USER Basic credentials or account Bearer key"
        )
    return principal
