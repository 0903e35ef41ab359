"""One scrape: read Redis, build the families, add the process's own metrics, render text.

prometheus-client's collectors are synchronous while our readings are not, so
a scrape reads first and then renders a one-off collector; nothing is
registered in the global registry, and no `_created` series appear.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from redis.asyncio import Redis

from prometheus.collector import families
from prometheus.readings import Readings, read

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What generate_latest writes with legacy-valid names; every Prometheus 2.x knows it
(prometheus-client now calls its text 1.0.0, the version that allows UTF-8 names)."""

_PROCESS = CollectorRegistry()
ProcessCollector(registry=_PROCESS)
PlatformCollector(registry=_PROCESS)
GCCollector(registry=_PROCESS)


class _Scrape:
    def __init__(self, readings: Readings | None) -> None:
        self.readings = readings

    def collect(self) -> Iterable[Metric]:
        yield from families(self.readings)
        yield from _PROCESS.collect()


def render(readings: Readings | None) -> bytes:
    return generate_latest(_Scrape(readings))


async def scrape(redis: Redis, top_domains: int) -> bytes:
    return render(await read(redis, top_domains))
