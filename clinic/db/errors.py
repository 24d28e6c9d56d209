"""Errors of the clinic's database layer: something named that does not exist, or exists already."""

from __future__ import annotations

from forcecast.edge.errors import ForcecastValueError


class NotFoundError(ForcecastValueError):
    """A clinic, user, patient or device named by the caller does not exist (in that clinic)."""

    reason = "not_found"


class AlreadyExistsError(ForcecastValueError):
    """A clinic, user, patient or device of that name or code exists already."""

    reason = "already_exists"
