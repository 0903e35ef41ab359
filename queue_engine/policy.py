"""The delivery policy: per-IP and per-domain limits, read from a TOML file.

Limits are data an operator tunes per provider, so they live in a file
(`default_policy.toml` documents every key). A mistake in it stops start-up
with the file, line and key named: a typo must never silently lift a limit.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_POLICY_FILE = Path(__file__).parent / "default_policy.toml"


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    max_connections: int = 10
    new_connections_per_minute: int = 60
    messages_per_connection: int = 100
    quota_per_hour: int = 0
    quota_per_day: int = 0
    throttle_pause_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class Policy:
    sources: tuple[str, ...] = ()
    ip_quota_per_hour: int = 0
    ip_quota_per_day: int = 0
    default: DomainPolicy = field(default_factory=DomainPolicy)
    domains: dict[str, DomainPolicy] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)

    def for_domain(self, domain: str) -> DomainPolicy:
        return self.domains.get(domain, self.default)

    def provider(self, domain: str) -> str:
        """The name limits are counted under: aliases share their provider's counters."""
        return self.providers.get(domain, domain)


_DOMAIN_KEYS = {f.name: f.type for f in fields(DomainPolicy)}
_AT_LEAST_ONE = {"max_connections", "new_connections_per_minute", "messages_per_connection"}


def _line_of(text: str, table: str, key: str | None) -> int:
    """Where a key of a table is written, for error messages (1 if not found)."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return 1
    if key is None:
        return start + 1
    pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if pattern.match(lines[i]):
            return i + 1
    return start + 1


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from None

    def fail(table: str, key: str | None, message: str) -> PolicyError:
        where = f"{table}.{key}" if key else table
        return PolicyError(f"{path}:{_line_of(text, table, key)}: [{where}] {message}")

    unknown = set(data) - {"egress", "default", "domain"}
    if unknown:
        raise fail(sorted(unknown)[0], None, "is not a policy table (egress, default, domain)")
    egress = _table(data, "egress", fail)
    for key in set(egress) - {"sources", "quota_per_hour", "quota_per_day"}:
        raise fail("egress", key, "is not a key of [egress]")
    sources = egress.get("sources", [])
    if not isinstance(sources, list):
        raise fail("egress", "sources", "must be a list of IP addresses")
    for source in sources:
        try:
            ipaddress.ip_address(source)
        except (ValueError, TypeError):
            raise fail("egress", "sources", f"{source!r} is not an IP address") from None
    default = _domain_policy(_table(data, "default", fail), DomainPolicy(), "default", fail)
    domains: dict[str, DomainPolicy] = {}
    provider_of: dict[str, str] = {}
    raw_domains = data.get("domain", {})
    if not isinstance(raw_domains, dict):
        raise fail("domain", None, 'must be tables like [domain."gmail.com"]')
    for name, raw in raw_domains.items():
        table = f'domain."{name}"'
        if not isinstance(raw, dict):
            raise fail(table, None, "must be a table")
        aliases = raw.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise fail(table, "aliases", "must be a list of domain names")
        policy = _domain_policy(
            {k: v for k, v in raw.items() if k != "aliases"}, default, table, fail
        )
        for domain in [name, *aliases]:
            domain = domain.lower()
            if domain in domains:
                raise fail(table, "aliases", f"{domain} is already configured")
            domains[domain] = policy
            provider_of[domain] = name.lower()
    return Policy(
        sources=tuple(sources),
        ip_quota_per_hour=_count(egress, "quota_per_hour", 0, "egress", fail),
        ip_quota_per_day=_count(egress, "quota_per_day", 0, "egress", fail),
        default=default,
        domains=domains,
        providers=provider_of,
    )


def _table(data: dict[str, Any], name: str, fail: Any) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise fail(name, None, "must be a table")
    return value


def _count(raw: dict[str, Any], key: str, default: int, table: str, fail: Any) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(table, key, "must be a whole number >= 0")
    return value


def _domain_policy(raw: dict[str, Any], base: DomainPolicy, table: str, fail: Any) -> DomainPolicy:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _DOMAIN_KEYS:
            raise fail(table, key, f"is not a limit ({', '.join(_DOMAIN_KEYS)})")
        if key == "throttle_pause_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail(table, key, "must be a number of seconds > 0")
            values[key] = float(value)
            continue
        count = _count(raw, key, 0, table, fail)
        if count == 0 and key in _AT_LEAST_ONE:
            raise fail(table, key, "must be at least 1")
        values[key] = count
    return replace(base, **values)
