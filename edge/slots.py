"""Model slots on the device: the active package, the previous one, and a resumable upload.

Folder layout (``/var/lib/forcecast/models``)::

    active.fcpkg      the model the runtime loads
    previous.fcpkg    the one before (the rollback target)
    upload.part       bytes received so far of the next package
    upload.json       what the upload is (size, SHA-256) and how far it got
    trial.json        present while a newly switched model has not yet proven itself at a start

An upload is written at explicit offsets (a chunk must start where the last one ended, so a resumed
upload continues from :meth:`ModelSlots.upload_offset`), with a running CRC-32 the host compares.
:meth:`ModelSlots.commit` checks size and SHA-256, verifies the signature against the trusted keys,
lets the caller check the contract against the device's sensors and run the golden self-test, and
only then switches: the old active package becomes ``previous.fcpkg`` and the candidate becomes
``active.fcpkg`` by ``rename`` + directory ``fsync`` (atomic on POSIX). Any failure leaves the active
model untouched and raises :class:`SlotError` with a stable reason.

The switched model is on trial: :meth:`ModelSlots.model_for_start` counts starts while ``trial.json``
exists and, if a start already happened without :meth:`ModelSlots.confirm` (the runtime crashed or
failed its self-test), rolls back to ``previous.fcpkg`` before the runtime loads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.contract import ModelContract
from edge.package import PackageError, open_package

ACTIVE = "active.fcpkg"
PREVIOUS = "previous.fcpkg"
PART = "upload.part"
UPLOAD = "upload.json"
TRIAL = "trial.json"
MAX_PACKAGE_BYTES = 8 * 1024 * 1024


class SlotError(RuntimeError):
    """An upload, commit or rollback was refused; ``reason`` is stable for machines."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Upload:
    """The upload in progress."""

    size: int
    sha256: str
    offset: int
    crc32: int


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    _fsync_dir(path.parent)


class ModelSlots:
    """The device's model folder.

    Parameters
    ----------
    folder
        Where the slots live (created if missing).
    trusted
        Public keys a package must be signed with.
    """

    def __init__(self, folder: Path, trusted: list[Ed25519PublicKey]) -> None:
        self.folder = folder
        self.trusted = trusted
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def active(self) -> Path:
        """The active package's path (it may not exist on a new device)."""
        return self.folder / ACTIVE

    @property
    def previous(self) -> Path:
        """The previous package's path, the rollback target (it may not exist)."""
        return self.folder / PREVIOUS

    # ---------------------------------------------------------------- upload

    def upload(self) -> Upload | None:
        """The upload in progress, if any."""
        meta = self.folder / UPLOAD
        if not meta.exists():
            return None
        try:
            state = json.loads(meta.read_text())
            recorded = Upload(int(state["size"]), str(state["sha256"]), int(state["offset"]), int(state["crc32"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable bookkeeping: the upload starts over
        part = self.folder / PART
        on_disk = part.stat().st_size if part.exists() else 0
        if on_disk >= recorded.offset:
            return recorded
        return self._recrc(Upload(recorded.size, recorded.sha256, on_disk, 0))  # the part lost bytes: go back

    def begin_upload(self, size: int, sha256: str) -> Upload:
        """Start an upload, or resume the one for the same ``size`` and ``sha256``; returns where to continue."""
        if not 0 < size <= MAX_PACKAGE_BYTES:
            raise SlotError("bad_size", f"package size {size} is outside 1..{MAX_PACKAGE_BYTES} bytes")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise SlotError("bad_hash", "sha256 must be 64 lower-case hex digits")
        current = self.upload()
        if current is not None and current.size == size and current.sha256 == sha256:
            part = self.folder / PART
            with part.open("r+b" if part.exists() else "wb") as handle:  # drop bytes beyond the acknowledged offset
                handle.truncate(current.offset)
            return self._recrc(current)
        (self.folder / PART).write_bytes(b"")
        state = Upload(size, sha256, 0, 0)
        self._save(state)
        return state

    def write_chunk(self, offset: int, data: bytes) -> Upload:
        """Append ``data`` at ``offset``, which must be where the upload stands; returns the new state.

        Raises
        ------
        SlotError
            ``no_upload``, ``bad_offset`` (the host should resume from the returned offset) or ``too_long``.
        """
        current = self.upload()
        if current is None:
            raise SlotError("no_upload", "no upload in progress: begin one first")
        if offset != current.offset:
            raise SlotError("bad_offset", f"chunk at offset {offset}, the upload stands at {current.offset}")
        if current.offset + len(data) > current.size:
            raise SlotError("too_long", f"chunk ends at {current.offset + len(data)}, beyond the size {current.size}")
        part = self.folder / PART
        with part.open("r+b" if part.exists() else "wb") as handle:
            handle.seek(offset)  # bytes beyond the recorded offset (a crash before bookkeeping) are overwritten
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        state = Upload(current.size, current.sha256, current.offset + len(data), zlib.crc32(data, current.crc32))
        self._save(state)
        return state

    def abort_upload(self) -> None:
        """Forget the upload in progress."""
        for name in (PART, UPLOAD):
            (self.folder / name).unlink(missing_ok=True)

    # ---------------------------------------------------------------- commit, trial, rollback

    def commit(self, accept: Callable[[Path, ModelContract, dict[str, Any]], None] | None = None) -> ModelContract:
        """Verify the finished upload and make it the active model.

        Parameters
        ----------
        accept
            Called with the candidate's path, contract and manifest before the switch; raises to refuse
            (e.g. the contract needs sensors the device lacks, or the golden self-test fails).

        Raises
        ------
        SlotError
            ``incomplete``, ``size_mismatch``, ``hash_mismatch``, a package reason (``bad_signature``,
            ``untrusted_key``, ...; from ``accept`` too: ``contract_mismatch``, ``selftest_failed``), or
            ``refused`` (``accept`` failed otherwise). The active model is untouched.
        """
        current = self.upload()
        if current is None:
            raise SlotError("no_upload", "nothing to commit: no upload in progress")
        part = self.folder / PART
        if current.offset != current.size:
            raise SlotError("incomplete", f"upload has {current.offset} of {current.size} bytes")
        data = part.read_bytes()
        if len(data) != current.size:
            raise SlotError("size_mismatch", f"upload file has {len(data)} bytes, expected {current.size}")
        if hashlib.sha256(data).hexdigest() != current.sha256:
            self.abort_upload()
            raise SlotError("hash_mismatch", "the uploaded bytes do not match the announced SHA-256")
        try:
            package, contract = open_package(part, self.trusted)
        except PackageError as exc:
            self.abort_upload()
            raise SlotError(exc.reason, str(exc)) from None
        if accept is not None:
            try:
                accept(part, contract, package.manifest)
            except PackageError as exc:
                self.abort_upload()
                raise SlotError(exc.reason, str(exc)) from None
            except Exception as exc:
                self.abort_upload()
                raise SlotError("refused", f"the device refused the model: {exc}") from None
        # At every instant a crash leaves a loadable active.fcpkg: the old one is first *linked* to
        # previous.fcpkg, then the candidate replaces active.fcpkg in one rename. The trial is written
        # before the switch and names the candidate, so it only applies once the switch happened.
        active = self.active
        if active.exists():
            linked = self.folder / (PREVIOUS + ".tmp")
            linked.unlink(missing_ok=True)
            os.link(active, linked)
            linked.replace(self.previous)
        _write_atomic(self.folder / TRIAL, json.dumps({"starts": 0, "sha256": current.sha256}).encode())
        part.replace(active)
        _fsync_dir(self.folder)
        (self.folder / UPLOAD).unlink(missing_ok=True)
        _fsync_dir(self.folder)
        return contract

    def model_for_start(self) -> tuple[Path, bool]:
        """The package the runtime should load now, and whether a rollback just happened.

        A model on trial gets one start; if that start never confirmed, the previous model comes back.
        """
        trial = self.folder / TRIAL
        if not trial.exists():
            return self.active, False
        state = self._trial(trial)
        if state is None:  # a commit that crashed before its switch: the old model was never replaced
            trial.unlink()
            _fsync_dir(self.folder)
            return self.active, False
        if int(state.get("starts", 0)) >= 1 and self.previous.exists():
            self.rollback()
            return self.active, True
        _write_atomic(trial, json.dumps(state | {"starts": int(state.get("starts", 0)) + 1}).encode())
        return self.active, False

    @property
    def on_trial(self) -> bool:
        """Whether the active model was switched to and has not yet confirmed a start."""
        return (self.folder / TRIAL).exists()

    def confirm(self) -> None:
        """The active model started, passed its self-test and runs: end its trial."""
        (self.folder / TRIAL).unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def rollback(self) -> None:
        """Make the previous model active again (the failed one is discarded).

        Raises
        ------
        SlotError
            ``no_previous`` when there is nothing to go back to.
        """
        previous = self.previous
        if not previous.exists():
            raise SlotError("no_previous", "no previous model to roll back to")
        previous.replace(self.active)
        (self.folder / TRIAL).unlink(missing_ok=True)
        _fsync_dir(self.folder)

    # ---------------------------------------------------------------- internals

    def _trial(self, trial: Path) -> dict[str, Any] | None:
        """The trial's state if it is about the active package (else None)."""
        try:
            state = json.loads(trial.read_text())
            digest = hashlib.sha256(self.active.read_bytes()).hexdigest()
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and state.get("sha256") == digest else None

    def _save(self, state: Upload) -> None:
        _write_atomic(self.folder / UPLOAD, json.dumps(state.__dict__).encode())

    def _recrc(self, state: Upload) -> Upload:
        crc = 0
        part = self.folder / PART
        if part.exists():
            with part.open("rb") as handle:
                while block := handle.read(1 << 16):
                    crc = zlib.crc32(block, crc)
        fixed = Upload(state.size, state.sha256, state.offset, crc)
        self._save(fixed)
        return fixed
