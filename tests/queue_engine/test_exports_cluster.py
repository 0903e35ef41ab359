"""An export on Redis Cluster: the task scripts share the {exports} hash tag, and the
records of a chunk, spread over every master, are read with a pipeline."""

from __future__ import annotations

import csv
import gzip
import time
from pathlib import Path

from cluster.test_cluster import cluster, cluster_url  # noqa: F401  (fixtures)
from conftest import TEST_CONFIG

from app.redis_cluster import ClusterClient
from queue_engine.accounts import EmailType, Principal, create_account, create_api_user
from queue_engine.export_worker import ExportWorker
from queue_engine.exports import ExportStatus, ExportStore, ExportType, task_counts
from queue_engine.submission import SendRequest, Submitter


async def test_an_export_runs_on_a_three_master_cluster(
    cluster: ClusterClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    await create_account(cluster, "acme", "admin@acme.example")
    await create_api_user(cluster, "acme", "acme-tx", EmailType.TRANSACTIONAL)
    principal = Principal("acme", "acme-tx", EmailType.TRANSACTIONAL)
    to = [f"user{i}@gmail.example" for i in range(1200)]
    request = SendRequest.parse({"from": "shop@acme.example", "to": to[:1000], "text": "Hi"})
    now_ms = int(time.time() * 1000)
    ids = await Submitter(cluster, TEST_CONFIG).submit(principal, request, "203.0.113.7", now_ms)
    request = SendRequest.parse({"from": "shop@acme.example", "to": to[1000:], "text": "Hi"})
    ids += await Submitter(cluster, TEST_CONFIG).submit(
        principal, request, "203.0.113.7", now_ms + 1
    )

    store = ExportStore(cluster)
    task = await store.create(
        principal,
        ExportType.EMAIL_STATUS,
        {"start_ms": now_ms - 1000, "end_ms": now_ms + 1000, "api_user": "acme-tx"},
        now_ms,
    )
    done = await ExportWorker(cluster, tmp_path, chunk_size=500).run_once()
    assert done is not None and done.task_id == task.task_id
    assert done.status is ExportStatus.SUCCESS and done.rows == 1200
    with gzip.open(tmp_path / done.file_name, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["email_id"] for r in rows] == sorted(ids, reverse=True)
    assert await task_counts(cluster) == {"pending": 0, "running": 0, "success": 1, "failed": 0}
