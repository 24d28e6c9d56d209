"""Login, logout and the session middleware of the dashboard.

- **Passwords** are Argon2id hashes (:mod:`forcecast.clinic.passwords`); an unknown address costs the same
  hash check as a known one, and the answer never says which of the two was wrong.
- **Sessions** live in the ``sessions`` table: the cookie holds a random token (32 bytes), the table its SHA-256,
  so a copy of the database opens no session. The cookie is ``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and
  ``Secure`` unless the settings turn that off (a loopback demo without TLS). A login always starts a new session
  (the one the browser had is deleted: no fixation); expiry slides with use, at most one write a minute.
- **Throttling**: after ``login_failures`` failed logins of one account within ``login_window_s`` its logins are
  refused (429) until the window has passed; the failures are audit rows, so every process sees them.
- **The middleware** lets through only the public paths (the login page, static files, the proxy's health
  check, and the sync API, which checks device tokens itself); any other request without a valid session is
  redirected to the login page (GET, HEAD) or refused with 401, and a state-changing request needs the
  session's CSRF token (:mod:`.csrf`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from forcecast.clinic.dashboard import csrf, queries
from forcecast.clinic.dashboard.state import USER, dashboard_of, user_of
from forcecast.clinic.db.audit import audit
from forcecast.clinic.passwords import hash_password, needs_rehash, verify_password
from forcecast.clinic.tokens import new_token, token_hash

COOKIE = "forcecast_session"
PUBLIC_PREFIXES: tuple[str, ...] = ("/static/", "/api/")
"""Paths the session middleware lets through (the sync API authenticates devices by their bearer token)."""
PUBLIC_PATHS = frozenset({"/login", "/healthz"})
TOUCH_EVERY_S = 60.0
_DUMMY_HASH: list[str] = []

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_public(path: str) -> bool:
    """Whether a path is served without a dashboard session."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(target: str | None) -> str:
    """A local path to go to after login (anything else, e.g. another site, becomes ``/``)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session's user to the request, or refuse it (see the module docstring)."""
    if is_public(request.path):
        return await handler(request)
    dashboard = dashboard_of(request)
    token = request.cookies.get(COOKIE)
    user = None
    if token:
        now = dashboard.clock()
        async with dashboard.engine.begin() as conn:
            user = await queries.session_user(conn, token_hash(token), now)
            if user is not None and now - user.last_seen_at >= TOUCH_EVERY_S:
                await queries.touch_session(conn, user.token_hash, now, dashboard.settings.session_lifetime_s)
    if user is None:
        if request.method in ("GET", "HEAD"):
            target = request.path_qs
            raise web.HTTPFound("/login" + ("" if target == "/" else f"?next={quote(target, safe='')}"))
        raise web.HTTPUnauthorized(text="log in first: this request has no valid session")
    request[USER] = user
    await csrf.check(request, user.csrf_token)
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers that keep the pages from being framed by other sites, sniffed or leaking their address."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/api/"):
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; frame-ancestors 'self'; form-action 'self'",
        )
    return response


def _dummy_hash() -> str:
    """A hash to check unknown addresses against, so they cost the same time as known ones."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


async def _verify(stored: str, password: str) -> bool:
    """Check a password off the event loop (Argon2 takes tens of milliseconds on purpose)."""
    return await asyncio.get_running_loop().run_in_executor(None, verify_password, stored, password)


def _login_page(request: web.Request, status: int, error: str = "", email: str = "") -> web.Response:
    dashboard = dashboard_of(request)
    # Keep the browser's token: a second login page (another tab, a favicon fetch redirected here) must not
    # invalidate the form already shown.
    kept = request.cookies.get(csrf.LOGIN_COOKIE, "")
    token = kept if csrf.well_formed(kept) else csrf.new_token()
    response = dashboard.render(
        request,
        "login.html.j2",
        status=status,
        error=error,
        email=email,
        login_token=token,
        next=safe_next(request.query.get("next")),
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=dashboard.settings.cookie_secure,
        path="/login",
    )
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login: the form (a logged-in user goes straight to the patient list)."""
    dashboard = dashboard_of(request)
    token = request.cookies.get(COOKIE)
    if token:
        async with dashboard.engine.connect() as conn:
            if await queries.session_user(conn, token_hash(token), dashboard.clock()) is not None:
                raise web.HTTPFound("/")
    return _login_page(request, 200)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: check the address and password, start a new session, go to ``next``."""
    dashboard = dashboard_of(request)
    form = await request.post()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    if not csrf.same(str(form.get(csrf.FIELD, "")), request.cookies.get(csrf.LOGIN_COOKIE)):
        return _login_page(request, 403, "The login form had expired; please try again.", email)
    now = dashboard.clock()
    options = dashboard.options
    async with dashboard.engine.begin() as conn:
        found = await queries.login_user(conn, email) if email else None
        if found is None:
            await _verify(_dummy_hash(), password)
            return _login_page(request, 401, "E-mail address or password is wrong.", email)
        failures = await queries.recent_login_failures(conn, found, now - options.login_window_s)
        if failures >= options.login_failures:
            await audit(conn, found.clinic_id, "login.throttled", "user", found.user_id, user_id=found.user_id, at=now)
            minutes = max(1, round(options.login_window_s / 60))
            return _login_page(
                request,
                429,
                f"Too many failed logins for this account; try again in {minutes} minutes or ask an administrator.",
                email,
            )
        if found.disabled or not await _verify(found.password_hash, password):
            await audit(
                conn, found.clinic_id, queries.LOGIN_FAILED, "user", found.user_id, user_id=found.user_id, at=now
            )
            return _login_page(request, 401, "E-mail address or password is wrong.", email)
        old = request.cookies.get(COOKIE)
        if old:
            await queries.delete_session(conn, token_hash(old))
        await queries.purge_sessions(conn, now)
        if needs_rehash(found.password_hash):
            await queries.set_password_hash(conn, found.user_id, hash_password(password))
        token = new_token()
        lifetime = dashboard.settings.session_lifetime_s
        await queries.create_session(conn, found.user_id, token_hash(token), csrf.new_token(), now, lifetime)
        await audit(conn, found.clinic_id, "login", "user", found.user_id, user_id=found.user_id, at=now)
    response = web.HTTPFound(safe_next(str(form.get("next", "")) or None))
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=dashboard.settings.cookie_secure,
        path="/",
        max_age=int(lifetime),
    )
    response.del_cookie(csrf.LOGIN_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: end the session (the middleware has checked it and its CSRF token)."""
    dashboard = dashboard_of(request)
    user = user_of(request)
    async with dashboard.engine.begin() as conn:
        await queries.delete_session(conn, user.token_hash)
        await audit(conn, user.clinic_id, "logout", "user", user.user_id, user_id=user.user_id, at=dashboard.clock())
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def add_routes(app: web.Application) -> None:
    """Register /login (GET, POST) and /logout (POST)."""
    app.router.add_get("/login", login_form, name="login")
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout, name="logout")
