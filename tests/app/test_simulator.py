"""The MP simulator: real aiosmtpd servers on 127.0.0.1, a real aiosmtplib client, no mocks."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from app.demo import DEMO_DOMAINS, DEMO_PER_SECOND
from app.simulator import (
    DEFAULT_PROFILES,
    Limit,
    MPServer,
    Profile,
    ProfileError,
    Simulator,
    in_share,
    load_profiles,
    ports_from_routes,
    write_routes,
)
from queue_engine.routing import load_routes

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = b"From: a@shop.example\r\nTo: someone@mp.example\r\nSubject: hi\r\n\r\nhello\r\n"

QQ_IP_FREQUENCY = (
    "451 Ip frequency limited. "
    "http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000725"
)
YAHOO_PER_CONNECTION = "421 Max message per connection reached, closing transmission channel"
GMAIL_PER_RECIPIENT = (
    "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
    "additional messages from being delivered."
)
NETEASE_ICC = "421 HL:ICC 163 mx1,{id} {time}, please see http://mail.163.com/help/help_spam_16.htm"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[MPServer]]]:
    started: list[MPServer] = []

    async def start(profile: Profile | None = None, **kwargs: Any) -> MPServer:
        server = await MPServer(profile=profile, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def connect(server: MPServer, source_ip: str = "127.0.0.1") -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=server.port,
        timeout=5,
        start_tls=False,
        source_address=(source_ip, 0),
        local_hostname="sender.test",
    )
    await client.connect()
    await client.ehlo()
    return client


async def send(client: aiosmtplib.SMTP, rcpt: str) -> tuple[int, str]:
    """One transaction; (code, message) of the reply that ended it."""
    try:
        await client.mail("shop@shop.example")
        await client.rcpt(rcpt)
        response = await client.data(MESSAGE)
    except aiosmtplib.SMTPResponseException as exc:
        if client.is_connected:
            await client.rset()
        return exc.code, exc.message
    return response.code, response.message


def ordinary(profile: Profile, n: int = 1, prefix: str = "user") -> list[str]:
    """Local parts that fall in none of the profile's unknown/spam shares."""
    out = []
    i = 0
    while len(out) < n:
        local = f"{prefix}{i}"
        if not in_share("unknown", local, profile.unknown_share) and not in_share(
            "spam", local, profile.spam_share
        ):
            out.append(local)
        i += 1
    return out


# -- the plain MP and every shipped profile keep the forced local parts --------------------


async def test_plain_server_behaves_as_before(serve: Callable[..., Awaitable[MPServer]]) -> None:
    server = await serve(name="mp")
    client = await connect(server)
    code, message = await send(client, "unknown1@gmail.example")
    assert (code, message) == (
        550,
        "5.1.1 The email account that you tried to reach does not exist",
    )
    assert await send(client, "spam1@gmail.example") == (554, "5.7.1 Message rejected as spam")
    code, _ = await send(client, "tempfail1@gmail.example")
    assert code == 421
    client = await connect(server)  # aiosmtplib hangs up after a 421
    assert await send(client, "tempfail1@gmail.example") == (250, "2.0.0 Ok: queued as 00000000")
    assert await send(client, "fine@gmail.example") == (250, "2.0.0 Ok: queued as 00000001")
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(client, "drop1@gmail.example")
    assert [r.rcpt_to for r in server.state.received] == [
        "tempfail1@gmail.example",
        "fine@gmail.example",
    ]
    assert server.state.rcpt_attempts["tempfail1@gmail.example"] == 2
    assert server.state.helo_names["sender.test"] == 6


@pytest.mark.parametrize("profile", load_profiles(), ids=lambda p: p.name)
async def test_every_profile_keeps_the_forced_local_parts(
    serve: Callable[..., Awaitable[MPServer]], profile: Profile
) -> None:
    # The random drop share would make the ordinary sends below fail now and then.
    server = await serve(replace(profile, drop_share=0.0))
    domain = profile.domains[0] if profile.domains else "elsewhere.example"
    client = await connect(server)
    code, message = await send(client, f"unknown7@{domain}")
    assert f"{code} {message}".startswith(profile.unknown_reply.split("{")[0].rstrip())
    assert code >= 550
    code, message = await send(client, f"spam7@{domain}")
    assert f"{code} {message}".startswith(profile.spam_reply.split("{")[0].rstrip())
    assert code >= 550
    code, _ = await send(client, f"tempfail7@{domain}")
    assert 400 <= code < 500
    if not client.is_connected:
        client = await connect(server)
    local = ordinary(profile)[0]
    code, message = await send(client, f"{local}@{domain}")
    assert code == 250, message
    assert f"{code} {message}".startswith(profile.accept_reply.split("{")[0].rstrip())
    assert (await send(client, f"tempfail7@{domain}"))[0] == 250
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(client, f"drop7@{domain}")
    assert server.state.accepted == 2


# -- each knob gives the profile's reply at the right point ------------------------------


async def test_messages_per_connection_then_reply_to_mail_and_close(
    serve: Callable[..., Awaitable[MPServer]],
) -> None:
    profile = Profile(name="yahoo", per_connection=Limit(2, YAHOO_PER_CONNECTION))
    server = await serve(profile)
    client = await connect(server)
    assert (await send(client, "a@yahoo.example"))[0] == 250
    assert (await send(client, "b@yahoo.example"))[0] == 250
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.mail("shop@shop.example")  # the reply comes to MAIL, not later
    assert f"{refused.value.code} {refused.value.message}" == YAHOO_PER_CONNECTION
    assert server.state.events["per_connection"] == 1

    # The server, not only the client, ends the connection after a 421.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await read_reply(reader)
        await command(reader, writer, b"EHLO raw.test")
        for rcpt in (b"c", b"d"):
            await command(reader, writer, b"MAIL FROM:<shop@shop.example>")
            await command(reader, writer, b"RCPT TO:<" + rcpt + b"@yahoo.example>")
            assert (await command(reader, writer, b"DATA")).startswith("354")
            assert (await command(reader, writer, MESSAGE + b".")).startswith("250")
        reply = await command(reader, writer, b"MAIL FROM:<shop@shop.example>")
        assert reply == YAHOO_PER_CONNECTION + "\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF: closed by the MP
    finally:
        writer.close()
    # A new connection starts a new count.
    client = await connect(server)
    assert (await send(client, "e@yahoo.example"))[0] == 250


async def read_reply(reader: asyncio.StreamReader) -> str:
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 5)
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines).decode()


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> str:
    writer.write(line + b"\r\n")
    return await read_reply(reader)


async def test_per_minute_limit_per_client_ip_with_an_injected_clock(
    serve: Callable[..., Awaitable[MPServer]],
) -> None:
    clock = FakeClock()
    profile = Profile(name="qq", per_minute=Limit(3, QQ_IP_FREQUENCY))
    server = await serve(profile, clock=clock)
    client = await connect(server)
    for i in range(3):
        assert (await send(client, f"u{i}@qq.example"))[0] == 250
        clock.now += 5
    # While over: the throttle reply to MAIL, the connection stays up (451, not 421).
    assert await send(client, "u3@qq.example") == (451, QQ_IP_FREQUENCY[4:])
    assert await send(client, "u4@qq.example") == (451, QQ_IP_FREQUENCY[4:])
    assert client.is_connected
    # Per client IP: another sending IP is not throttled.
    other = await connect(server, source_ip="127.0.0.2")
    assert (await send(other, "u5@qq.example"))[0] == 250
    # A minute after the first accepted message, one more fits; then throttled again.
    clock.now = 1000.0 + 60.0
    assert (await send(client, "u6@qq.example"))[0] == 250
    assert (await send(client, "u7@qq.example"))[0] == 451
    assert server.state.events["per_minute"] == 3
    assert server.state.accepted == 5


async def test_per_recipient_limit_defers_only_that_recipient(
    serve: Callable[..., Awaitable[MPServer]],
) -> None:
    clock = FakeClock()
    profile = Profile(name="gmail", per_recipient=Limit(2, GMAIL_PER_RECIPIENT))
    server = await serve(profile, clock=clock)
    client = await connect(server)
    assert (await send(client, "busy@gmail.example"))[0] == 250
    assert (await send(client, "Busy@gmail.example"))[0] == 250
    code, message = await send(client, "busy@gmail.example")
    assert f"{code} {message}" == GMAIL_PER_RECIPIENT  # in reply to RCPT
    assert server.state.rcpt_attempts["busy@gmail.example"] == 3
    assert (await send(client, "calm@gmail.example"))[0] == 250  # the domain still flows
    clock.now += 61
    assert (await send(client, "busy@gmail.example"))[0] == 250


async def test_max_connections_per_ip_refuses_at_the_greeting(
    serve: Callable[..., Awaitable[MPServer]], wait_for: Callable[..., Awaitable[Any]]
) -> None:
    profile = Profile(name="netease", max_connections=Limit(2, NETEASE_ICC + "?ip={ip}"))
    server = await serve(profile)
    first = await connect(server)
    second = await connect(server)
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
        await connect(server)
    assert refused.value.code == 421
    assert refused.value.message.startswith("HL:ICC 163 mx1,")
    assert refused.value.message.endswith("help_spam_16.htm?ip=127.0.0.1")
    other_ip = await connect(server, source_ip="127.0.0.2")  # the limit is per client IP
    assert (await send(other_ip, "a@163.example"))[0] == 250
    await first.quit()

    async def freed() -> bool:
        return server.state.connections["127.0.0.1"] == 1

    await wait_for(freed)
    third = await connect(server)
    assert (await send(third, "b@163.example"))[0] == 250
    assert (await send(second, "c@163.example"))[0] == 250
    assert server.state.events["max_connections"] == 1


async def test_unknown_share_is_deterministic_by_local_part(
    serve: Callable[..., Awaitable[MPServer]],
) -> None:
    profile = Profile(
        name="outlook",
        unknown_share=0.3,
        unknown_reply="550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).",
    )
    locals_ = [f"person{i}" for i in range(100)]
    first = await refused_by_rcpt(serve, profile, locals_)
    second = await refused_by_rcpt(serve, profile, locals_)
    assert first == second  # the same addresses, on another server and connection
    assert first == {local for local in locals_ if in_share("unknown", local, 0.3)}
    assert 15 <= len(first) <= 45
    assert not await refused_by_rcpt(serve, replace(profile, unknown_share=0.0), locals_)
    assert len(await refused_by_rcpt(serve, replace(profile, unknown_share=1.0), locals_)) == 100


async def refused_by_rcpt(
    serve: Callable[..., Awaitable[MPServer]], profile: Profile, locals_: list[str]
) -> set[str]:
    server = await serve(profile)
    client = await connect(server)
    await client.mail("shop@shop.example")
    refused = set()
    for local in locals_:
        try:
            await client.rcpt(f"{local}@outlook.example")
        except aiosmtplib.SMTPRecipientRefused as exc:
            assert exc.code == 550
            assert exc.message.startswith("5.5.0 Requested action not taken: mailbox unavailable")
            refused.add(local)
    assert server.state.events["unknown"] == len(refused)
    return refused


async def test_spam_share_is_rejected_at_the_end_of_data(
    serve: Callable[..., Awaitable[MPServer]],
) -> None:
    reply = "550 Mail content denied. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022&&no=1000726"
    profile = Profile(name="qq", spam_share=0.25, spam_stage="data", spam_reply=reply)
    server = await serve(profile)
    client = await connect(server)
    spam = [f"s{i}" for i in range(200) if in_share("spam", f"s{i}", 0.25)][:3]
    ham = [f"s{i}" for i in range(200) if not in_share("spam", f"s{i}", 0.25)][:3]
    for local in spam:
        await client.mail("shop@shop.example")
        await client.rcpt(f"{local}@qq.example")  # accepted at RCPT ...
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(MESSAGE)  # ... refused once the content is in
        assert f"{refused.value.code} {refused.value.message}" == reply
        await client.rset()
    for local in ham:
        assert (await send(client, f"{local}@qq.example"))[0] == 250
    assert server.state.events["spam"] == 3
    assert server.state.accepted == 3


async def test_reply_delay_slows_every_reply(serve: Callable[..., Awaitable[MPServer]]) -> None:
    slow = await serve(Profile(name="slow", reply_delay=0.3))
    fast = await serve(Profile(name="fast"))

    async def rcpt_seconds(server: MPServer) -> float:
        client = await connect(server)
        await client.mail("shop@shop.example")
        started = time.monotonic()
        await client.rcpt("someone@slow.example")
        elapsed = time.monotonic() - started
        await client.quit()
        return elapsed

    assert await rcpt_seconds(slow) >= 0.3
    assert await rcpt_seconds(fast) < 0.3


async def test_dropped_connection_share(serve: Callable[..., Awaitable[MPServer]]) -> None:
    always = await serve(Profile(name="flaky", drop_share=1.0))
    client = await connect(always)
    await client.mail("shop@shop.example")
    await client.rcpt("someone@flaky.example")
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.data(MESSAGE)  # dropped after the content, before the reply
    assert always.state.accepted == 0
    assert always.state.events["drop"] == 1

    expected_rng = random.Random(7)
    expected = [expected_rng.random() < 0.5 for _ in range(10)]
    assert True in expected and False in expected
    sometimes = await serve(Profile(name="flaky", drop_share=0.5), rng=random.Random(7))
    client = await connect(sometimes)
    dropped = []
    for i in range(10):
        try:
            assert (await send(client, f"p{i}@flaky.example"))[0] == 250
            dropped.append(False)
        except aiosmtplib.SMTPServerDisconnected:
            dropped.append(True)
            client = await connect(sometimes)
    assert dropped == expected
    assert sometimes.state.accepted == expected.count(False)


# -- the profile file -----------------------------------------------------------------------


def test_shipped_profiles_use_each_providers_wording() -> None:
    profiles = {p.name: p for p in load_profiles()}
    assert set(profiles) >= {"gmail", "outlook", "yahoo", "qq", "netease", "accept"}
    expected_domains = {
        "gmail": {"gmail.example", "googlemail.example"},
        "outlook": {"outlook.example", "hotmail.example"},
        "yahoo": {"yahoo.example"},
        "qq": {"qq.example", "foxmail.example"},
        "netease": {"163.example", "126.example"},
    }
    for name, domains in expected_domains.items():
        assert set(profiles[name].domains) == domains

    def reply(profile: str, limit: str) -> str:
        value = getattr(profiles[profile], limit)
        assert isinstance(value, Limit) and value.limit > 0, (profile, limit)
        return value.reply

    assert reply("gmail", "per_minute").startswith("421 4.7.28 ")
    assert "unusual rate of unsolicited mail" in reply("gmail", "per_minute")
    # Gmail's 4.2.1 is about one recipient: never the domain/IP throttle.
    assert reply("gmail", "per_recipient").startswith("450 4.2.1 ")
    assert "4.2.1" not in reply("gmail", "per_minute")
    assert reply("outlook", "per_minute").startswith("451 4.7.650 The mail server [{ip}]")
    assert "temporarily rate limited due to IP reputation" in reply("outlook", "per_minute")
    assert "[TSS04] Messages from {ip} temporarily deferred due to unexpected volume" in reply(
        "yahoo", "per_minute"
    )
    assert reply("qq", "per_minute").startswith("451 Ip frequency limited")
    assert reply("netease", "max_connections").startswith("421 HL:ICC ")
    assert reply("netease", "per_minute").startswith("421 HL:IFC ")
    assert profiles["qq"].unknown_reply.startswith("550 Mailbox not found")
    assert profiles["netease"].unknown_reply == "550 User not found: {rcpt}"
    for name in expected_domains:
        assert 0 < profiles[name].unknown_share <= 0.1
        assert 0 < profiles[name].spam_share <= 0.05
        assert reply(name, "max_connections").startswith("421 ")
    accept = profiles["accept"]
    assert accept.catch_all
    assert replace(accept, domains=(), catch_all=False) == Profile(name="accept")


def test_demo_traffic_overruns_qq_within_a_minute() -> None:
    profiles = {p.name: p for p in load_profiles()}
    qq = profiles["qq"]
    assert qq.per_minute is not None
    total = sum(DEMO_DOMAINS.values())
    qq_per_minute = 60 * DEMO_PER_SECOND * sum(DEMO_DOMAINS[d] for d in qq.domains) / total
    # Several times the limit, even spread over four sending IPs.
    assert qq_per_minute > 4 * qq.per_minute.limit
    served = {d for p in profiles.values() for d in p.domains}
    assert set(DEMO_DOMAINS) <= served  # every demo domain has its own MP, none falls to "*"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    return path


GOOD = """
[profiles.gmail]
domains = ["gmail.example"]
unknown_share = 0.03

[profiles.gmail.per_minute]
limit = 10
reply = "421 4.7.28 [{ip}] slow down"
"""


def with_key(line: str) -> str:
    """GOOD with one more line in its [profiles.gmail] table."""
    return GOOD.replace("unknown_share = 0.03\n", f"unknown_share = 0.03\n{line}\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (with_key("unknwon_share = 0.1"), "unknown key 'unknwon_share'"),
        (GOOD.replace("0.03", '"3%"'), "key 'unknown_share': expected a number, got str '3%'"),
        (GOOD.replace("0.03", "1.5"), "key 'unknown_share': must be within 0..1"),
        (GOOD.replace("limit = 10", "limit = -1"), "key 'per_minute.limit'"),
        (GOOD.replace("421 4.7.28", "550 5.7.28"), "key 'per_minute.reply': reply code must be"),
        (GOOD.replace("{ip}", "{sender}"), "unknown placeholder {sender}"),
        (GOOD + "[profiles.gmail.per_minute.burst]\n", "key 'per_minute.burst'"),
        (GOOD + '[profiles.other]\ndomains = ["GMAIL.example"]\n', "'gmail.example' is already"),
        (GOOD.replace('domains = ["gmail.example"]', "domains = []"), "key 'domains'"),
        (with_key('spam_stage = "later"'), "key 'spam_stage'"),
        (with_key("catch_all = 1"), "key 'catch_all': expected true or false"),
    ],
)
def test_a_bad_profile_file_names_file_profile_and_key(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as error:
        load_profiles(path)
    message = str(error.value)
    assert message.startswith(f"{path}: profile "), message
    assert needle in message, message


def test_unreadable_or_malformed_profile_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ProfileError, match=f"^{missing}: cannot read"):
        load_profiles(missing)
    with pytest.raises(ProfileError, match=r"invalid TOML.*line 2"):
        load_profiles(write(tmp_path, "[profiles.a]\ndomains = [1,,]\n"))
    with pytest.raises(ProfileError, match="unknown top-level key 'profile'"):
        load_profiles(write(tmp_path, "[profile.gmail]\n"))
    (profile,) = load_profiles(write(tmp_path, GOOD))
    assert profile.per_minute == Limit(10, "421 4.7.28 [{ip}] slow down")
    assert profile.per_connection is None


# -- the simulator: all profiles, their routes --------------------------------------------


async def test_simulator_routes_every_domain_to_its_profile() -> None:
    profiles = load_profiles()
    simulator = await Simulator(profiles).start()
    try:
        routes = simulator.routes()
        for profile in profiles:
            for domain in profile.domains:
                assert routes[domain] == simulator.servers[profile.name].address
        assert routes["*"] == simulator.servers["accept"].address
        assert len(set(routes.values())) == len(profiles)
        for domain, address in routes.items():
            host, _, port = address.rpartition(":")
            assert host == "127.0.0.1"
            profile = next(
                p for p in profiles if domain in p.domains or (p.catch_all and domain == "*")
            )
            client = aiosmtplib.SMTP(hostname=host, port=int(port), timeout=5, start_tls=False)
            greeting = await client.connect()
            expected = profile.hostname or f"{profile.name}.simulator"
            assert greeting.message.startswith(expected), (domain, greeting.message)
            await client.quit()
    finally:
        await simulator.stop()


async def test_simulator_uses_consecutive_ports_from_a_base() -> None:
    profiles = load_profiles()
    base = free_range(len(profiles))
    simulator = await Simulator(profiles, base_port=base).start()
    try:
        assert [s.port for s in simulator.servers.values()] == [
            base + i for i in range(len(profiles))
        ]
    finally:
        await simulator.stop()


def free_range(n: int) -> int:
    """A base port whose next n ports are free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + n >= 65536:
            continue
        try:
            socks = []
            for i in range(n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free port range")


def test_routes_file_round_trip(tmp_path: Path) -> None:
    profiles = load_profiles()
    routes = {d: f"127.0.0.1:{3000 + i}" for i, p in enumerate(profiles) for d in p.domains}
    routes["*"] = f"127.0.0.1:{3000 + len(profiles) - 1}"
    path = tmp_path / "routes.toml"
    write_routes(path, routes)
    loaded = load_routes(path)
    assert {d: f"{r.host}:{r.port}" for d, r in loaded.items()} == routes
    assert ports_from_routes(path, profiles) == {p.name: 3000 + i for i, p in enumerate(profiles)}
    assert ports_from_routes(tmp_path / "none.toml", profiles) == {}


# -- `mailpulse simulate` -------------------------------------------------------------------


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("MAILPULSE_")
    }
    env["MAILPULSE_DATA_DIR"] = str(tmp_path / "data")
    return env


async def run_simulate(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """`mailpulse simulate ...` until it printed one line per profile."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "simulate", *args,
        cwd=ROOT, env=cli_env(tmp_path), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    for _ in load_profiles():
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, (
            f"simulate ended early: {lines} {await proc.stderr.read() if proc.stderr else ''!r}"
        )
        lines.append(line.decode().rstrip("\n"))
    return proc, lines


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGINT)
    return await asyncio.wait_for(proc.wait(), 15)


async def test_mailpulse_simulate_prints_addresses_and_stops_on_sigint(tmp_path: Path) -> None:
    routes_file = tmp_path / "demo-routes.toml"
    proc, lines = await run_simulate(tmp_path, "--port", "0", "--routes-file", str(routes_file))
    try:
        profiles = load_profiles()
        routes = load_routes(routes_file)  # written before the addresses are printed
        for profile, line in zip(profiles, lines, strict=True):
            address = f"127.0.0.1:{routes[profile.domains[0]].port}"
            assert line.startswith(f"MP simulator {profile.name} listening on {address}: ")
            assert all(domain in line for domain in profile.domains)
        assert "*" in routes and "* (every other domain)" in lines[-1]
        qq = routes["qq.example"]
        client = aiosmtplib.SMTP(hostname=qq.host, port=qq.port, timeout=5, start_tls=False)
        greeting = await client.connect()
        assert greeting.message.startswith("mx1.qq.com MX QQ Mail Server")
        await client.quit()
    finally:
        code = await stop(proc)
    assert code == 0, await proc.stderr.read() if proc.stderr else b""

    # Restarted with the same routes file, it takes back the same ports.
    proc, again = await run_simulate(tmp_path, "--port", "0", "--routes-file", str(routes_file))
    assert await stop(proc) == 0
    assert again == lines


async def test_mailpulse_simulate_rejects_a_bad_profile_file(tmp_path: Path) -> None:
    bad = write(tmp_path, with_key("burst = 5"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "simulate", "--port", "0", "--profiles", str(bad),
        cwd=ROOT, env=cli_env(tmp_path), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert f"{bad}: profile 'gmail': unknown key 'burst'" in err.decode()
    assert out == b""


def test_default_profile_file_is_next_to_the_module() -> None:
    assert DEFAULT_PROFILES == ROOT / "app" / "mp_profiles.toml"
