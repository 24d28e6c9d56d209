"""Cross-site request forgery protection of the dashboard's state-changing requests.

Each session has its own random token (stored with the session in the database). Every request that is not
GET, HEAD or OPTIONS must carry it, as the form field ``csrf_token`` (the pages' forms) or the header
``X-CSRF-Token`` (a script's ``fetch``); a request without it, or with another, is refused with 403 and changes
nothing. The login form, before any session exists, uses a double-submit cookie instead (:data:`LOGIN_COOKIE`):
a random value set with the form and repeated in its field, which another site can neither read nor set.
The session cookie is also ``SameSite=Lax``, so other sites' forms do not carry it at all.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
LOGIN_COOKIE = "forcecast_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_LENGTH = 43


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    """Whether a token has the form :func:`new_token` gives (43 URL-safe base64 characters)."""
    return len(token) == TOKEN_LENGTH and all(c.isascii() and (c.isalnum() or c in "-_") for c in token)


def same(given: str | None, expected: str | None) -> bool:
    """Whether a presented token is the expected one (constant time; an empty one never matches)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def presented(request: web.Request) -> str | None:
    """The token a request carries: the header, else the form field (None when neither)."""
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(FIELD)
        return value if isinstance(value, str) else None
    return None


async def check(request: web.Request, expected: str | None) -> None:
    """Refuse (403) a state-changing request whose token is missing or wrong.

    Raises
    ------
    aiohttp.web.HTTPForbidden
        Naming what was wrong (missing, or not this session's).
    """
    if request.method in SAFE_METHODS:
        return
    given = await presented(request)
    if given is None:
        raise web.HTTPForbidden(text="refused: this form has no CSRF token (reload the page and try again)")
    if not same(given, expected):
        raise web.HTTPForbidden(text="refused: the CSRF token is not this session's (reload the page and try again)")
