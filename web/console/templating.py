"""The console's Jinja environment: autoescaped templates and number/time filters.

Times are rendered as `<time>` elements with the exact UTC time on hover; the
console's script keeps their relative wording fresh between page loads.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from markupsafe import Markup, escape
from starlette.templating import Jinja2Templates

from queue_engine.records import iso
from web.console import wording

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
NONE = "\u2013"
"""An en dash where a value is missing."""


def thousands(value: int | float | None) -> str:
    return NONE if value is None else f"{round(value):,}"


def rate(per_second: float) -> str:
    """Per-second rates: one decimal below 10/s, whole numbers above."""
    if per_second == 0:
        return "0"
    if per_second < 10:
        return f"{per_second:,.1f}".rstrip("0").rstrip(".") or "0"
    return f"{per_second:,.0f}"


def duration(ms: int) -> str:
    seconds = max(0, ms // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            smaller = {"d": ("h", 3600), "h": ("min", 60)}.get(unit)
            if smaller and rest >= smaller[1]:
                return f"{whole} {unit} {rest // smaller[1]} {smaller[0]}"
            return f"{whole} {unit}"
    return f"{seconds} s"


def relative(ms: int, now_ms: int) -> str:
    delta = now_ms - ms
    if abs(delta) < 5000:
        return "just now"
    return f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}"


def _ms(value: int | str) -> int:
    if isinstance(value, int):
        return value
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def timeago(value: int | str | None, css: str = "ago") -> Markup:
    """A `<time>` saying "3 min ago" (or "in 40 s"), exact UTC time on hover."""
    if value is None or value == "":
        return escape(NONE)
    ms = _ms(value)
    exact = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time class="{}" datetime="{}" title="{}">{}</time>').format(
        css, iso(ms), exact, relative(ms, int(time.time() * 1000))
    )


def exact(value: int | str | None) -> str:
    if value is None or value == "":
        return NONE
    return datetime.fromtimestamp(_ms(value) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        thousands=thousands,
        rate=rate,
        timeago=timeago,
        timeago_text=lambda ms: relative(ms, int(time.time() * 1000)),
        exact_iso=iso,
        exact=exact,
        reason_label=wording.reason_label,
        duration=duration,
    )
    env.globals.update(wording=wording)
    return env


def templates() -> Jinja2Templates:
    return Jinja2Templates(env=environment())
