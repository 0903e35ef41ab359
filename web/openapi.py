"""The OpenAPI document of the JSON API, kept beside the routes it describes.

A test checks that every API route of the app appears here, so the document
cannot silently fall behind the code.
"""

from __future__ import annotations

from typing import Any

from queue_engine.exports import ExportType
from web.console.openapi_paths import CONSOLE_PATHS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


_EMAIL = {
    "type": "object",
    "properties": {
        "email_id": {"type": "string"},
        "api_user": {"type": "string"},
        "recipient": {"type": "string"},
        "type": {"type": "string", "enum": ["transactional", "marketing"]},
        "tag": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["requesting", "delivered", "soft_bounce", "invalid"]},
        "reason": {"type": ["string", "null"]},
        "request_time": {"type": "string", "format": "date-time"},
        "request_ip": {"type": "string"},
        "send_time": {"type": ["string", "null"], "format": "date-time"},
        "sending_ip": {"type": ["string", "null"]},
        "mp_reply": {"type": ["string", "null"]},
        "delivery_log": {"type": "array", "items": {"type": "object"}},
        "billable": {"type": "boolean"},
        "attempts": {"type": "integer"},
        "opens": {
            "type": "array",
            "description": "the latest 20 opens (SPEC O1): time, ip, user_agent",
            "items": {"type": "object"},
        },
        "clicks": {
            "type": "array",
            "description": "the latest 20 clicks (SPEC O1): time, url, ip, user_agent",
            "items": {"type": "object"},
        },
        "open_count": {"type": "integer", "description": "every open, exactly"},
        "click_count": {"type": "integer", "description": "every click, exactly"},
        "complaint": {
            "type": ["object", "null"],
            "description": "the latest spam report (ARF): time, feedback_type, user_agent, "
            "source_ip, arrival_date",
        },
        "unsubscribe": {
            "type": ["object", "null"],
            "description": "the recipient unsubscribed through this email: time, reason",
        },
    },
}

_QUEUE_PATH = [
    {"name": "api_user", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "domain", "in": "path", "required": True, "schema": {"type": "string"}},
]

_QUEUE = {
    "type": "object",
    "properties": {
        "api_user": {"type": "string"},
        "domain": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "paused"]},
        "pending": {"type": "integer"},
        "rates": {
            "type": "object",
            "description": "per-second averages over the window",
            "properties": {k: {"type": "number"} for k in ("inbound", "attempted", "outbound")},
        },
        "pause": {
            "type": ["object", "null"],
            "properties": {
                "reason": {
                    "type": "string",
                    "enum": ["domain_quota", "ip_quota", "ip_connection_rate", "manual"],
                },
                "since": {"type": "string", "format": "date-time"},
                "next_outbound_at": {"type": "string", "format": "date-time"},
                "mp_reply": {"type": ["string", "null"]},
                "stale": {"type": "boolean", "description": "paused for over 2 days (SPEC Q5)"},
            },
        },
    },
}

_FILTERS = [
    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
    for n, d in [
        ("address", "recipient address"),
        ("type", "transactional or marketing"),
        ("tag", "tag given at send"),
        ("api_user", "API_USER"),
        ("status", "requesting, delivered, soft_bounce or invalid"),
        ("reason", "sub-reason of the status"),
        ("start", "ISO 8601; default end - 30 days"),
        ("end", "ISO 8601; default now; end - start <= 30 days"),
        ("limit", "1..1000, default 100"),
        ("cursor", "next_cursor of the previous page"),
    ]
]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "mailpulse", "version": "1"},
    "components": {
        "securitySchemes": {
            "apiUser": {"type": "http", "scheme": "basic", "description": "api_user:api_key"},
            "accountKey": {"type": "http", "scheme": "bearer", "description": "account API key"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": ["string", "null"]},
                        },
                    }
                },
            },
            "Email": _EMAIL,
            "Queue": _QUEUE,
        },
    },
    "security": [{"apiUser": []}, {"accountKey": []}],
    "paths": {
        "/v1/mail/send": {
            "post": {
                "summary": "Accept an email for up to 1000 recipients",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["from", "to"],
                                "properties": {
                                    "from": {"type": "string"},
                                    "to": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                        "minItems": 1,
                                        "maxItems": 1000,
                                    },
                                    "subject": {"type": "string"},
                                    "html": {"type": "string"},
                                    "text": {"type": "string"},
                                    "tag": {"type": "string", "maxLength": 64},
                                    "headers": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "api_user": {
                                        "type": "string",
                                        "description": "with an account key only",
                                    },
                                    "tracking": {
                                        "type": "object",
                                        "description": "open pixel and tracked HTML links are "
                                        "on by default; text_links also tracks the text part",
                                        "properties": {
                                            "opens": {"type": "boolean", "default": True},
                                            "clicks": {"type": "boolean", "default": True},
                                            "text_links": {"type": "boolean", "default": False},
                                        },
                                    },
                                    "unsubscribe": {
                                        "type": "boolean",
                                        "default": False,
                                        "description": "List-Unsubscribe (RFC 8058) on a "
                                        "transactional email too; marketing email always has it",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "accepted; one email id per recipient, in order",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "email_ids": {"type": "array", "items": {"type": "string"}}
                                    },
                                }
                            }
                        },
                    },
                    **_errors(400, 401, 413, 415),
                },
            }
        },
        "/v1/emails": {
            "get": {
                "summary": "Email status records, newest first",
                "parameters": _FILTERS,
                "responses": {
                    "200": {
                        "description": "a page",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Email"},
                                        },
                                        "next_cursor": {"type": ["string", "null"]},
                                    },
                                }
                            }
                        },
                    },
                    **_errors(400, 401),
                },
            }
        },
        "/v1/emails/{email_id}": {
            "get": {
                "summary": "One email status record",
                "parameters": [
                    {
                        "name": "email_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the record",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Email"}}
                        },
                    },
                    **_errors(401, 404),
                },
            }
        },
        "/v1/queues": {
            "get": {
                "summary": "Queues (API_USER x recipient domain): pending, rates, pause",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "schema": {"type": "integer", "enum": [5, 15, 30]},
                        "description": "rate window in seconds (default 5)",
                    },
                    {"name": "api_user", "in": "query", "schema": {"type": "string"}},
                    {"name": "domain", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "include_idle",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "also queues with nothing pending, no rate and no pause",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "queue statuses",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "queues": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Queue"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    **_errors(400, 401),
                },
            }
        },
        "/v1/queues/{api_user}/{domain}/resume": {
            "post": {
                "summary": "End a pause now; delivery restarts within a second",
                "parameters": _QUEUE_PATH,
                "responses": {
                    "200": {"description": "{resumed: bool, queue}"},
                    **_errors(401, 404),
                },
            }
        },
        "/v1/queues/{api_user}/{domain}/pause": {
            "post": {
                "summary": "Pause a queue by hand (reason manual)",
                "parameters": _QUEUE_PATH,
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "seconds": {
                                        "type": "number",
                                        "minimum": 1,
                                        "maximum": 2592000,
                                        "default": 604800,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "{queue}"}, **_errors(400, 401, 404)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and storage check",
                "security": [],
                "responses": {"200": {"description": "ok"}, "503": {"description": "storage down"}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format 0.0.4): queues, outcomes, SMTP"
                " latency, suppression lists, exports, Redis; the same from every web process",
                "description": "Open unless MAILPULSE_METRICS_TOKEN (then `Authorization:"
                " Bearer <token>`) or MAILPULSE_METRICS_ALLOW (client networks) is set.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 403),
                },
            }
        },
    },
}


def _suppression_paths() -> dict[str, Any]:
    """The five lists share one shape; which methods each takes is what differs."""
    entry = {
        "type": "object",
        "properties": {
            "address": {"type": "string"},
            "domain": {"type": "string", "description": "instead of address: a whole domain"},
            "list": {"type": "string"},
            "api_user": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "origin": {
                "type": "string",
                "enum": ["mp", "dsn", "arf", "recipient", "api", "console"],
            },
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "count": {"type": "integer", "description": "bounces: N of SPEC B3"},
        },
    }
    item = {
        "type": "object",
        "properties": {
            "address": {"type": "string"},
            "domain": {"type": "string"},
            "api_user": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string", "maxLength": 200},
        },
    }
    items_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "maxItems": 1000, "items": item}},
                }
            }
        },
    }
    per_item = {
        "200": {"description": "every item applied: {added|removed, ..., results: [...]}"},
        "207": {"description": "some items applied; results name each bad item's field"},
        **_errors(400, 401, 413, 415),
    }
    filters = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("address", "domain", "api_user", "start", "end", "limit", "cursor")
    ]
    listing = {
        "200": {
            "description": "{items, next_cursor}",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": entry},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                }
            },
        },
        **_errors(400, 401, 404),
    }
    paths: dict[str, Any] = {}
    for name, writable, deletable in (
        ("bounces", False, False),
        ("blocks", True, True),
        ("complaints", False, True),
        ("unsubscribes", True, True),
        ("exemptions", True, True),
    ):
        ops: dict[str, Any] = {
            "get": {
                "summary": f"List the {name} entries"
                + (" (global list: address required)" if name == "bounces" else ""),
                "parameters": filters,
                "responses": listing,
            }
        }
        if writable:
            ops["post"] = {
                "summary": f"Add {name} entries",
                "requestBody": items_body,
                "responses": per_item,
            }
        if deletable:
            ops["delete"] = {
                "summary": f"Delete {name} entries"
                + (" (the answer warns: repeat complaints)" if name == "complaints" else ""),
                "requestBody": items_body,
                "responses": per_item,
            }
        paths[f"/v1/suppressions/{name}"] = ops
    paths["/v1/suppressions/blocks/upload"] = {
        "post": {
            "summary": "Upload a block list: CSV lines address-or-domain[,api_user,expires_at,"
            "reason], at most 100,000; bad lines are reported by number",
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            },
            "responses": per_item,
        }
    }
    paths["/v1/suppressions/check"] = {
        "get": {
            "summary": "Which lists block an address, why and until when",
            "parameters": [
                {"name": "address", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "{address, blocked, exempt, entries}"},
                **_errors(400, 401),
            },
        }
    }
    return paths


SPEC["paths"].update(_suppression_paths())

_TOKEN = [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]
_PAGE: dict[str, Any] = {"content": {"text/html": {}}}
SPEC["paths"].update(
    {
        "/t/o/{token}": {
            "get": {
                "summary": "Open pixel: records an open, answers a 1x1 GIF (no-store)",
                "security": [],
                "parameters": _TOKEN,
                "responses": {
                    "200": {"description": "the GIF", "content": {"image/gif": {}}},
                    **_errors(404),
                },
            }
        },
        "/t/c/{token}": {
            "get": {
                "summary": "Tracked link: records a click, redirects to the link of the email",
                "security": [],
                "parameters": _TOKEN,
                "responses": {
                    "302": {"description": "Location: the original URL"},
                    **_errors(404),
                },
            }
        },
        "/u/{token}": {
            "get": {
                "summary": "Unsubscribe page: asks to confirm and for a reason; changes nothing",
                "security": [],
                "parameters": _TOKEN,
                "responses": {
                    "200": {"description": "the page", **_PAGE},
                    "404": {"description": "not a valid link", **_PAGE},
                },
            },
            "post": {
                "summary": "Unsubscribe: RFC 8058 one-click (reason not_given) or the page's "
                "form (reason: unwanted, never_subscribed, spam or fraud)",
                "security": [],
                "parameters": _TOKEN,
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
                                    "reason": {
                                        "type": "string",
                                        "enum": ["unwanted", "never_subscribed", "spam", "fraud"],
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "unsubscribed (also when already)", **_PAGE},
                    "404": {"description": "not a valid link", **_PAGE},
                },
            },
        },
    }
)


def _export_paths() -> dict[str, Any]:
    task_id = [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    task = {"$ref": "#/components/schemas/Export"}
    one = {"description": "the task", "content": {"application/json": {"schema": task}}}
    filter_names = (
        "address",
        "domain",
        "type",
        "tag",
        "api_user",
        "status",
        "reason",
        "start",
        "end",
    )
    return {
        "/v1/exports": {
            "post": {
                "summary": "Start an offline export; answers at once with the pending task",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "type": {
                                        "type": "string",
                                        "enum": _EXPORT_TYPES,
                                        "default": "email_status",
                                        "description": "email_status: a row per email and "
                                        "recipient; opens_clicks: a row per open or click; "
                                        "a suppression list: a row per entry. bounces, shared "
                                        "by all accounts, is refused (400, field type)",
                                    },
                                    "filter": {
                                        "type": "object",
                                        "description": "email_status, opens_clicks: the "
                                        "filters of GET /v1/emails, any period within the "
                                        "data's retention (default: all of it; an earlier "
                                        "start is moved to it); a suppression list: those of "
                                        "GET /v1/suppressions/{list} (address, domain, "
                                        "api_user, start, end of the created time)",
                                        "properties": {n: {"type": "string"} for n in filter_names},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": one,
                    **_errors(400, 401, 413, 415, 429, 503),
                },
            },
            "get": {
                "summary": "The caller's export tasks, newest first (an API_USER: its own)",
                "responses": {
                    "200": {
                        "description": "{items}",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"items": {"type": "array", "items": task}},
                                }
                            }
                        },
                    },
                    **_errors(401),
                },
            },
        },
        "/v1/exports/{task_id}": {
            "get": {
                "summary": "One export task: status and progress",
                "parameters": task_id,
                "responses": {"200": one, **_errors(401, 404)},
            }
        },
        "/v1/exports/{task_id}/retry": {
            "post": {
                "summary": "Run a failed export again from the start",
                "parameters": task_id,
                "responses": {"202": one, **_errors(401, 404, 409)},
            }
        },
        "/v1/exports/{task_id}/download": {
            "get": {
                "summary": "The file of a successful export: gzip-compressed UTF-8 CSV, header row",
                "parameters": task_id,
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {
                            "application/gzip": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_errors(401, 404, 409),
                },
            }
        },
    }


_EXPORT_TYPES = [t.value for t in ExportType]

_TIME = {"type": ["string", "null"], "format": "date-time"}

SPEC["components"]["schemas"]["Export"] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": _EXPORT_TYPES},
        "filter": {"type": "object", "description": "as given, with the period in effect"},
        "status": {"type": "string", "enum": ["pending", "running", "success", "failed"]},
        "api_user": {"type": ["string", "null"], "description": "who asked; null: account key"},
        "progress": {
            "type": "object",
            "properties": {
                "rows": {"type": "integer"},
                "estimated_rows": {"type": ["integer", "null"], "description": "an upper bound"},
                "percent": {"type": "number"},
            },
        },
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _TIME,
        "finished_at": _TIME,
        "expires_at": {**_TIME, "description": "7 days after it ended; then task and file go"},
        "rows": {"type": "integer"},
        "file_size": {"type": ["integer", "null"], "description": "bytes, compressed"},
        "download_url": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"], "description": "why it failed"},
        "attempts": {"type": "integer"},
    },
}
SPEC["paths"].update(_export_paths())
SPEC["paths"].update(CONSOLE_PATHS)
