"""Routing against a real (tiny, local) authoritative DNS server, so dnspython's own
parsing and error mapping are exercised rather than mocked away."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fakedns import FakeDNS

from queue_engine.routing import (
    Destination,
    NoMailHost,
    NoSuchDomain,
    NullMX,
    Router,
    RoutesError,
    RoutingError,
    TemporaryDNSFailure,
    load_routes,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_router(
    server: FakeDNS, clock: Clock | None = None, *, smtp_port: int = 25, cache_seconds: float = 300
) -> Router:
    return Router(
        {},
        dns_server=("127.0.0.1", server.port),
        smtp_port=smtp_port,
        cache_seconds=cache_seconds,
        clock=clock or Clock(),
    )


def hosts(dests: list[Destination]) -> list[str]:
    return [d.host for d in dests]


async def test_mx_preference_order_and_addresses(dns_server: FakeDNS) -> None:
    dns_server.add("example.com", "MX", "20 backup.example.com.", "10 mx1.example.com.")
    dns_server.add("mx1.example.com", "A", "192.0.2.1")
    dns_server.add("mx1.example.com", "AAAA", "2001:db8::1")
    dns_server.add("backup.example.com", "A", "192.0.2.9")
    dests = await make_router(dns_server, smtp_port=2525).resolve("Example.COM")
    assert dests == [
        Destination("192.0.2.1", 2525, "mx1.example.com"),
        Destination("2001:db8::1", 2525, "mx1.example.com"),
        Destination("192.0.2.9", 2525, "backup.example.com"),
    ]


async def test_equal_preference_is_shuffled(dns_server: FakeDNS) -> None:
    dns_server.add(
        "example.com", "MX", "10 a.example.com.", "10 b.example.com.", "20 c.example.com."
    )
    dns_server.add("a.example.com", "A", "192.0.2.1")
    dns_server.add("b.example.com", "A", "192.0.2.2")
    dns_server.add("c.example.com", "A", "192.0.2.3")
    router = make_router(dns_server)
    orders = {tuple(hosts(await router.resolve("example.com"))) for _ in range(60)}
    assert orders == {
        ("192.0.2.1", "192.0.2.2", "192.0.2.3"),
        ("192.0.2.2", "192.0.2.1", "192.0.2.3"),
    }


async def test_unresolvable_mx_host_is_skipped(dns_server: FakeDNS) -> None:
    dns_server.add("example.com", "MX", "10 gone.example.com.", "20 ok.example.com.")
    dns_server.nxdomain.add("gone.example.com")
    dns_server.add("ok.example.com", "A", "192.0.2.7")
    assert hosts(await make_router(dns_server).resolve("example.com")) == ["192.0.2.7"]


async def test_no_mx_host_resolves_is_temporary(dns_server: FakeDNS) -> None:
    dns_server.add("example.com", "MX", "10 gone.example.com.")
    dns_server.servfail.add("gone.example.com")
    with pytest.raises(TemporaryDNSFailure) as info:
        await make_router(dns_server).resolve("example.com")
    assert not info.value.permanent
    assert "gone.example.com" in info.value.reply


async def test_implicit_mx_falls_back_to_address_records(dns_server: FakeDNS) -> None:
    dns_server.add("example.org", "A", "192.0.2.5")
    dns_server.add("example.org", "AAAA", "2001:db8::5")
    assert await make_router(dns_server).resolve("example.org") == [
        Destination("192.0.2.5", 25, "example.org"),
        Destination("2001:db8::5", 25, "example.org"),
    ]


async def test_no_mx_and_no_address_is_permanent(dns_server: FakeDNS) -> None:
    dns_server.add("example.org", "TXT", '"hello"')
    with pytest.raises(NoMailHost) as info:
        await make_router(dns_server).resolve("example.org")
    assert info.value.permanent


async def test_null_mx(dns_server: FakeDNS) -> None:
    dns_server.add("nomail.example", "MX", "0 .")
    with pytest.raises(NullMX) as info:
        await make_router(dns_server).resolve("nomail.example")
    assert info.value.permanent
    assert info.value.reply == "domain accepts no mail (null MX)"
    assert isinstance(info.value, RoutingError)


async def test_nxdomain(dns_server: FakeDNS) -> None:
    dns_server.nxdomain.add("nope.example")
    with pytest.raises(NoSuchDomain) as info:
        await make_router(dns_server).resolve("nope.example")
    assert info.value.permanent
    assert "NXDOMAIN" in info.value.reply


async def test_idn_domain_is_queried_as_a_label(dns_server: FakeDNS) -> None:
    dns_server.add("xn--bcher-kva.example", "A", "192.0.2.8")
    dests = await make_router(dns_server).resolve("Bücher.example")
    assert dests == [Destination("192.0.2.8", 25, "xn--bcher-kva.example")]


async def test_servfail_is_temporary_and_not_cached(dns_server: FakeDNS) -> None:
    dns_server.servfail.add("flaky.example")
    router = make_router(dns_server)
    with pytest.raises(TemporaryDNSFailure) as info:
        await router.resolve("flaky.example")
    assert not info.value.permanent
    dns_server.servfail.clear()
    dns_server.add("flaky.example", "MX", "10 mx.flaky.example.")
    dns_server.add("mx.flaky.example", "A", "192.0.2.4")
    assert hosts(await router.resolve("flaky.example")) == ["192.0.2.4"]


async def test_unreachable_nameserver_is_temporary() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    router = Router({}, dns_server=("127.0.0.1", port), dns_timeout=0.3)
    with pytest.raises(TemporaryDNSFailure) as info:
        await router.resolve("example.com")
    assert not info.value.permanent


async def test_results_are_cached_until_cache_seconds(dns_server: FakeDNS) -> None:
    dns_server.add("example.com", "MX", "10 mx.example.com.")
    dns_server.add("mx.example.com", "A", "192.0.2.1")
    clock = Clock()
    router = make_router(dns_server, clock, cache_seconds=60)
    await router.resolve("example.com")
    sent = len(dns_server.queries)
    assert sent == 3  # MX, A, AAAA
    clock.now += 59
    assert hosts(await router.resolve("EXAMPLE.com.")) == ["192.0.2.1"]
    assert len(dns_server.queries) == sent
    clock.now += 2
    await router.resolve("example.com")
    assert len(dns_server.queries) == 2 * sent


async def test_cache_is_bounded_by_dns_ttl(dns_server: FakeDNS) -> None:
    dns_server.ttl = 10
    dns_server.add("example.com", "A", "192.0.2.1")
    clock = Clock()
    router = make_router(dns_server, clock, cache_seconds=300)
    await router.resolve("example.com")
    sent = len(dns_server.queries)
    clock.now += 9
    await router.resolve("example.com")
    assert len(dns_server.queries) == sent
    clock.now += 2
    await router.resolve("example.com")
    assert len(dns_server.queries) > sent


async def test_permanent_failures_are_cached(dns_server: FakeDNS) -> None:
    dns_server.nxdomain.add("nope.example")
    clock = Clock()
    router = make_router(dns_server, clock)
    for _ in range(2):
        with pytest.raises(NoSuchDomain):
            await router.resolve("nope.example")
    assert dns_server.queries == [("nope.example", "MX")]
    clock.now += 301
    with pytest.raises(NoSuchDomain):
        await router.resolve("nope.example")
    assert len(dns_server.queries) == 2


async def test_routes_skip_dns(dns_server: FakeDNS) -> None:
    sink = Destination("127.0.0.1", 2525, "127.0.0.1")
    relay = Destination("relay.internal", 587, "relay.internal")
    router = Router({"gmail.example": sink, "*": relay}, dns_server=("127.0.0.1", dns_server.port))
    assert await router.resolve("GMAIL.example") == [sink]
    assert await router.resolve("anything.example") == [relay]
    exact_only = Router({"gmail.example": sink}, dns_server=("127.0.0.1", dns_server.port))
    assert await exact_only.resolve("gmail.example") == [sink]
    assert dns_server.queries == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_routes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [routes]
        "Gmail.Example" = "127.0.0.1:2525"
        "bücher.example" = "[::1]:25"
        "corp.example" = "Relay.Internal:587"
        "*" = "smtp_sink:1025"
        """,
    )
    assert load_routes(path) == {
        "gmail.example": Destination("127.0.0.1", 2525, "127.0.0.1"),
        "xn--bcher-kva.example": Destination("::1", 25, "::1"),
        "corp.example": Destination("relay.internal", 587, "relay.internal"),
        "*": Destination("smtp_sink", 1025, "smtp_sink"),
    }


def test_load_routes_without_routes_table(tmp_path: Path) -> None:
    assert load_routes(write(tmp_path, "")) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"gmail.example" = "127.0.0.1:0"', '[routes] "gmail.example": port must be 1..65535'),
        ('"gmail.example" = "127.0.0.1:65536"', '"gmail.example": port must be 1..65535'),
        ('"gmail.example" = "127.0.0.1:smtp"', '"gmail.example": port must be 1..65535'),
        ('"gmail.example" = "127.0.0.1"', '"gmail.example": expected "host:port"'),
        ('"gmail.example" = ":25"', '"gmail.example": expected "host:port"'),
        ('"gmail.example" = 25', '"gmail.example": expected a "host:port" string'),
        ('"gmail.example" = "::1:25"', '"gmail.example": IPv6 addresses must be'),
        ('"gmail.example" = "[nope]:25"', '"gmail.example": '),
        ('"gmail.example" = "300.1.1.1:25"', '"gmail.example": '),
        ('"gmail.example" = "-bad-:25"', '"gmail.example": invalid hostname'),
        ('"bad domain!" = "127.0.0.1:25"', '"bad domain!": invalid domain'),
        ('"A.example" = "127.0.0.1:25"\n"a.example" = "127.0.0.1:26"', '"a.example": duplicate'),
    ],
)
def test_load_routes_rejects(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, f"[routes]\n{body}\n")
    with pytest.raises(RoutesError) as info:
        load_routes(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_load_routes_non_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'routes = "127.0.0.1:25"\n')
    with pytest.raises(RoutesError, match=r"\[routes\] must be a table") as info:
        load_routes(path)
    assert str(path) in str(info.value)


def test_load_routes_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[routes]\n"a.example" = \n')
    with pytest.raises(RoutesError, match=r"invalid TOML: .*line 2") as info:
        load_routes(path)
    assert str(path) in str(info.value)


def test_load_routes_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(RoutesError, match="cannot read routes file") as info:
        load_routes(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
