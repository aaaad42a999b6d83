"""The Omnidesk REST API as omnibot uses it: authentication, list shapes, and failure meanings.

Failures are sorted here, once, into the types of `omnidesk_errors`: a rate limit or a
server/network fault is transient (marked ambiguous when the request may have taken effect: a POST
that timed out or got a 5xx answer); a refusal (400, 401, 403, 404) is permanent, with Omnidesk's
error code. No message ever contains the API key or quotes a response body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import msgspec

from omnibot.shared import metrics
from omnibot.shared.errors import OmnibotError
from omnibot.shared.omnidesk_errors import (
    LabelNotFound,
    OmnideskBadResponse,
    OmnideskNotFound,
    OmnideskRateLimited,
    OmnideskRefused,
    OmnideskServerError,
    OmnideskTimeout,
    OmnideskUnauthorized,
    OmnideskUnreachable,
    StaffInactive,
    StaffNotFound,
    safe_code,
)
from omnibot.shared.ratelimit import AccountThrottle

log = logging.getLogger(__name__)

Json = dict[str, Any]
PAGE_LIMIT = 100
MAX_STAFF_PAGES = 50

# The custom request body of the seed's two Omnidesk rules («Выполнить вебхук»), exactly as
# product.md gives it: what the web console tells an operator to paste, and what the sandbox's rules
# send by default. Omnidesk replaces the `[placeholder]`s when a rule fires.
SEED_RULE_BODY: Mapping[str, Any] = {
    "event": "new_message",
    "message": {"kind": "text", "text": "[case_description]"},
    "visitor": {
        "id": "[user_id]",
        "fields": {
            "email": "[user_email]",
            "login": "[user_id]",
            "name": "[user_full_name]",
            "phone": "[user_phone]",
        },
    },
    "chat_id": "[case_id]",
}

# Told of each failed call: (account label, the error's message). `omnibot status` shows the last
# one per account (shared/account_errors.py).
ErrorSink = Callable[[str, str], Awaitable[None]]


class Account:
    """Credentials of one channel's bot staff member. The key never appears in repr or logs."""

    __slots__ = ("api_key", "domain", "email")

    def __init__(self, domain: str, email: str, api_key: str) -> None:
        self.domain = domain.rstrip("/")
        self.email = email
        self.api_key = api_key

    def __repr__(self) -> str:
        return f"Account({self.domain!r}, {self.email!r})"


def list_items(body: Json, item: str) -> list[Json]:
    """Omnidesk lists are objects keyed "0", "1", ... plus "total_count", not JSON arrays."""
    keyed = [(int(k), v) for k, v in body.items() if k.isdigit() and isinstance(v, dict)]
    return [v.get(item, v) for _, v in sorted(keyed)]


class OmnideskClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        throttle: AccountThrottle,
        *,
        timeout_s: float = 10.0,
        on_error: ErrorSink | None = None,
    ):
        self._session = session
        self._throttle = throttle
        self._on_error = on_error
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(5.0, timeout_s))
        self._staff_ids: dict[tuple[str, str], int] = {}
        self._label_ids: dict[tuple[str, str], int] = {}

    async def request(
        self,
        account: Account,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        data: aiohttp.FormData | None = None,
        params: Mapping[str, str | int] | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> Json:
        label = metrics.account_label(account.domain)
        try:
            return await self._request(account, label, method, path, json, data, params, expect)
        except OmnibotError as exc:
            if self._on_error is not None:
                await self._on_error(label, str(exc))
            raise

    async def _request(
        self,
        account: Account,
        label: str,
        method: str,
        path: str,
        json: Json | None,
        data: aiohttp.FormData | None,
        params: Mapping[str, str | int] | None,
        expect: tuple[int, ...],
    ) -> Json:
        await self._throttle.acquire(account.domain)
        changes_state = method != "GET"
        url = f"{account.domain}{path}"
        auth = aiohttp.encode_basic_auth(account.email, account.api_key)
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers={
                    "Accept": "application/json",
                    "Authorization": auth,
                },
                timeout=self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = self._throttle.observe(account.domain, status, response.headers)
        except aiohttp.ClientConnectorError as exc:
            metrics.record_omnidesk_call(label, method, "error", time.perf_counter() - started, None)
            # Never connected: the request certainly did not take effect.
            raise OmnideskUnreachable(
                f"{method} {path}: cannot connect to {account.domain} ({exc.os_error})"
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome = "timeout" if isinstance(exc, TimeoutError) else "error"
            metrics.record_omnidesk_call(label, method, outcome, time.perf_counter() - started, None)
            raise OmnideskTimeout(
                f"{method} {path}: {type(exc).__name__} talking to {account.domain}", ambiguous=changes_state
            ) from None
        metrics.record_omnidesk_call(
            label, method, str(status), time.perf_counter() - started, response.headers
        )
        body = _decode(raw)
        if status in expect:
            return body if isinstance(body, dict) else {}
        code = safe_code(body, account.api_key, account.email, auth.split(" ")[-1])
        if retry_after is not None or (
            status == 403 and "rate limit" in raw.decode(errors="replace").lower()
        ):
            metrics.record_rate_limited(label)
            raise OmnideskRateLimited(
                f"{method} {path}: Omnidesk rate limit ({status})",
                retry_after=retry_after or 60.0,
                status=status,
                code=code,
            )
        if status >= 500 or status == 408:
            raise OmnideskServerError(
                f"{method} {path}: Omnidesk answered {status} {code}".rstrip(),
                ambiguous=changes_state,
                status=status,
                code=code,
            )
        if status == 401:
            raise OmnideskUnauthorized(
                f"Omnidesk refused the credentials of {account.email} (401)", status=status, code=code
            )
        # Never the body itself: a server echoing the request would show the credentials.
        what = code or (f"(a {len(raw)}-byte answer, not quoted)" if raw else "")
        kind = OmnideskNotFound if status == 404 else OmnideskRefused
        raise kind(f"{method} {path}: Omnidesk answered {status} {what}".rstrip(), status=status, code=code)

    async def staff_id(self, account: Account) -> int:
        """The bot's staff id, looked up by e-mail once per process (paging through the staff list)."""
        cache_key = (account.domain, account.email.lower())
        if cache_key in self._staff_ids:
            return self._staff_ids[cache_key]
        wanted = account.email.strip().lower()
        for page in range(1, MAX_STAFF_PAGES + 1):
            body = await self.request(
                account, "GET", "/api/staff.json", params={"page": page, "limit": PAGE_LIMIT}
            )
            staff = list_items(body, "staff")
            for member in staff:
                if str(member.get("staff_email", "")).strip().lower() == wanted:
                    if member.get("active") is False:
                        raise StaffInactive(f"staff {account.email} is not active in Omnidesk")
                    staff_id = _int(member.get("staff_id"), "staff_id")
                    self._staff_ids[cache_key] = staff_id
                    return staff_id
            total = _int(body.get("total_count") or 0, "total_count")
            if not staff or page * PAGE_LIMIT >= total:
                break
        raise StaffNotFound(f"staff {account.email} not found in Omnidesk")

    async def label_id(self, account: Account, title: str) -> int:
        """A label's id from its title (e.g. "На боте"), looked up once per process."""
        wanted = title.strip().casefold()
        cache_key = (account.domain, wanted)
        if cache_key in self._label_ids:
            return self._label_ids[cache_key]
        for page in range(1, MAX_STAFF_PAGES + 1):
            body = await self.request(
                account, "GET", "/api/labels.json", params={"page": page, "limit": PAGE_LIMIT}
            )
            labels = list_items(body, "label")
            for label in labels:
                if str(label.get("label_title", "")).strip().casefold() == wanted:
                    self._label_ids[cache_key] = int(label["label_id"])
                    return self._label_ids[cache_key]
            if not labels or page * PAGE_LIMIT >= int(body.get("total_count") or 0):
                break
        raise LabelNotFound(f"label {title!r} not found in Omnidesk")

    async def post_reply(self, account: Account, case_id: int, body: Json) -> Json:
        answer = await self.request(
            account, "POST", f"/api/cases/{case_id}/messages.json", json=body, expect=(200, 201)
        )
        return dict(answer.get("message") or {})

    async def post_reply_multipart(self, account: Account, case_id: int, form: aiohttp.FormData) -> Json:
        answer = await self.request(
            account, "POST", f"/api/cases/{case_id}/messages.json", data=form, expect=(200, 201)
        )
        return dict(answer.get("message") or {})

    async def post_note(self, account: Account, case_id: int, body: Json) -> Json:
        answer = await self.request(
            account, "POST", f"/api/cases/{case_id}/note.json", json=body, expect=(200, 201)
        )
        return dict(answer.get("message") or answer.get("note") or {})

    async def recent_messages(self, account: Account, case_id: int, limit: int = PAGE_LIMIT) -> list[Json]:
        """The case's newest messages, oldest first (asks for order=desc, sorts by id either way)."""
        body = await self.request(
            account,
            "GET",
            f"/api/cases/{case_id}/messages.json",
            params={"order": "desc", "limit": limit, "page": 1},
        )
        return sorted(list_items(body, "message"), key=lambda m: int(m.get("message_id") or 0))

    async def get_case(self, account: Account, case_id: int) -> Json:
        body = await self.request(account, "GET", f"/api/cases/{case_id}.json")
        return dict(body.get("case") or {})

    async def update_case(self, account: Account, case_id: int, fields: Json) -> Json:
        body = await self.request(account, "PUT", f"/api/cases/{case_id}.json", json={"case": fields})
        return dict(body.get("case") or {})


def _int(value: Any, name: str) -> int:
    """An integer field of an answer; anything else is not what the Omnidesk API sends."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OmnideskBadResponse(f"Omnidesk's answer has no integer {name}")
    try:
        return int(value)
    except ValueError:
        raise OmnideskBadResponse(f"Omnidesk's answer has no integer {name}") from None


def _decode(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return {}
