"""Every Redis key and channel name mailpulse uses, in one place.

Keys of one queue share the hash tag `{api_user/domain}` so that the Lua
scripts touching a queue run unchanged on Redis Cluster. Other keys are
single-key structures and carry no tag, so an account's data spreads over
the cluster instead of piling onto one slot.
"""

from __future__ import annotations

WAKE_CHANNEL = "mailpulse:wake"
"""Published on enqueue and resume so idle engines start at once instead of at their next poll."""

QUEUES_DUE = "queues:due"
"""ZSET queue tag → earliest time (ms) something in the queue needs a worker."""

QUEUES_KNOWN = "queues:known"
"""SET of every queue tag ever used; the reconciler walks it to repair `QUEUES_DUE`."""

INBOUND_STREAM = "inbound:raw"
"""STREAM of raw messages received by the inbound SMTP server (DSN, ARF), for the classifier."""

ACCOUNTS = "accounts"


def account(name: str) -> str:
    return f"acct:{name}"


def account_key(key_hash: str) -> str:
    """Account API key (sha256 hex) → account name."""
    return f"acctkey:{key_hash}"


def account_api_users(name: str) -> str:
    return f"acct:{name}:api_users"


def console_user(email: str) -> str:
    return f"user:{email}"


def api_user(name: str) -> str:
    return f"au:{name}"


def message(message_id: str) -> str:
    """The MIME body shared by every recipient of one send call."""
    return f"msg:{message_id}"


def message_tracking(message_id: str) -> str:
    """The per-recipient plan of a tracked body (tracked_message.py); absent when untracked."""
    return f"msgt:{message_id}"


def email(email_id: str) -> str:
    """Status record of one (email, recipient)."""
    return f"em:{email_id}"


# Indexes: ZSETs with every score 0 whose members are email ids. Ids start with
# the request time in fixed-width hex, so ZRANGEBYLEX gives time ranges and an
# exact cursor in O(log n) without ties.


def index_all(account_name: str) -> str:
    return f"ix:{account_name}:all"


def index_api_user(account_name: str, api_user_name: str) -> str:
    return f"ix:{account_name}:au:{api_user_name}"


def index_address(account_name: str, address: str) -> str:
    return f"ix:{account_name}:addr:{address}"


def index_tag(account_name: str, tag: str) -> str:
    return f"ix:{account_name}:tag:{tag}"


def index_type(account_name: str, email_type: str) -> str:
    return f"ix:{account_name}:type:{email_type}"


def index_status(account_name: str, status: str, reason: str | None = None) -> str:
    if reason:
        return f"ix:{account_name}:st:{status}:{reason}"
    return f"ix:{account_name}:st:{status}"


# Export tasks (exports.py). They are few (each is deleted 7 days after it ends), so
# all their keys share one hash tag: claiming, heartbeats and finishing are each one
# Lua call over the task and the status sets, atomic on Redis Cluster too.


def export_task(task_id: str) -> str:
    """HASH of one export task: account, type, filter, status, progress, file."""
    return f"exp:{{exports}}:task:{task_id}"


def export_status(status: str) -> str:
    """ZSET of the task ids in one status, scored by what that status waits for:
    pending → queued ms, running → lease deadline ms, success/failed → expiry ms."""
    return f"exp:{{exports}}:st:{status}"


def export_account(account_name: str) -> str:
    """ZSET task id → created ms: one account's export tasks."""
    return f"exp:{{exports}}:acct:{account_name}"


def queue_tag(api_user_name: str, domain: str) -> str:
    return f"{api_user_name}/{domain}"


def split_queue_tag(tag: str) -> tuple[str, str]:
    api_user_name, _, domain = tag.partition("/")
    return api_user_name, domain


def queue_ready(tag: str) -> str:
    """ZSET email id → time (ms) of its next attempt."""
    return f"q:{{{tag}}}:ready"


def queue_lease(tag: str) -> str:
    """ZSET email id → lease deadline (ms) while a worker delivers it."""
    return f"q:{{{tag}}}:lease"


def queue_window(tag: str, counter: str) -> str:
    """ZSET of per-second buckets of one rate counter ("in", "att" or "out")."""
    return f"q:{{{tag}}}:w:{counter}"


def queue_pause(tag: str) -> str:
    """HASH reason, since_ms, until_ms, mp_reply while the queue is paused."""
    return f"q:{{{tag}}}:pause"


def queue_keys(tag: str) -> tuple[str, str, str]:
    """Ready, lease and pause keys of a queue, for reads of many queues at once."""
    return f"q:{{{tag}}}:ready", f"q:{{{tag}}}:lease", f"q:{{{tag}}}:pause"


def api_user_queues(api_user_name: str) -> str:
    """SET of the recipient domains an API_USER has queues for."""
    return f"au:{api_user_name}:queues"


# Limits (policy.py). Keys of one limit share a hash tag so each check is one Lua call.


def quota(scope: str, name: str, window: str, index: int) -> str:
    """Counter of one fixed quota window: scope "dom" (provider) or "ip", window "h" or "d"."""
    return f"quota:{{{scope}:{name}}}:{window}:{index}"


def connection_slots(source: str, provider: str) -> str:
    """ZSET of open connections (slot id -> expiry ms) of one (sending IP, provider)."""
    return f"conn:{{{source}/{provider}}}:open"


def connection_rate(source: str, provider: str, minute: int) -> str:
    """New connections opened in one clock minute by one (sending IP, provider)."""
    return f"conn:{{{source}/{provider}}}:new:{minute}"


# Suppression lists (suppression.py). A list is split into SUPPRESSION_BUCKETS small
# buckets so each stays in Redis's compact listpack encoding; all keys of one scope
# (the global bounce list, or one account) share a hash tag, so a batch check is one
# Lua call per scope on Redis Cluster.

BOUNCE_SCOPE = "bounce"


def suppression_scope(account_name: str) -> str:
    return f"a:{account_name}"


def suppression_prefix(scope: str) -> str:
    """Prefix of every key of one scope; the Lua scripts derive bucket keys from it."""
    return f"sup:{{{scope}}}:"


def suppression_meta(scope: str) -> str:
    """HASH list → entry count, and list:kind → count per kind (a, d, sa, sd)."""
    return f"sup:{{{scope}}}:meta"


# Metrics (stats.py, domain_labels.py): totals and gauges Prometheus reads. A
# scrape reads each of these whole, in one command; they carry no hash tag.

METRIC_DOMAINS = "metrics:domains"
"""SET of the recipient domains that get their own `domain` label; the rest are "other"."""

METRIC_REBALANCE = "metrics:rebalance"
"""Taken (SET NX EX) by the process that re-ranks METRIC_DOMAINS: one re-ranking per period."""

METRIC_QUEUE_TOTALS = "metrics:queues"
"""HASH "<api_user>/<domain label>|<inbound|attempted|outbound>" → emails (attempts)."""

METRIC_OUTCOMES = "metrics:outcomes"
"""HASH "<status>|<reason>|<domain label>" → emails that reached that status."""

METRIC_SPAM_REPORTS = "metrics:spam_reports"
"""HASH domain label → emails reported as spam (the first report of each)."""

METRIC_SMTP_SECONDS = "metrics:smtp_seconds"
"""HASH "<outcome>|<bucket index>" → SMTP attempts, and "<outcome>|sum_us": a histogram."""

METRIC_WS_CLIENTS = "metrics:ws_clients"
"""HASH web process → "<connected clients>:<reported at ms>"."""


def metric_volume(day: int) -> str:
    """HASH recipient domain → emails queued on one UTC day (days since the epoch)."""
    return f"metrics:volume:{day}"


def suppression_log(scope: str) -> str:
    """Capped STREAM of changes people made to a scope's lists: who (origin), what, when."""
    return f"sup:{{{scope}}}:log"


def rate_counter(scope: str, who: str, window: int) -> str:
    """Events of one fixed window of a web rate limit (api, auth failures, logins)."""
    return f"rl:{scope}:{who}:{window}"
