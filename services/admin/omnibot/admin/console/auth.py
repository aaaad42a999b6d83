"""Who may do what in the console: sessions from the cookie, CSRF, roles, and signing in and out.

The middleware runs for every console path (the JSON API and /healthz are the API's own):
- it reads the session cookie and the user behind it (a disabled account, or one whose password or
  role changed after the session began, has no session any more);
- every POST must carry the CSRF token of the page it came from (the session's token, or before
  sign-in a token kept in a cookie of its own), else it is refused with 403 and nothing changes;
- pages need a signed-in user (others are sent to the sign-in page), and every POST except signing
  out needs the admin role: a viewer's changes are refused with 403 even if sent by hand;
- every answer gets the security headers (`render.SECURITY_HEADERS`).
Cookies are HttpOnly and SameSite=Strict, and Secure when the console is reached over https.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from pymongo.errors import PyMongoError

from omnibot.admin.console import i18n
from omnibot.admin.console.context import VISITOR, Visitor, console_of, render, visitor_of
from omnibot.admin.console.render import SECURITY_HEADERS
from omnibot.admin.console.sessions import SESSION_TTL_S
from omnibot.admin.users import normalise_email

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "omnibot_session"
CSRF_COOKIE = "omnibot_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset({"/sign-in", "/lang"})
VIEWER_POSTS = frozenset({"/sign-out"})


def is_console_path(path: str) -> bool:
    return not (path.startswith("/api/") or path == "/healthz")


def is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def local_path(target: str | None) -> str:
    """Only a path of this site as a place to go back to (never `//evil` or `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _visitor(request: web.Request) -> Visitor:
    console = console_of(request)
    lang = i18n.choose_language(request.cookies.get(i18n.COOKIE), request.headers.get("Accept-Language"))
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        session = await console.sessions.get(token)
        if session is not None:
            user = await console.users.get(session.email)
            if user is not None and not user.disabled and user.generation == session.generation:
                return Visitor(lang=lang, csrf=session.csrf, user=user, session=session, token=token)
    pre = request.cookies.get(CSRF_COOKIE, "")
    return Visitor(lang=lang, csrf=pre if 20 <= len(pre) <= 100 else "")


async def _csrf_ok(request: web.Request, visitor: Visitor) -> bool:
    if not visitor.csrf:
        return False
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD, "")
        given = value if isinstance(value, str) else ""
    return hmac.compare_digest(given.encode(), visitor.csrf.encode())


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"message": visitor_of(request).t(message)}, status=status)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_console_path(request.path):
        return await handler(request)
    response = await _guarded(request, handler)
    response.headers.update(SECURITY_HEADERS)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        visitor = await _visitor(request)
    except PyMongoError as exc:
        log.warning("console: MongoDB unavailable (%s)", type(exc).__name__)
        return web.Response(status=503, text="MongoDB is unavailable; try again.")
    request[VISITOR] = visitor
    public = request.path in PUBLIC_PATHS or request.path.startswith("/static/")
    try:
        if not public and visitor.user is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(f"/sign-in?next={quote(request.path_qs, safe='')}")
            return refusal(
                request, 403, "The request was refused: the form has expired. Reload the page and try again."
            )
        if request.method == "POST":
            if not await _csrf_ok(request, visitor):
                log.warning("console: refused %s %s without a valid CSRF token", request.method, request.path)
                return refusal(
                    request,
                    403,
                    "The request was refused: the form has expired. Reload the page and try again.",
                )
            if not public and request.path not in VIEWER_POSTS and not visitor.is_admin:
                return refusal(request, 403, "Your role can only read: this change is not allowed.")
        return await handler(request)
    except web.HTTPRedirection:
        raise
    except web.HTTPNotFound:
        return refusal(request, 404, "Page not found.")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return refusal(request, exc.status, exc.reason)
    except PyMongoError as exc:
        log.warning("console request failed: MongoDB unavailable (%s)", type(exc).__name__)
        return refusal(request, 503, "MongoDB is unavailable; try again.")
    except Exception:
        log.exception("console request failed: %s %s", request.method, request.path)
        return refusal(request, 500, "Something went wrong. The admin service's log has the details.")


# --- pages -------------------------------------------------------------------------------------


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    visitor = visitor_of(request)
    if visitor.user is not None:
        raise web.HTTPSeeOther(local_path(request.query.get("next")))
    return _sign_in_form(request, email="", problem="")


def _sign_in_form(request: web.Request, *, email: str, problem: str, status: int = 200) -> web.Response:
    visitor = visitor_of(request)
    if not visitor.csrf:
        visitor.csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        {"email": email, "problem": problem, "next": local_path(request.query.get("next"))},
        status=status,
    )
    set_cookie(request, response, CSRF_COOKIE, visitor.csrf, max_age=SESSION_TTL_S)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    visitor = visitor_of(request)
    form = await request.post()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))
    account = normalise_email(email)
    address = request.remote or "unknown"
    now = time.time()  # wall-clock: the counts are shared by every replica
    wait = await console.throttle.wait_s(account, address, now)
    if wait > 0:
        log.warning("console: sign-in for an account throttled (%.0f s to wait)", wait)
        return _sign_in_form(
            request,
            email=email,
            problem=visitor.t("Too many attempts. Try again in {n} seconds.", n=int(wait) + 1),
            status=429,
        )
    user = await console.users.authenticate(account, password)
    if user is None:
        await console.throttle.failed(account, address, time.time())
        log.info("console: a sign-in failed")
        return _sign_in_form(request, email=email, problem=visitor.t("Wrong e-mail or password."), status=401)
    await console.throttle.succeeded(account)
    token, _ = await console.sessions.open(user.email, user.generation)
    await console.audit.record(user.email, "user.sign_in", user.email)
    response = web.HTTPSeeOther(local_path(str(form.get("next", "/"))))
    set_cookie(request, response, SESSION_COOKIE, token, max_age=SESSION_TTL_S)
    response.del_cookie(CSRF_COOKIE, path="/")
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    visitor = visitor_of(request)
    if visitor.token:
        await console_of(request).sessions.close(visitor.token)
    response = web.HTTPSeeOther("/sign-in")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def switch_language(request: web.Request) -> web.StreamResponse:
    to = request.query.get("to", "en")
    response = web.HTTPSeeOther(local_path(request.query.get("next")))
    if to in i18n.LANGUAGES:
        set_cookie(request, response, i18n.COOKIE, to, max_age=365 * 86400)
    raise response
