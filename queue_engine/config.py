"""What the engine needs to know, independent of where the values come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_RECIPIENTS = 1000
"""Recipients per send call (CONTRACT); larger lists are split by the caller."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    max_age_seconds: float = 259200.0
    smtp_timeout_seconds: float = 60.0
    lease_seconds: float = 300.0
    batch_size: int = 200
    max_active_queues: int = 256
    """Queues one engine drains at once (each is a task with up to its connections)."""
    max_slow_queues: int = 256
    """Queues waiting on slow MPs one engine drains at once, beside `max_active_queues`
    (engine.py `_start_due`)."""
    helo_name: str = "localhost"
    return_path_domain: str | None = None
    secret: bytes = b"mailpulse-test-secret"
    """Signs return paths and X-Mailpulse-Id headers (correlation.py); the settings' key."""
    retention_days: int = 90
    max_body_bytes: int = 10 * 1024 * 1024
    metrics_top_domains: int = 50
    """Recipient domains with their own metric label (domain_labels.py); the rest: other."""
    tracking_base_url: str = "http://127.0.0.1:8025"
    """Where tracked links, the open pixel and unsubscribe links point (an account may
    have its own); the web app serves /t/ and /u/ there."""
    exports_dir: Path | None = None
    """Where export files are written (the data dir's `exports`); None: no export worker."""

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff: base, 2 base, 4 base, ... capped at retry_max_seconds."""
        return float(
            min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(attempts - 1, 0))
        )
