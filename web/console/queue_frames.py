"""The queue page's live frames: each tick, only what changed since the previous one.

A tick is HTML that htmx swaps in by id: the rows whose look changed (status,
pause), if any, then the summary, which carries the numbers (pending and the
three windows' counts of each queue whose numbers moved, small integers) as
JSON in an inert <template>, and any new rows. Rows hold no numbers, so a busy
queue whose counts move every tick costs a few dozen bytes instead of a
re-rendered row, and a quiet tick is one small message. The delta is made
once per account per tick, together with the full state that a page that has
just connected gets (web/ws_hub.py picks which one each client needs).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup

from queue_engine import keys
from queue_engine.snapshot import QueueStatus
from queue_engine.windows import WINDOWS, Rates
from web.console.templating import duration
from web.ws_hub import Tick

_BETWEEN_TAGS = re.compile(r">\s+<")
"""Indentation between tags: a quarter of a row's bytes, times every client."""

_ROW_START = "<tbody "

Numbers = list[int]
"""Pending, then the inbound, attempted and outbound counts of each window in
WINDOWS order: the page divides a count by its window for the rate."""

Look = tuple[Any, ...]


def row_id(api_user: str, domain: str) -> str:
    """An id safe in CSS selectors whatever the names hold."""
    tag = keys.queue_tag(api_user, domain).encode()
    return "q-" + hashlib.blake2s(tag, digest_size=6).hexdigest()


def _counts(pending: int, rates: dict[int, Rates]) -> Numbers:
    numbers = [pending]
    for w in WINDOWS:
        r = rates[w]
        numbers += [round(r.inbound * w), round(r.attempted * w), round(r.outbound * w)]
    return numbers


def numbers(q: QueueStatus) -> Numbers:
    return _counts(q.pending, q.rates)


def look(q: QueueStatus) -> Look:
    """Everything a row shows but its numbers and its relative times (the page
    keeps those fresh itself): the row is re-rendered and resent when this changes."""
    pause = q.pause if q.paused else None
    stale_for = duration(q.now_ms - pause.since_ms) if pause is not None and q.stale else ""
    return (q.api_user, q.domain, pause, stale_for)


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: list[QueueStatus]
    api_users: list[str]
    now_ms: int

    @property
    def totals(self) -> dict[int, Rates]:
        return {
            w: Rates(
                sum(q.rates[w].inbound for q in self.queues),
                sum(q.rates[w].attempted for q in self.queues),
                sum(q.rates[w].outbound for q in self.queues),
            )
            for w in WINDOWS
        }

    def total_numbers(self) -> Numbers:
        return _counts(sum(q.pending for q in self.queues), self.totals)


@dataclass(slots=True)
class Shown:
    """What the last published tick showed, which the next delta is taken against."""

    rows: dict[str, tuple[Look, str]] = field(default_factory=dict)
    numbers: dict[str, Numbers] = field(default_factory=dict)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _oob(row: str) -> str:
    """A row swapped in place of the one with its id."""
    assert row.startswith(_ROW_START), row[:40]
    return '<tbody hx-swap-oob="true" ' + row[len(_ROW_START) :]


class QueueFrames:
    def __init__(self, templates: jinja2.Environment) -> None:
        self._row = templates.get_template("partials/queue_row.html")
        self._list = templates.get_template("partials/queue_list.html")
        self._summary = templates.get_template("partials/queue_summary.html")

    def row(self, q: QueueStatus, window: int | None = None, csrf: str | None = None) -> str:
        """A row without its numbers; the page's own render (`window`) has them."""
        html = self._row.render(q=q, row_id=row_id, window=window, csrf=csrf)
        return _BETWEEN_TAGS.sub("><", html.strip())

    def queue_list(self, rows: list[str], oob: bool) -> str:
        html = self._list.render(rows=rows, oob=oob)
        return _BETWEEN_TAGS.sub("><", html.strip())

    def summary(self, snapshot: Snapshot, numbers: dict[str, Any]) -> str:
        # Not autoescaped (each quote would become five bytes, for every client): with
        # "<" and "&" written as JSON escapes, HTML reads it back as the same text.
        text = _compact(numbers).replace("<", "\\u003c").replace("&", "\\u0026")
        block = Markup(text)  # noqa: S704 (made safe just above)
        html = self._summary.render(snap=snapshot, windows=WINDOWS, oob=True, numbers=block)
        return _BETWEEN_TAGS.sub("><", html.strip())

    def tick(self, snapshot: Snapshot, shown: Shown) -> tuple[Tick, dict[str, Any], Shown]:
        """This tick's full and delta frames, its chart point (kept for history
        requests) and what it shows. Unchanged rows reuse their HTML: no render."""
        rows: dict[str, tuple[Look, str]] = {}
        changed: list[str] = []
        added: list[str] = []
        numbers_now: dict[str, Numbers] = {}
        for q in snapshot.queues:
            rid = row_id(q.api_user, q.domain)
            numbers_now[rid] = numbers(q)
            before = shown.rows.get(rid)
            now_look = look(q)
            if before is not None and before[0] == now_look:
                rows[rid] = before
                continue
            rows[rid] = (now_look, self.row(q))
            (changed if before is not None else added).append(rid)
        gone = [rid for rid in shown.rows if rid not in rows]
        point = {"t": snapshot.now_ms, "total": snapshot.total_numbers(), "q": numbers_now}
        full_list = self.queue_list([html for _, html in rows.values()], oob=True)
        full = (self.summary(snapshot, {"full": 1, **point}) + full_list,)
        if not rows or not shown.rows:
            # To or from the empty table: the list is one block either way.
            return Tick(full, full), point, Shown(rows, numbers_now)
        moved = {rid: n for rid, n in numbers_now.items() if shown.numbers.get(rid) != n}
        delta_numbers = {"t": snapshot.now_ms, "total": point["total"], "q": moved}
        if gone:
            delta_numbers["gone"] = gone
        # Rows in a frame of their own: htmx parses a message as the content of a
        # <template>, whose first element decides the parsing mode, and a <tbody>
        # after a <div> would be dropped.
        rows_html = [f'<tbody id="{rid}" hx-swap-oob="delete"></tbody>' for rid in gone]
        rows_html += [_oob(rows[rid][1]) for rid in changed]
        summary = self.summary(snapshot, delta_numbers)
        if added:
            # A row that is not on the page yet goes at the table's end (the page sorts).
            new = "".join(rows[rid][1] for rid in added)
            summary += f'<table hx-swap-oob="beforeend:#queue-table">{new}</table>'
        # The summary last: its numbers fill the rows, and the tick has landed with it.
        delta = (*(["".join(rows_html)] if rows_html else []), summary)
        return Tick(full, delta), point, Shown(rows, numbers_now)
