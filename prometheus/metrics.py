"""Every metric mailpulse exports, with its type, labels and HELP text, in one place.

Names follow the Prometheus conventions: the `mailpulse_` prefix, base units
(`_seconds`), counters ending `_total` (prometheus-client adds it to a counter
family's name), and no per-address or per-email label. A `domain` label is
always capped: the top N recipient domains by volume, the rest `other`
(queue_engine/domain_labels.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

QUEUE = ("api_user", "domain")


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    help: str
    labels: tuple[str, ...] = ()


class Counter(Spec):
    def family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.help, labels=self.labels)


class Gauge(Spec):
    def family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


class Histogram(Spec):
    def family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.help, labels=self.labels)


QUEUE_PENDING = Gauge(
    "mailpulse_queue_pending_emails",
    "Emails waiting in queues (ready or being delivered), per API_USER and recipient domain.",
    QUEUE,
)
QUEUE_PAUSED = Gauge(
    "mailpulse_queue_paused",
    "Queues paused now, by pause reason (a label of `other` can count several queues).",
    (*QUEUE, "reason"),
)
QUEUE_PAUSE_AGE = Gauge(
    "mailpulse_queue_pause_age_seconds",
    "How long the longest pause in force has lasted, by pause reason.",
    (*QUEUE, "reason"),
)
QUEUE_INBOUND = Counter(
    "mailpulse_queue_inbound",
    "Emails accepted into queues.",
    QUEUE,
)
QUEUE_ATTEMPTED = Counter(
    "mailpulse_queue_attempted",
    "SMTP delivery attempts.",
    QUEUE,
)
QUEUE_OUTBOUND = Counter(
    "mailpulse_queue_outbound",
    "Emails accepted by the mailbox provider.",
    QUEUE,
)
BUSY_QUEUES = Gauge(
    "mailpulse_busy_queues",
    "Queues with mail waiting or a pause in force (uncapped count).",
)
OUTCOMES = Counter(
    "mailpulse_delivery_outcomes",
    "Emails that reached a status: delivered, soft_bounce or invalid, with its sub-reason.",
    ("status", "reason", "domain"),
)
SPAM_REPORTS = Counter(
    "mailpulse_spam_reports",
    "Emails reported as spam through feedback loops (first report of each email).",
    ("domain",),
)
SMTP_DURATION = Histogram(
    "mailpulse_smtp_delivery_duration_seconds",
    "Time of one SMTP delivery attempt, connection included, by attempt outcome.",
    ("outcome",),
)
SUPPRESSION_ENTRIES = Gauge(
    "mailpulse_suppression_entries",
    "Active entries of each suppression list, over all accounts.",
    ("list",),
)
EXPORT_TASKS = Gauge(
    "mailpulse_export_tasks",
    "Offline export tasks by status.",
    ("status",),
)
WEBSOCKET_CLIENTS = Gauge(
    "mailpulse_websocket_clients",
    "Console websocket clients connected, over every web process.",
)
LABELLED_DOMAINS = Gauge(
    "mailpulse_labelled_domains",
    "Recipient domains that have their own domain label; the others count as `other`.",
)
REDIS_UP = Gauge(
    "mailpulse_redis_up",
    "1 when Redis answered this scrape, else 0 (the other mailpulse metrics are then absent).",
)
REDIS_ROUNDTRIP = Gauge(
    "mailpulse_redis_roundtrip_seconds",
    "Round-trip time of one PING to Redis from the scraped process.",
)

ALL = (
    QUEUE_PENDING,
    QUEUE_PAUSED,
    QUEUE_PAUSE_AGE,
    QUEUE_INBOUND,
    QUEUE_ATTEMPTED,
    QUEUE_OUTBOUND,
    BUSY_QUEUES,
    OUTCOMES,
    SPAM_REPORTS,
    SMTP_DURATION,
    SUPPRESSION_ENTRIES,
    EXPORT_TASKS,
    WEBSOCKET_CLIENTS,
    LABELLED_DOMAINS,
    REDIS_UP,
    REDIS_ROUNDTRIP,
)
