"""The console's HTML routes for the OpenAPI document, which lists every route of the app.

They answer HTML for a browser with a session cookie, not JSON; `WS /ws/queues`
is described in the README, since OpenAPI has no websockets.
"""

from __future__ import annotations

from typing import Any

_SEE_OTHER = {"303": {"description": "redirect (to the login form without a session)"}}
_FORBIDDEN = {"403": {"description": "the form's CSRF token is missing or wrong"}}


def _page(
    summary: str, responses: dict[str, Any] | None = None, params: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "tags": ["console"],
        "summary": summary,
        "security": [],
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ],
        "responses": {"200": {"description": "an HTML page"}, **_SEE_OTHER, **(responses or {})},
    }


CONSOLE_PATHS: dict[str, Any] = {
    "/": {"get": _page("Console: live queue status (rates, pauses, Resume)")},
    "/login": {
        "get": _page("Console: login form"),
        "post": _page(
            "Console: log in (email, password, csrf_token form fields)",
            _FORBIDDEN,
        ),
    },
    "/logout": {"post": _page("Console: log out (csrf_token form field)", _FORBIDDEN)},
    "/queues/{api_user}/{domain}/resume": {
        "post": _page(
            "Console: Resume a paused queue from a plain form (the page uses the websocket)",
            _FORBIDDEN,
            ("api_user", "domain"),
        )
    },
    "/emails": {
        "get": _page("Console: email status, filtered as GET /v1/emails (a bad filter is named)")
    },
    "/emails/{email_id}": {
        "get": _page(
            "Console: one email with its delivery log, opens and clicks",
            {"404": {"description": "not in this account"}},
            ("email_id",),
        )
    },
    "/suppressions": {
        "get": _page("Console: the suppression lists, and a check of one address (?address=)")
    },
    "/suppressions/{kind}": {
        "get": _page(
            "Console: one list (bounces, complaints, blocks, unsubscribes, exemptions), filtered",
            {"404": {"description": "no such list"}},
            ("kind",),
        )
    },
    "/suppressions/{kind}/add": {
        "post": _page(
            "Console: add an entry (target, api_user, expires_at, reason, csrf_token)",
            {**_FORBIDDEN, "400": {"description": "the form names the bad field"}},
            ("kind",),
        )
    },
    "/suppressions/{kind}/delete": {
        "post": _page(
            "Console: delete selected entries; without confirm=yes it shows the confirmation",
            _FORBIDDEN,
            ("kind",),
        )
    },
    "/exports": {
        "get": _page("Console: export tasks with live progress, and a form to start one"),
        "post": _page(
            "Console: start an export (export_type, the S4 filters, csrf_token)",
            {**_FORBIDDEN, "400": {"description": "the page names the bad filter"}},
        ),
    },
    "/exports/table": {"get": _page("Console: the export table alone (the page polls it)")},
    "/exports/{task_id}/retry": {
        "post": _page("Console: retry a failed export (csrf_token)", _FORBIDDEN, ("task_id",))
    },
    "/exports/{task_id}/download": {
        "get": _page(
            "Console: download an export's gzip CSV",
            {"404": {"description": "not this account's, expired, or without a file"}},
            ("task_id",),
        )
    },
    "/suppressions/blocks/upload": {
        "post": _page(
            "Console: upload a block-list CSV (multipart file, csrf_token); bad lines listed",
            {**_FORBIDDEN, "207": {"description": "some lines refused, listed by number"}},
        )
    },
}
