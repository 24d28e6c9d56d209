"""Device tokens: random secrets a home host presents to the sync API, stored only as their SHA-256.

A token is 32 random bytes in URL-safe base64 without padding (43 characters); it is shown once, when the
device is enrolled to a patient, and the clinic keeps only :func:`token_hash` of it. Looking a token up by its
hash needs no constant-time comparison: the hash of a guess reveals nothing about the stored one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Final

TOKEN_BYTES: Final = 32
TOKEN_LENGTH: Final = 43
"""Characters of a token (32 bytes in base64 without padding)."""


def new_token() -> str:
    """A fresh device token (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """The SHA-256 of a token, in hex: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's form (43 URL-safe base64 characters); says nothing of its validity."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    return len(text) == TOKEN_LENGTH and set(text) <= alphabet
