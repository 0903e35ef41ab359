"""Redis Cluster: the URL form, and a cluster client the engine can use unchanged.

`redis+cluster://[[user]:password@]host:port[,host:port...]` (or `rediss+cluster://`
for TLS) names one or more nodes of a cluster; the client discovers the rest.

redis-py's `RedisCluster` lacks or breaks five things the engine uses on the plain client:
- Scripts inside a pipeline: a cluster pipeline refuses EVALSHA, which
  `register_script` scripts run as (and nothing would load them on a node
  first, as the plain `Pipeline` does per execute). This client's pipelines
  send a registered script as EVAL with its text: no NOSCRIPT on any node,
  restarted or failed over. Every key of one call must share a hash tag.
- Awaiting a pipeline (`await pipe.zadd(...)`, and every script call on one):
  harmless on the plain client, it silently drops the queued commands of a
  cluster pipeline; here it keeps them.
- PUBLISH inside a pipeline (the wake-up sent with an enqueue): refused by a
  cluster pipeline, queued here like any keyed command.
- Outages: an unreachable or CLUSTERDOWN cluster raises RedisClusterException or
  ClusterDownError, which callers written for the plain client (the engine's
  retry loop, the web app's 503) do not expect; here they are ConnectionError.
- `pubsub()`: a PUBLISH reaches the subscribers of every node of a cluster, so
  the subscription is a plain connection to one node, picked at random (the
  startup nodes until the client has met the cluster).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT, KeyT, ScriptTextT

# A cluster that lost a master (no replica took over) or does not cover every slot
# answers CLUSTERDOWN; callers treat it as they treat a plain Redis that is down.
_CLUSTER_DOWN = (ClusterDownError, SlotNotCoveredError)

SCHEMES = {"redis+cluster": False, "rediss+cluster": True}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse_cluster_url(url: str) -> dict[str, Any]:
    """RedisCluster keyword arguments for a `redis+cluster://` URL; ValueError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError("a cluster URL takes no ?options")
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0")
    userinfo, _, hosts = netloc.rpartition("@")
    kwargs: dict[str, Any] = {}
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        if user:
            kwargs["username"] = unquote(user)
        if has_password:
            kwargs["password"] = unquote(password)
    nodes = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{item!r} is not host:port")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    kwargs["startup_nodes"] = nodes
    if SCHEMES[scheme.lower()]:
        kwargs["ssl"] = True
    return kwargs


class ClusterClient(RedisCluster):
    """`RedisCluster` that behaves like the plain client where the engine relies on it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scripts: dict[str, ScriptTextT] = {}

    @classmethod
    def from_cluster_url(cls, url: str, **kwargs: Any) -> ClusterClient:
        return cls(**parse_cluster_url(url), **kwargs)

    async def initialize(self) -> ClusterClient:
        try:
            await super().initialize()
        except RedisClusterException as exc:
            # No node answered, or none knows every slot: for the callers, Redis is
            # down, as a plain client's ConnectionError says, and they retry alike.
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc
        return self

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except _CLUSTER_DOWN as exc:
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc

    # redis-py annotates the async method with the sync Script class.
    def register_script(self, script: ScriptTextT) -> AsyncScript:  # type: ignore[override]
        registered: AsyncScript = super().register_script(script)
        self._scripts[registered.sha] = script
        return registered

    def script_text(self, sha: str) -> ScriptTextT | None:
        return self._scripts.get(sha)

    async def publish(self, channel: KeyT, message: EncodableT, **kwargs: Any) -> Any:
        # The async cluster client has no publish(); any node broadcasts cluster-wide.
        return await self.execute_command("PUBLISH", channel, message, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ScriptPipeline(self, transaction)

    def pubsub(self, **kwargs: Any) -> PubSub:
        nodes = self.get_primaries() or list(self.nodes_manager.startup_nodes.values())
        node = random.choice(nodes)
        options = {k: v for k, v in node.connection_kwargs.items() if k != "redis_connect_func"}
        pool = ConnectionPool(connection_class=node.connection_class, **options)
        return _NodePubSub(pool, **kwargs)


class _ScriptPipeline(ClusterPipeline):
    """A cluster pipeline that takes what redis-py blocks there and the engine pipelines."""

    cluster_client: ClusterClient

    def __await__(self) -> Generator[Any, None, ClusterPipeline]:
        # `await pipe.command(...)` (as a script call on a pipeline does) must keep what
        # is queued: redis-py's cluster pipeline empties its queue when awaited.
        return self._ready().__await__()

    async def _ready(self) -> ClusterPipeline:
        await self.cluster_client.initialize()
        return self

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _CLUSTER_DOWN as exc:
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: KeyT | EncodableT) -> Any:
        script = self.cluster_client.script_text(sha)
        if script is None:
            return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def publish(self, channel: KeyT, message: EncodableT, **kwargs: Any) -> Any:
        # Routed by the channel's slot like a key; any node broadcasts it cluster-wide.
        return self.execute_command("PUBLISH", channel, message, **kwargs)


class _NodePubSub(PubSub):
    """A PubSub that owns its connection pool: closing it closes the node connection."""

    async def aclose(self) -> None:
        await super().aclose()  # type: ignore[no-untyped-call]
        await self.connection_pool.disconnect()
