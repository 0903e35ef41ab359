"""The policy file: defaults, aliases, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_engine.limits import Limiter, SlotDenied
from queue_engine.policy import DEFAULT_POLICY_FILE, DomainPolicy, Policy, PolicyError, load_policy


def test_the_bundled_policy_loads_with_provider_aliases():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.provider("googlemail.com") == "gmail.com"
    assert policy.for_domain("foxmail.com") == policy.for_domain("qq.com")
    assert policy.for_domain("qq.com").quota_per_hour > 0
    assert policy.for_domain("unknown.example") == policy.default


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[default]\nmax_connections = 5\nmax_conection = 3\n", ":3: [default.max_conection]"),
        ("[default]\n\nmax_connections = 0\n", ":3: [default.max_connections] must be at least 1"),
        ('[egress]\nsources = ["1.2.3"]\n', ":2: [egress.sources] '1.2.3' is not an IP"),
        ("[egress]\nquota_per_hour = -1\n", ":2: [egress.quota_per_hour] must be a whole number"),
        ('[domain."qq.com"]\nquota_per_day = "lots"\n', ':2: [domain."qq.com".quota_per_day]'),
        ('[domain."a.com"]\naliases = ["b.com"]\n[domain."b.com"]\n', "b.com is already"),
        ("[defaults]\n", ":1: [defaults] is not a policy table"),
        ("[default\n", "invalid TOML"),
        ("[default]\nthrottle_pause_seconds = 0\n", "throttle_pause_seconds] must be a number"),
    ],
)
def test_bad_files_name_file_line_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(str(path))
    assert where in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.toml"):
        load_policy(tmp_path / "nope.toml")


async def test_connection_slots_hold_the_limit_and_a_dead_engines_slots_expire(redis):
    now = [1_000_000.0]
    policy = Policy(default=DomainPolicy(max_connections=2, new_connections_per_minute=3))
    limiter = Limiter(redis, policy, lambda: now[0])
    first, _ = await limiter.open_slot("127.0.0.2", "gmail.example")
    second, _ = await limiter.open_slot("127.0.0.2", "gmail.example")
    assert first and second
    assert await limiter.open_slot("127.0.0.2", "gmail.example") == (None, SlotDenied.OPEN)
    assert (await limiter.open_slot("127.0.0.3", "gmail.example"))[0]  # another IP: own slots
    await limiter.close_slot("127.0.0.2", "gmail.example", first)
    assert (await limiter.open_slot("127.0.0.2", "gmail.example"))[0]
    # The minute's three new connections are used: the fourth waits for the next minute.
    await limiter.close_slot("127.0.0.2", "gmail.example", second)
    assert await limiter.open_slot("127.0.0.2", "gmail.example") == (None, SlotDenied.RATE)
    now[0] += 60
    assert (await limiter.open_slot("127.0.0.2", "gmail.example"))[0]
    # A slot nobody renews (its engine died) expires.
    now[0] += 30
    assert (await limiter.open_slot("127.0.0.2", "gmail.example"))[0]
    assert (await limiter.open_slot("127.0.0.2", "gmail.example"))[0]


async def test_quotas_grant_what_is_left_and_say_when_they_refill(redis):
    now = [1_800_000_000.0]
    policy = Policy(default=DomainPolicy(quota_per_hour=10), ip_quota_per_day=4)
    limiter = Limiter(redis, policy, lambda: now[0])
    assert (await limiter.take_domain("gmail.example", 7)).granted == 7
    grant = await limiter.take_domain("gmail.example", 7)
    assert grant.granted == 3
    assert grant.until_ms == (int(now[0] * 1000) // 3_600_000 + 1) * 3_600_000
    await limiter.refund_domain("gmail.example", 2)
    assert (await limiter.take_domain("gmail.example", 5)).granted == 2
    assert (await limiter.take_ip("127.0.0.2", 5)).granted == 4
    assert (await limiter.take_ip("127.0.0.3", 1)).granted == 1
