"""A real Prometheus (Debian's) scrapes a running `mailpulse web`, evaluates our rules,
answers queries about the queues, and runs every dashboard query without error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import free_port
from scrapes import ARTIFACTS, dashboard_expressions

ROOT = ARTIFACTS.parent
SCRAPE_SECONDS = 1


@contextlib.asynccontextmanager
async def process(args: list[str], log: Path, **env: str) -> AsyncIterator[None]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=out, stderr=out, cwd=ROOT, env={**os.environ, **env}
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def ready(url: str, wait_for: Callable[..., Awaitable[Any]], log: Path) -> None:
    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(answers, within=30)
    except AssertionError:
        pytest.fail(f"{url} did not answer; its log:\n{_read(log)}")


def _read(log: Path) -> str:
    return log.read_text()


@pytest.fixture
async def prometheus(
    live_system, redis_url, prometheus_binary, tmp_path, wait_for
) -> AsyncIterator[httpx.AsyncClient]:
    """`mailpulse web` on the test Redis, and Prometheus scraping it every second."""
    web_port, prom_port = free_port(), free_port()
    web = [sys.executable, "-m", "app.cli", "web"]
    env = {
        "REDIS_URL": redis_url,
        "MAILPULSE_HTTP_PORT": str(web_port),
        "MAILPULSE_DATA_DIR": str(tmp_path / "data"),
        "MAILPULSE_LOG_LEVEL": "WARNING",
    }
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((ARTIFACTS / "rules").glob("*.yml"))],
        "scrape_configs": [
            {"job_name": "mailpulse", "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
    prom = [
        prometheus_binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--log.level=warn",
    ]
    async with process(web, tmp_path / "web.log", **env):
        await ready(f"http://127.0.0.1:{web_port}/healthz", wait_for, tmp_path / "web.log")
        async with process(prom, tmp_path / "prometheus.log"):
            url = f"http://127.0.0.1:{prom_port}"
            await ready(f"{url}/-/ready", wait_for, tmp_path / "prometheus.log")
            async with httpx.AsyncClient(base_url=url) as client:
                yield client


async def query(prom: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await prom.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_prometheus_scrapes_mailpulse_and_evaluates_the_rules(prometheus, wait_for):
    async def pending() -> list[dict[str, Any]]:
        expr = 'mailpulse_queue_pending_emails{api_user="acme-tx",domain="qq.example"}'
        return await query(prometheus, expr)

    [series] = await wait_for(pending, within=30)
    assert series["value"][1] == "2"
    assert series["metric"]["job"] == "mailpulse"
    [outbound] = await query(prometheus, 'mailpulse_queue_outbound_total{domain="gmail.example"}')
    assert outbound["value"][1] == "2"
    [target] = (await prometheus.get("/api/v1/targets")).json()["data"]["activeTargets"]
    assert target["health"] == "up", target

    async def evaluated() -> list[dict[str, Any]] | None:
        groups = (await prometheus.get("/api/v1/rules")).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["lastEvaluation"][:4] != "0001" for r in rules) else None

    rules = await wait_for(evaluated, within=30)
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    # A recorded series the dashboard reads, from our own recording rule.
    [recorded] = await wait_for(
        lambda: query(prometheus, 'mailpulse:queue_pending_emails{domain="qq.example"}'), within=30
    )
    assert recorded["value"][1] == "2"
    # Every query of the dashboard is valid PromQL for this Prometheus.
    variables = {"$api_user": ".*", "$domain": ".*", "$__rate_interval": "1m"}
    for expr in dashboard_expressions():
        if expr.startswith("label_values("):
            continue  # a Grafana function, not PromQL
        for name, value in variables.items():
            expr = expr.replace(name, value)
        await query(prometheus, expr)
