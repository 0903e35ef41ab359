"""The suppression pages: the four lists and exemptions, a check box, uploads, deletes.

Deleting is two steps, a selection then a confirmation page, so nothing goes
by one stray click and no script is needed; for spam reports the confirmation
says why deleting is discouraged (SPEC P4). Reads and writes go through the
same engine calls and input rules as the JSON API.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_engine.accounts import api_users_of
from queue_engine.records import parse_iso_ms
from queue_engine.suppression import (
    EntryError,
    ListFilter,
    Origin,
    SuppressionList,
    Suppressions,
    normalise_target,
)
from queue_engine.suppression_input import (
    MAX_UPLOAD_BYTES,
    ItemError,
    parse_block_csv,
    parse_item,
)
from web.api_suppressions import REPEAT_COMPLAINT_WARNING
from web.console.base import ConsoleContext
from web.session import Session

PAGE_SIZE = 100

TITLES = {
    SuppressionList.BOUNCES: "Bounces",
    SuppressionList.COMPLAINTS: "Spam reports",
    SuppressionList.BLOCKS: "Custom blocks",
    SuppressionList.UNSUBSCRIBES: "Unsubscribes",
    SuppressionList.EXEMPTIONS: "Exemptions",
}

ABOUT = {
    SuppressionList.BOUNCES: "Addresses an MP said do not exist, shared by every sender on "
    "this platform: 30, 60, then 180 days by how often (Tencent mail: 1, 2, 4 … up to 30 "
    "days). Look one up below; an exemption lets your mail through.",
    SuppressionList.COMPLAINTS: "Recipients who reported your mail as spam through an MP "
    "feedback loop; kept 180 days from the latest report.",
    SuppressionList.BLOCKS: "Addresses and domains you block yourself, for the whole account "
    "or one API_USER, with an optional expiry.",
    SuppressionList.UNSUBSCRIBES: "Recipients who unsubscribed, when and why.",
    SuppressionList.EXEMPTIONS: "Addresses and domains the bounce list no longer blocks for "
    "your account.",
}

ADDABLE = (SuppressionList.BLOCKS, SuppressionList.UNSUBSCRIBES, SuppressionList.EXEMPTIONS)


class SuppressionPages:
    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.store = Suppressions(ctx.redis)

    def routes(self) -> list[Route]:
        return [
            Route("/suppressions", self.overview, methods=["GET"], name="console_suppressions"),
            Route("/suppressions/{kind}", self.list_page, methods=["GET"], name="console_list"),
            Route("/suppressions/{kind}/add", self.add, methods=["POST"], name="console_add"),
            Route(
                "/suppressions/{kind}/delete", self.delete, methods=["POST"], name="console_delete"
            ),
            Route(
                "/suppressions/blocks/upload",
                self.upload,
                methods=["POST"],
                name="console_upload",
            ),
        ]

    async def overview(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        check = None
        raw = request.query_params.get("address", "").strip()
        error = None
        if raw:
            try:
                target = normalise_target(raw)
            except EntryError as exc:
                error = str(exc)
            else:
                api_users = sorted(await api_users_of(self.ctx.redis, session.account))
                check = await self.store.check_address(session.account, api_users, target)
        sizes = await self.store.account_sizes(session.account)
        return self.ctx.render(
            request,
            session,
            "suppressions.html",
            {
                "nav": "suppressions",
                "lists": [(k, TITLES[k], ABOUT[k], sizes.get(k.value)) for k in TITLES],
                "address": raw,
                "check": check,
                "check_error": error,
                "changes": await self.store.changes(session.account, 20),
            },
        )

    async def list_page(
        self,
        request: Request,
        notice: dict[str, Any] | None = None,
        status: int = 200,
        kind: SuppressionList | None = None,
    ) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        kind = kind or _kind(request)
        if kind is None:
            return self._not_found(request, session)
        params = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
        filters = {k: v for k, v in params.items() if k in ("address", "domain", "api_user")}
        filters |= {k: v for k, v in params.items() if k in ("start", "end")}
        api_users = sorted(await api_users_of(self.ctx.redis, session.account))
        entries: list[dict[str, Any]] = []
        next_url = None
        error = None
        try:
            flt = _filter(filters, api_users)
            if kind is SuppressionList.BOUNCES and not flt.address:
                pass  # the shared list is read one address at a time
            else:
                account = None if kind is SuppressionList.BOUNCES else session.account
                cursor = params.get("cursor")
                page = await self.store.page(account, kind, flt, cursor, PAGE_SIZE)
                entries = [e.to_api() for e in page.entries]
                if page.cursor:
                    next_url = f"?{urlencode({**filters, 'cursor': page.cursor})}"
        except EntryError as exc:
            error = exc
        return self.ctx.render(
            request,
            session,
            "suppression_list.html",
            {
                "nav": "suppressions",
                "kind": kind.value,
                "title": TITLES[kind],
                "about": ABOUT[kind],
                "entries": entries,
                "filters": filters,
                "error": error,
                "next_url": next_url,
                "api_users": api_users,
                "addable": kind in ADDABLE,
                "deletable": kind is not SuppressionList.BOUNCES,
                "notice": notice or _done(params),
                "warning": REPEAT_COMPLAINT_WARNING if kind is SuppressionList.COMPLAINTS else None,
            },
            status=status,
        )

    async def add(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        kind = _kind(request)
        if kind not in ADDABLE:
            return self._not_found(request, session)
        form = await self.ctx.checked_form(request, session)
        if form is None:
            return self.ctx.refused(request, session)
        raw = {k: str(v).strip() for k, v in form.items() if k != "csrf_token" and str(v).strip()}
        target = raw.pop("target", "")
        raw["domain" if "@" not in target.lstrip("@") else "address"] = target
        now = int(time.time() * 1000)
        try:
            item = parse_item(
                raw,
                own_api_user=None,
                api_users=await api_users_of(self.ctx.redis, session.account),
                now_ms=now,
                with_details=True,
            )
        except EntryError as exc:
            return await self.list_page(
                request, {"error": f"{exc.field}: {exc}", "form": raw}, status=400
            )
        [new] = await self.store.add(
            session.account,
            kind,
            [(item.target, item.api_user, item.expires_ms, item.reason)],
            Origin.CONSOLE,
            now,
        )
        return _back(kind, "added" if new else "updated", item.target.lstrip("@"))

    async def upload(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_UPLOAD_BYTES + 65536:
            notice: dict[str, Any] = {
                "error": f"The file is larger than {MAX_UPLOAD_BYTES:,} bytes."
            }
            return await self.list_page(request, notice, 413, SuppressionList.BLOCKS)
        async with request.form(max_files=1, max_fields=3, max_part_size=MAX_UPLOAD_BYTES) as form:
            if not self.ctx.token_ok(request, session, form):
                return self.ctx.refused(request, session)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                notice = {"error": "Choose a CSV file."}
                return await self.list_page(request, notice, 400, SuppressionList.BLOCKS)
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
        now = int(time.time() * 1000)
        try:
            good, bad = parse_block_csv(
                data,
                own_api_user=None,
                api_users=await api_users_of(self.ctx.redis, session.account),
                now_ms=now,
            )
        except EntryError as exc:
            notice = {"error": f"The file {exc}."}
            return await self.list_page(request, notice, 400, SuppressionList.BLOCKS)
        fresh = await self.store.add(
            session.account,
            SuppressionList.BLOCKS,
            [(i.target, i.api_user, i.expires_ms, i.reason) for _, i in good],
            Origin.CONSOLE,
            now,
        )
        added = sum(fresh)
        notice = {
            "message": f"{len(good):,} lines taken ({added:,} new, {len(good) - added:,} "
            f"updated), {len(bad):,} refused.",
            "lines": [_line(e) for e in bad[:200]],
            "more": max(0, len(bad) - 200),
        }
        return await self.list_page(request, notice, 207 if bad else 200, SuppressionList.BLOCKS)

    async def delete(self, request: Request) -> Response:
        session = self.ctx.session(request)
        if session.account is None:
            return self.ctx.login_redirect(request)
        kind = _kind(request)
        if kind is None or kind is SuppressionList.BOUNCES:
            return self._not_found(request, session)
        form = await self.ctx.checked_form(request, session)
        if form is None:
            return self.ctx.refused(request, session)
        selected = [str(v) for v in form.getlist("entry")][:PAGE_SIZE]
        items = [_parse_selected(v) for v in selected]
        if not selected:
            return _back(kind, "nothing")
        if form.get("confirm") != "yes":
            return self.ctx.render(
                request,
                session,
                "suppression_delete.html",
                {
                    "nav": "suppressions",
                    "kind": kind.value,
                    "title": TITLES[kind],
                    "selected": list(zip(selected, items, strict=True)),
                    "warning": REPEAT_COMPLAINT_WARNING
                    if kind is SuppressionList.COMPLAINTS
                    else None,
                },
            )
        removed = await self.store.remove(session.account, kind, items, Origin.CONSOLE)
        return _back(kind, "deleted", f"{sum(removed):,}")

    def _not_found(self, request: Request, session: Session) -> Response:
        return self.ctx.render(
            request,
            session,
            "error.html",
            {"title": "No such list", "message": "That page does not exist.", "nav": ""},
            status=404,
        )


def _kind(request: Request) -> SuppressionList | None:
    try:
        return SuppressionList(request.path_params.get("kind", ""))
    except ValueError:
        return None


def _filter(filters: dict[str, str], api_users: list[str]) -> ListFilter:
    address = normalise_target(filters["address"]) if filters.get("address") else ""
    domain = normalise_target("@" + filters["domain"].lstrip("@")) if filters.get("domain") else ""
    api_user = filters.get("api_user", "")
    if api_user and api_user not in api_users:
        raise EntryError("api_user", "is not an API_USER of this account")
    times = {}
    for name in ("start", "end"):
        if filters.get(name):
            try:
                times[name] = parse_iso_ms(filters[name])
            except ValueError:
                raise EntryError(name, "is not a date and time") from None
    return ListFilter(
        address=address.lstrip("@") if address.startswith("@") else address,
        domain=domain.lstrip("@"),
        api_user=api_user,
        created_from_ms=times.get("start"),
        created_before_ms=times.get("end"),
    )


def _parse_selected(value: str) -> tuple[str, str | None]:
    """A checkbox value: the entry's target, a tab and its API_USER when scoped."""
    target, _, api_user = value.partition("\t")
    return target, api_user or None


def _line(error: ItemError) -> str:
    return f"line {error.where}: {error.field} {error.message}"


DONE = {
    "added": "Added {n}.",
    "updated": "Updated {n}.",
    "deleted": "Deleted {n} of the selected entries.",
    "nothing": "Select the entries to delete first.",
}
"""What a redirect back to a list says; only these words, so a link cannot make the page
say something else."""


def _back(kind: SuppressionList, done: str, n: str = "") -> Response:
    query = urlencode({"done": done, "n": n})
    return RedirectResponse(f"/suppressions/{kind.value}?{query}", 303)


def _done(params: dict[str, str]) -> dict[str, Any] | None:
    text = DONE.get(params.get("done", ""))
    if text is None:
        return None
    return {"message": text.format(n=params.get("n", "")[:320])}
