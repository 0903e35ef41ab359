"""Reading suppression entries people give: API items and block-list CSV uploads.

Shared by the JSON API and the console so both refuse the same things with the
same words. A bad item or line never stops the good ones: each is answered on
its own, by index or line number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from queue_engine.records import parse_iso_ms
from queue_engine.suppression import MAX_REASON, EntryError, normalise_target

MAX_ITEMS = 1000
MAX_UPLOAD_LINES = 100_000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
CSV_COLUMNS = ("address", "api_user", "expires_at", "reason")


@dataclass(frozen=True, slots=True)
class Item:
    target: str
    api_user: str | None
    expires_ms: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ItemError:
    where: int
    """Index in the request's items, or 1-based line number of an upload."""
    field: str
    message: str


def parse_item(
    raw: Any,
    *,
    own_api_user: str | None,
    api_users: Collection[str],
    now_ms: int,
    with_details: bool,
) -> Item:
    """One `{"address" | "domain", "api_user"?, "expires_at"?, "reason"?}` object.

    An API_USER (Basic auth) may only touch its own entries; an account caller
    names any of its API_USERs, or none for an account-wide entry.
    """
    if not isinstance(raw, dict):
        raise EntryError("item", "must be an object with address or domain")
    allowed = {"address", "domain", "api_user"} | (
        {"expires_at", "reason"} if with_details else set()
    )
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        name = unknown[0]
        if name and len(name) <= 64 and name.isprintable():
            raise EntryError(name, "is not a field of this request")
        raise EntryError("item", f"has a field that is not one of {sorted(allowed)}")
    if ("address" in raw) == ("domain" in raw):
        raise EntryError("address", "give exactly one of address or domain")
    if "domain" in raw:
        value = raw["domain"]
        if not isinstance(value, str) or "@" in value.strip().lstrip("@"):
            raise EntryError("domain", "must be a domain name")
        target = normalise_target("@" + value.strip().lstrip("@"))
    else:
        value = raw["address"]
        if not isinstance(value, str) or "@" not in value.strip().lstrip("@"):
            raise EntryError("address", "must be an email address (use domain for a domain)")
        target = normalise_target(value)
    api_user = raw.get("api_user")
    if api_user is not None and (not isinstance(api_user, str) or api_user not in api_users):
        raise EntryError("api_user", "is not an API_USER of this account")
    if own_api_user is not None:
        if api_user not in (None, own_api_user):
            raise EntryError("api_user", "an API_USER can only manage its own entries")
        api_user = own_api_user
    expires_ms = None
    if raw.get("expires_at") is not None:
        if not isinstance(raw["expires_at"], str):
            raise EntryError("expires_at", "must be an ISO 8601 time")
        try:
            expires_ms = parse_iso_ms(raw["expires_at"])
        except ValueError:
            raise EntryError("expires_at", "is not an ISO 8601 time") from None
        if expires_ms <= now_ms:
            raise EntryError("expires_at", "is in the past")
    reason = raw.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise EntryError("reason", f"must be printable text of at most {MAX_REASON} characters")
    return Item(target, api_user, expires_ms, reason)


def parse_items(
    body: Any,
    *,
    own_api_user: str | None,
    api_users: Collection[str],
    now_ms: int,
    with_details: bool,
) -> tuple[list[tuple[int, Item]], list[ItemError]]:
    """`{"items": [...]}` → the good items with their index, and one error per bad item.

    Raises EntryError only when the body as a whole is unusable.
    """
    if not isinstance(body, dict) or set(body) != {"items"}:
        raise EntryError("items", 'the body must be {"items": [...]}')
    raw_items = body["items"]
    if not isinstance(raw_items, list) or not raw_items:
        raise EntryError("items", "must be a non-empty list")
    if len(raw_items) > MAX_ITEMS:
        raise EntryError("items", f"has {len(raw_items)} items; at most {MAX_ITEMS} per call")
    good: list[tuple[int, Item]] = []
    bad: list[ItemError] = []
    for index, raw in enumerate(raw_items):
        try:
            item = parse_item(
                raw,
                own_api_user=own_api_user,
                api_users=api_users,
                now_ms=now_ms,
                with_details=with_details,
            )
        except EntryError as exc:
            bad.append(ItemError(index, f"items[{index}].{exc.field}", str(exc)))
        else:
            good.append((index, item))
    return good, bad


def parse_block_csv(
    data: bytes, *, own_api_user: str | None, api_users: Collection[str], now_ms: int
) -> tuple[list[tuple[int, Item]], list[ItemError]]:
    """A block-list upload: one address or domain per line, optionally followed by
    api_user, expires_at and reason columns; a header row naming them is skipped.

    Returns the good entries and one error per bad line (1-based line numbers);
    raises EntryError when the file as a whole is unusable.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise EntryError("file", f"is larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EntryError("file", f"is not UTF-8 text (byte {exc.start})") from None
    good: list[tuple[int, Item]] = []
    bad: list[ItemError] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = 0
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if lines == 0 and cells[0].lower() in ("address", "domain", "email"):
                continue  # the header row
            lines += 1
            if lines > MAX_UPLOAD_LINES:
                raise EntryError("file", f"has more than {MAX_UPLOAD_LINES} lines")
            if len(cells) > len(CSV_COLUMNS):
                bad.append(ItemError(line, "line", f"has {len(cells)} columns; at most 4"))
                continue
            raw: dict[str, str] = {
                name: value for name, value in zip(CSV_COLUMNS, cells, strict=False) if value
            }
            target = raw.pop("address", "")
            raw["domain" if "@" not in target.lstrip("@") else "address"] = target
            try:
                item = parse_item(
                    raw,
                    own_api_user=own_api_user,
                    api_users=api_users,
                    now_ms=now_ms,
                    with_details=True,
                )
            except EntryError as exc:
                bad.append(ItemError(line, exc.field, str(exc)))
            else:
                good.append((line, item))
    except csv.Error as exc:
        bad.append(ItemError(reader.line_num, "line", f"is not valid CSV: {exc}"))
    if lines == 0 and not bad:
        raise EntryError("file", "has no entries")
    return good, bad
