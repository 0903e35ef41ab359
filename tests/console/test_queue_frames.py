"""Each tick sends only what changed: numbers of the queues that moved, as JSON inside the
summary, and rows only when their look changed."""

from __future__ import annotations

import json
import re
from typing import Any

from queue_engine.queues import Pause
from queue_engine.snapshot import STALE_PAUSE_MS, QueueStatus
from queue_engine.statuses import PauseReason
from queue_engine.windows import WINDOWS, Rates
from web.console.queue_frames import QueueFrames, Shown, Snapshot, row_id
from web.console.templating import environment
from web.ws_hub import Tick

NOW = 1_800_000_000_000
USER = "acme-tx"


def _status(domain: str, pending: int = 3, per_second: float = 0.0, **kw: Any) -> QueueStatus:
    rates = {w: Rates(per_second, per_second, per_second) for w in WINDOWS}
    return QueueStatus(USER, domain, pending, rates, kw.get("pause"), kw.get("now", NOW))


def _paused(domain: str, now: int = NOW, since: int = NOW - 60_000) -> QueueStatus:
    pause = Pause(PauseReason.IP_QUOTA, since, NOW + 3_600_000, "451 Ip frequency limited")
    return _status(domain, pause=pause, now=now)


def _tick(frames: QueueFrames, shown: Shown, *queues: QueueStatus) -> tuple[Tick, Shown]:
    now = max((q.now_ms for q in queues), default=NOW)
    tick, point, shown = frames.tick(Snapshot(list(queues), [USER], now), shown)
    assert point["t"] == now and set(point["q"]) == {row_id(q.api_user, q.domain) for q in queues}
    return tick, shown


def _rid(domain: str) -> str:
    return row_id(USER, domain)


def _numbers(html: str) -> Any:
    found = re.search(r'<template class="numbers">(.*?)</template>', html)
    assert found, html[:200]
    return json.loads(found.group(1))


def _rows_in(html: str) -> list[str]:
    return re.findall(r'<tbody[^>]*? id="([^"]+)"', html)


def test_a_quiet_tick_sends_no_row_and_a_new_client_still_gets_every_row():
    frames = QueueFrames(environment())
    queues = [_status(f"d{i}.example", per_second=1.4) for i in range(50)]
    first, shown = _tick(frames, Shown(), *queues)
    assert first.delta == first.full  # nothing shown before: the whole list
    (full_html,) = first.full
    numbers = _numbers(full_html)
    assert numbers["full"] == 1 and numbers["q"][_rid("d0.example")] == [
        3,
        7,
        7,
        7,
        21,
        21,
        21,
        42,
        42,
        42,
    ]
    assert len(_rows_in(full_html)) == 50

    later = [_status(q.domain, per_second=1.4, now=NOW + 5000) for q in queues]
    second, _ = _tick(frames, shown, *later)
    (summary,) = second.delta  # one message, no rows
    assert _numbers(summary)["q"] == {} and "full" not in _numbers(summary)
    assert summary.startswith('<div id="queue-summary"') and "<tbody" not in summary
    assert len(summary) < len(second.full[0]) / 10
    # The full state of this tick, for a page that connects now, has them all.
    assert len(_rows_in(second.full[0])) == 50


def test_moved_numbers_travel_as_json_without_their_row():
    frames = QueueFrames(environment())
    _, shown = _tick(frames, Shown(), _status("a.example"), _status("b.example"))
    tick, _ = _tick(frames, shown, _status("a.example", pending=4), _status("b.example"))
    (summary,) = tick.delta
    assert _numbers(summary)["q"] == {_rid("a.example"): [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]}
    assert "<tbody" not in summary


def test_a_row_whose_look_changed_is_resent_alone_and_swapped_by_id():
    frames = QueueFrames(environment())
    _, shown = _tick(frames, Shown(), _status("a.example"), _status("b.example"))
    tick, shown = _tick(frames, shown, _status("a.example"), _paused("b.example"))
    rows, summary = tick.delta
    # Rows in their own frame, starting with the <tbody> (the browser's parser needs it).
    assert rows.startswith('<tbody hx-swap-oob="true" id="' + _rid("b.example"))
    assert _rows_in(rows) == [_rid("b.example")] and "Resume" in rows and "<tbody" not in summary
    # Its relative times move on, its look does not: not resent.
    later = NOW + 5000
    tick, shown = _tick(frames, shown, _status("a.example", now=later), _paused("b.example", later))
    assert len(tick.delta) == 1
    # Once it has been paused for over two days, it is resent to stand out.
    stale = NOW - STALE_PAUSE_MS - 1000
    tick, shown = _tick(frames, shown, _status("a.example"), _paused("b.example", since=stale))
    assert 'class="badge paused stale"' in tick.delta[0]
    # A pause that has run out (not yet cleared in Redis) shows as active again.
    ended = _paused("b.example", now=NOW + 3_700_000, since=stale)
    tick, _ = _tick(frames, shown, _status("a.example", now=NOW + 3_700_000), ended)
    assert _rows_in(tick.delta[0]) == [_rid("b.example")] and "badge active" in tick.delta[0]


def test_new_rows_are_appended_and_gone_rows_deleted():
    frames = QueueFrames(environment())
    _, shown = _tick(frames, Shown(), _status("a.example"), _status("b.example"))
    tick, _ = _tick(frames, shown, _status("b.example"), _status("c.example", pending=9))
    rows, summary = tick.delta
    numbers = _numbers(summary)
    assert numbers["gone"] == [_rid("a.example")]
    assert list(numbers["q"]) == [_rid("c.example")]
    assert rows == f'<tbody id="{_rid("a.example")}" hx-swap-oob="delete"></tbody>'
    added = summary[summary.index("<table") :]
    assert added.startswith('<table hx-swap-oob="beforeend:#queue-table">')
    assert _rows_in(added) == [_rid("c.example")]
    assert _rows_in(tick.full[0]) == [_rid("b.example"), _rid("c.example")]


def test_to_and_from_no_queues_the_list_is_sent_whole():
    frames = QueueFrames(environment())
    _, shown = _tick(frames, Shown(), _status("a.example"))
    empty, shown = _tick(frames, shown)
    assert empty.delta == empty.full and "No active queues" in empty.delta[0]
    back, _ = _tick(frames, shown, _status("a.example"))
    assert back.delta == back.full and _rows_in(back.delta[0]) == [_rid("a.example")]


def test_the_numbers_stay_text_whatever_they_hold():
    frames = QueueFrames(environment())
    odd = "</template><b>&amp;"
    html = frames.summary(Snapshot([], [USER], NOW), {"t": NOW, "q": {odd: [1]}})
    assert odd not in html and _numbers(html)["q"] == {odd: [1]}
