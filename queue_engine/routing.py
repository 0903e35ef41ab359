"""Where mail for a recipient domain goes: static routes first, then DNS (RFC 5321 §5.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import math
import random
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import idna

__all__ = [
    "Destination",
    "NoMailHost",
    "NoSuchDomain",
    "NullMX",
    "Router",
    "RoutesError",
    "RoutingError",
    "TemporaryDNSFailure",
    "load_routes",
    "normalize_domain",
]

WILDCARD = "*"
_MAX_CACHE_ENTRIES = 10_000
# Underscores are not valid in DNS hostnames but are common in container service names.
_ASCII_HOST = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")


@dataclass(frozen=True, slots=True)
class Destination:
    host: str  # IP address (from DNS) or the configured host of a static route
    port: int
    mx: str  # the name the delivery log shows, since an IP alone says little


class RoutesError(ValueError):
    """A routes file is unusable; raised at startup so a typo never silently misroutes mail."""


class RoutingError(Exception):
    """Why a domain has no destination; `permanent` decides between bouncing and retrying."""

    permanent: bool = True

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class NullMX(RoutingError):
    """RFC 7505: the domain explicitly declares that it accepts no mail."""


class NoSuchDomain(RoutingError):
    """NXDOMAIN (or an unencodable name): retrying cannot help."""


class NoMailHost(RoutingError):
    """Neither MX nor an implicit-MX address exists."""


class TemporaryDNSFailure(RoutingError):
    """SERVFAIL, timeouts, unreachable or unresolvable MX hosts: worth retrying later."""

    permanent = False


def normalize_domain(domain: str) -> str:
    """Canonical A-label form, so routes, cache and queues agree on one key per domain.

    Raises `ValueError` (an `idna.IDNAError`) for names that cannot be a domain.
    """
    name = domain.strip().lower()
    name = name.removesuffix(".")
    return idna.encode(name, uts46=True).decode("ascii")


def _parse_host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        return str(ipaddress.IPv6Address(host[1:-1]))  # ValueError names the address
    if re.fullmatch(r"[0-9.]+", host):
        return str(ipaddress.IPv4Address(host))
    if ":" in host:
        raise ValueError("IPv6 addresses must be written as [address]:port")
    lowered = host.lower()
    if lowered.isascii():
        if not _ASCII_HOST.fullmatch(lowered) or len(lowered) > 253:
            raise ValueError(f"invalid hostname {host!r}")
        return lowered
    return normalize_domain(host)


def _parse_destination(value: object) -> Destination:
    if not isinstance(value, str):
        raise ValueError(f'expected a "host:port" string, got {type(value).__name__}')
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f'expected "host:port", got {value!r}')
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be 1..65535")
    parsed = _parse_host(host)
    return Destination(host=parsed, port=int(port_text), mx=parsed)


def load_routes(path: Path) -> dict[str, Destination]:
    """Static routes (smart hosts, test sinks) keyed by normalized domain or "*"."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise RoutesError(f"{path}: cannot read routes file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"{path}: invalid TOML: {exc}") from exc
    table = data.get("routes", {})
    if not isinstance(table, dict):
        raise RoutesError(f"{path}: [routes] must be a table, got {type(table).__name__}")
    routes: dict[str, Destination] = {}
    for key, value in table.items():
        where = f'{path}: [routes] "{key}"'
        try:
            domain = WILDCARD if key.strip() == WILDCARD else normalize_domain(key)
        except ValueError as exc:
            raise RoutesError(f"{where}: invalid domain: {exc}") from exc
        if domain in routes:
            raise RoutesError(f"{where}: duplicate route for {domain!r}")
        try:
            routes[domain] = _parse_destination(value)
        except ValueError as exc:
            raise RoutesError(f"{where}: {exc}") from exc
    return routes


# One MX host with its preference and addresses; kept unflattened so that hosts of equal
# preference can be reshuffled on every cache hit, spreading load as RFC 5321 intends.
_MXHost = tuple[int, list[Destination]]


class Router:
    """Resolves a recipient domain to an ordered list of destinations to try."""

    def __init__(
        self,
        routes: Mapping[str, Destination],
        *,
        dns_server: tuple[str, int] | None = None,
        smtp_port: int = 25,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        dns_timeout: float = 5.0,
    ) -> None:
        self._routes = dict(routes)
        self._smtp_port = smtp_port
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, list[_MXHost] | RoutingError]] = {}
        resolver = dns.asyncresolver.Resolver(configure=dns_server is None)
        if dns_server is not None:
            resolver.port = dns_server[1]
            resolver.nameservers = [dns_server[0]]
        # Bounded per lookup: a stuck resolver must not stall a domain's queue.
        resolver.timeout = min(2.0, dns_timeout)
        resolver.lifetime = dns_timeout
        self._resolver = resolver

    async def resolve(self, domain: str) -> list[Destination]:
        """Destinations in the order to try; raises `RoutingError` when there is none."""
        try:
            name = normalize_domain(domain)
        except ValueError as exc:
            raise NoSuchDomain(f"invalid domain name {domain!r}: {exc}") from exc
        route = self._routes.get(name) or self._routes.get(WILDCARD)
        if route is not None:
            return [route]
        now = self._clock()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            result = cached[1]
        else:
            try:
                hosts, ttl = await self._lookup(name)
                result = hosts
            except RoutingError as exc:
                if not exc.permanent:
                    raise
                result, ttl = exc, math.inf
            self._store(name, now + min(self._cache_seconds, ttl), result)
        if isinstance(result, RoutingError):
            raise type(result)(result.reply)  # fresh instance: no shared traceback state
        return _order(result)

    async def mx_hosts(self, domain: str) -> list[str]:
        """A domain's MX names, for rules that depend on the provider behind it (the bounce
        law of Tencent mail); [] when DNS cannot say."""
        try:
            return [d.mx for d in await self.resolve(domain)]
        except RoutingError:
            return []

    def _store(self, name: str, expires: float, result: list[_MXHost] | RoutingError) -> None:
        if len(self._cache) >= _MAX_CACHE_ENTRIES:
            now = self._clock()
            for key in [k for k, (exp, _) in self._cache.items() if exp <= now]:
                del self._cache[key]
            while len(self._cache) >= _MAX_CACHE_ENTRIES:
                del self._cache[next(iter(self._cache))]
        self._cache[name] = (expires, result)

    async def _lookup(self, name: str) -> tuple[list[_MXHost], float]:
        try:
            answer = await self._resolver.resolve(name + ".", "MX")
        except dns.resolver.NXDOMAIN as exc:
            raise NoSuchDomain(f"domain {name} does not exist (NXDOMAIN)") from exc
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(name)
        except dns.exception.DNSException as exc:
            raise TemporaryDNSFailure(f"MX lookup for {name} failed: {exc}") from exc
        records = sorted(answer, key=lambda r: int(r.preference))
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise NullMX("domain accepts no mail (null MX)")
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else math.inf
        exchanges = [
            (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
            for r in records
            if r.exchange != dns.name.root
        ]
        lookups = await asyncio.gather(*(self._addresses(host) for _, host in exchanges))
        hosts: list[_MXHost] = []
        for (preference, host), (addresses, addr_ttl, _error) in zip(
            exchanges, lookups, strict=True
        ):
            if addresses:
                dests = [Destination(a, self._smtp_port, host) for a in addresses]
                hosts.append((preference, dests))
                ttl = min(ttl, addr_ttl)
        if not hosts:
            raise TemporaryDNSFailure(
                f"none of the MX hosts of {name} resolved: {', '.join(h for _, h in exchanges)}"
            )
        return hosts, ttl

    async def _implicit_mx(self, name: str) -> tuple[list[_MXHost], float]:
        addresses, ttl, error = await self._addresses(name)
        if addresses:
            return [(0, [Destination(a, self._smtp_port, name) for a in addresses])], ttl
        if error is not None:
            raise TemporaryDNSFailure(f"address lookup for {name} failed: {error}") from error
        raise NoMailHost(f"domain {name} has no MX and no A/AAAA records")

    async def _addresses(self, host: str) -> tuple[list[str], float, Exception | None]:
        """IPv4 first (still the more reliable path for SMTP), then IPv6.

        The error is the last temporary failure, so callers can tell "no address" from
        "could not find out".
        """
        answers = await asyncio.gather(
            self._resolver.resolve(host + ".", "A"),
            self._resolver.resolve(host + ".", "AAAA"),
            return_exceptions=True,
        )
        addresses: list[str] = []
        ttl, error = math.inf, None
        for answer in answers:
            if isinstance(answer, dns.resolver.Answer):
                addresses.extend(str(r.address) for r in answer)
                if answer.rrset is not None:
                    ttl = min(ttl, float(answer.rrset.ttl))
            elif isinstance(answer, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer):
                continue
            elif isinstance(answer, dns.exception.DNSException):
                error = answer
            else:
                raise answer
        return addresses, ttl, error


def _order(hosts: list[_MXHost]) -> list[Destination]:
    ordered: list[Destination] = []
    seen: set[tuple[str, int]] = set()
    for _, group in itertools.groupby(hosts, key=lambda h: h[0]):
        same_preference = list(group)
        random.shuffle(same_preference)
        for _, dests in same_preference:
            for dest in dests:
                if (dest.host, dest.port) not in seen:
                    seen.add((dest.host, dest.port))
                    ordered.append(dest)
    return ordered
