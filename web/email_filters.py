"""The S4 email filters read from query parameters, for the API and the console alike."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from queue_engine.accounts import EmailType, Principal
from queue_engine.queries import MAX_PERIOD_MS, EmailFilter
from queue_engine.records import is_email_id
from queue_engine.statuses import REASONS, Status
from web.errors import ApiError
from web.requests import parse_time

MAX_PAGE = 1000
FILTERS = ("address", "type", "tag", "api_user", "status", "reason", "start", "end")
PAGING = ("limit", "cursor")


@dataclass(frozen=True, slots=True)
class EmailQuery:
    filter: EmailFilter | None
    """None when an API_USER asks for another API_USER's mail: an empty answer, not an error."""
    limit: int
    cursor: str | None


def parse_email_query(
    q: Mapping[str, str], principal: Principal, default_limit: int = 100
) -> EmailQuery:
    """Every filter checked, with the field at fault named in the ApiError."""
    for name in q:
        if name not in FILTERS and name not in PAGING:
            raise ApiError(400, "unknown filter", field=name)
    f = parse_email_filter(q, principal)
    limit = int_param(q.get("limit", str(default_limit)), "limit", 1, MAX_PAGE)
    cursor = q.get("cursor") or None
    if cursor is not None and not is_email_id(cursor):
        raise ApiError(400, "not a cursor from a previous page", field="cursor")
    return EmailQuery(f, limit, cursor)


def parse_email_filter(
    q: Mapping[str, str],
    principal: Principal,
    *,
    max_period_ms: int | None = MAX_PERIOD_MS,
    earliest_ms: int = 0,
    field_prefix: str = "",
) -> EmailFilter | None:
    """The FILTERS of q (other names are the caller's to check). Without a period limit
    (exports) the period starts by default, and at the latest, at `earliest_ms`.

    None when an API_USER asks for another API_USER's mail, which it cannot see."""
    end_field, start_field = field_prefix + "end", field_prefix + "start"
    end = parse_time(end_field, q["end"]) if "end" in q else int(time.time() * 1000)
    if "start" in q:
        start = max(parse_time(start_field, q["start"]), earliest_ms)
    else:
        start = earliest_ms if max_period_ms is None else end - max_period_ms
    if start > end:
        raise ApiError(400, "start is after end", field=start_field)
    if max_period_ms is not None and end - start > max_period_ms:
        raise ApiError(400, "a query covers at most 30 days (end - start)", field=end_field)
    status = q.get("status") or None
    if status is not None and status not in set(Status):
        raise ApiError(
            400, f"status must be one of {', '.join(Status)}", field=field_prefix + "status"
        )
    reason = q.get("reason") or None
    if reason is not None:
        allowed = REASONS[Status(status)] if status else set().union(*REASONS.values())
        if reason not in allowed:
            raise ApiError(
                400,
                f"reason {reason!r} does not go with this status",
                field=field_prefix + "reason",
            )
    email_type = q.get("type") or None
    if email_type is not None and email_type not in set(EmailType):
        raise ApiError(400, "type must be transactional or marketing", field=field_prefix + "type")
    api_user = q.get("api_user") or None
    if principal.api_user:
        if api_user not in (None, principal.api_user):
            return None
        api_user = principal.api_user
    return EmailFilter(
        start_ms=start,
        end_ms=end,
        address=(q.get("address") or "").strip().lower() or None,
        type=email_type,
        tag=q.get("tag") or None,
        api_user=api_user,
        status=status,
        reason=reason,
    )


def int_param(raw: str, name: str, low: int, high: int) -> int:
    # isdigit() alone admits '²' and 5000-digit strings, which int() refuses (a 500).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise ApiError(400, f"must be an integer from {low} to {high}", field=name)
    return int(raw)
