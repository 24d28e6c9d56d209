"""Dashboard passwords: argon2id hashes (argon2-cffi), checked in constant time, upgraded when parameters change.

The stored form is argon2's encoded string (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``): it carries its own
salt and parameters, so old hashes keep verifying after :data:`HASHER`'s parameters are raised, and
:func:`needs_rehash` tells the login code to store a new hash then.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from forcecast.edge.errors import ForcecastValueError

MIN_LENGTH: Final = 10
HASHER: Final = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, type=Type.ID)
"""argon2id with RFC 9106's second recommended option at a memory cost a small server affords (64 MiB)."""


class PasswordPolicyError(ForcecastValueError):
    """A new password that is too weak to store (the message says why)."""

    reason = "weak_password"


def hash_password(password: str) -> str:
    """The argon2id hash of a new password.

    Raises
    ------
    PasswordPolicyError
        If it is shorter than :data:`MIN_LENGTH` characters or only blanks.
    """
    if len(password) < MIN_LENGTH or not password.strip():
        raise PasswordPolicyError(f"a password needs at least {MIN_LENGTH} characters that are not all blanks")
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (False for a wrong password or an unreadable hash)."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash was made with other parameters than :data:`HASHER`'s (store a new one after a login)."""
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
