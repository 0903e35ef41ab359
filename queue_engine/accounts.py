"""Accounts, their API_USERs, and the credentials that identify callers.

API keys are long random tokens, so a SHA-256 of the key is enough to store
and to look up by (no key can be recovered from Redis). Console passwords are
chosen by people and get scrypt. Comparisons run in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from queue_engine import keys
from queue_engine.tracking import check_base_url

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class EmailType(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class AccountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an account, narrowed to one API_USER for Basic auth."""

    account: str
    api_user: str | None = None
    email_type: EmailType | None = None


@dataclass(frozen=True, slots=True)
class NewAccount:
    account: str
    email: str
    password: str
    account_key: str


@dataclass(frozen=True, slots=True)
class NewApiUser:
    account: str
    api_user: str
    api_key: str
    type: EmailType


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


@functools.cache
def _equaliser_hash() -> str:
    """A stored hash for unknown emails: one scrypt, like a known email with a wrong
    password (hashing anew as well took twice as long, which told who has a login)."""
    return hash_password(secrets.token_urlsafe(12))


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise AccountError(
            f"{kind} name {name!r} must be 1-64 of a-z 0-9 _ . - starting with a letter or digit"
        )
    return name


async def create_account(redis: Redis, name: str, email: str) -> NewAccount:
    check_name("account", name)
    if "@" not in email or any(c.isspace() for c in email):
        raise AccountError(f"admin email {email!r} is not an email address")
    password = secrets.token_urlsafe(12)
    account_key = "mpa_" + secrets.token_urlsafe(32)
    created = await redis.hsetnx(keys.account(name), "name", name)
    if not created:
        raise AccountError(f"account {name!r} already exists")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(
            keys.account(name),
            mapping={"email": email, "key_hash": _key_hash(account_key), "created_ms": _now_ms()},
        )
        pipe.set(keys.account_key(_key_hash(account_key)), name)
        pipe.hset(
            keys.console_user(email.lower()),
            mapping={"account": name, "password": hash_password(password)},
        )
        pipe.sadd(keys.ACCOUNTS, name)
        await pipe.execute()
    return NewAccount(name, email, password, account_key)


async def create_api_user(
    redis: Redis, account: str, name: str, email_type: EmailType
) -> NewApiUser:
    check_name("API_USER", name)
    if not await redis.exists(keys.account(account)):
        raise AccountError(f"account {account!r} does not exist")
    api_key = "mpk_" + secrets.token_urlsafe(32)
    created = await redis.hsetnx(keys.api_user(name), "account", account)
    if not created:
        raise AccountError(f"API_USER {name!r} already exists (names are global)")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(
            keys.api_user(name),
            mapping={
                "type": email_type.value,
                "key_hash": _key_hash(api_key),
                "created_ms": _now_ms(),
            },
        )
        pipe.sadd(keys.account_api_users(account), name)
        await pipe.execute()
    return NewApiUser(account, name, api_key, email_type)


async def authenticate_api_user(redis: Redis, name: str, api_key: str) -> Principal | None:
    account, key_hash, email_type = await redis.hmget(
        keys.api_user(name), ["account", "key_hash", "type"]
    )
    # Hash even for an unknown user so the answer takes as long either way.
    given = _key_hash(api_key)
    if not account or not key_hash or not hmac.compare_digest(given, key_hash):
        return None
    return Principal(account, name, EmailType(email_type))


async def authenticate_account_key(redis: Redis, account_key: str) -> Principal | None:
    account = await redis.get(keys.account_key(_key_hash(account_key)))
    return Principal(account) if account else None


async def authenticate_console_user(redis: Redis, email: str, password: str) -> str | None:
    account, stored = await redis.hmget(keys.console_user(email.lower()), ["account", "password"])
    if not account or not stored:
        verify_password(password, _equaliser_hash())  # as long as a wrong password takes
        return None
    return str(account) if verify_password(password, stored) else None


async def set_tracking_base_url(redis: Redis, account: str, url: str | None) -> str | None:
    """The account's own base for tracked links and unsubscribe pages (None: the setting's)."""
    if not await redis.exists(keys.account(account)):
        raise AccountError(f"account {account!r} does not exist")
    if not url:
        await redis.hdel(keys.account(account), "tracking_base_url")
        return None
    try:
        url = check_base_url(url)
    except ValueError as exc:
        raise AccountError(f"tracking base URL {url!r} {exc}") from None
    await redis.hset(keys.account(account), "tracking_base_url", url)
    return url


async def tracking_base_url(redis: Redis, account: str) -> str | None:
    url = await redis.hget(keys.account(account), "tracking_base_url")
    return str(url) if url else None


async def api_users_of(redis: Redis, account: str) -> set[str]:
    return set(await redis.smembers(keys.account_api_users(account)))


def _now_ms() -> int:
    return int(time.time() * 1000)
