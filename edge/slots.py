"""Model slots on the device: the active package, the previous one, and a resumable upload.

Folder layout (``/var/lib/forcecast/models``)::

    active.fcpkg      the model the runtime loads
    previous.fcpkg    the one before (the rollback target)
    upload.part       bytes received so far of the next package
    upload.json       what the upload is (size, SHA-256) and how far it got
    candidate.fcpkg   a commit's own copy of the bytes it verified (only while a commit runs)
    trial.json        present while a newly switched model has not yet proven itself (its health period)
    floor.json        the creation time of the newest model that ever completed its health period
    .lock             the cross-process lock (``fcntl.flock``)

**One owner at a time.** Every operation that reads or changes the folder holds :meth:`ModelSlots.locked`:
a re-entrant thread lock plus an exclusive ``fcntl.flock`` on ``.lock``, so a runtime taking an upload
over BLE and ``forcecast flash --path`` on the same folder (another process) never interleave. ``flock``
is advisory and per open file: it works between processes on the device's local filesystem (Linux);
on a network share it depends on the server, so flash a mounted SD card only while the device is off.

An upload is written at explicit offsets (a chunk must start where the last one ended, so a resumed
upload continues from the offset :meth:`ModelSlots.upload` reports), with a running CRC-32 the host compares.
:meth:`ModelSlots.commit` reads the upload **once**, checks size and SHA-256 of those bytes, writes them
to its own ``candidate.fcpkg`` (fsync), verifies signature and version there, lets the caller check the
contract and run the golden self-test on that file, and only then switches: the old active package
becomes ``previous.fcpkg`` and the candidate becomes ``active.fcpkg`` by ``rename`` + directory ``fsync``.
Whatever happens to ``upload.part`` meanwhile cannot reach the active slot. Any refusal removes the
upload and the candidate, leaves the active model untouched and raises :class:`SlotError` with a
stable reason (an ``incomplete`` upload stays, to be resumed).

**Versions never go backwards** unless the caller allows it: a package whose signed ``created_utc`` is
older than the active model's, or than the newest model that ever passed its health period
(``floor.json``), is refused as ``downgrade``. An explicit rollback to ``previous.fcpkg`` is allowed
(it is one step back to what ran before) and does not lower the floor.

**Trial.** The switched model is on trial until :meth:`ModelSlots.confirm` (called by the runtime after
its health period). :meth:`ModelSlots.model_for_start` counts starts while ``trial.json`` exists and,
if a start already happened without a confirmation (the runtime crashed, was killed, failed its
self-test, or its outputs were marked unhealthy with :meth:`ModelSlots.mark_failed`), rolls back to
``previous.fcpkg`` before the runtime loads anything.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forcecast.edge.contract import ModelContract
from forcecast.edge.errors import EXIT_REFUSED, ForcecastRuntimeError
from forcecast.edge.package import ModelPackage, PackageError, open_package, read_package

ACTIVE = "active.fcpkg"
PREVIOUS = "previous.fcpkg"
CANDIDATE = "candidate.fcpkg"
PART = "upload.part"
UPLOAD = "upload.json"
TRIAL = "trial.json"
FLOOR = "floor.json"
LOCK = ".lock"
MAX_PACKAGE_BYTES = 8 * 1024 * 1024
CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

Accept = Callable[[Path, ModelContract, dict[str, Any]], None]
"""Called with the candidate's path, contract and manifest before a switch; raises to refuse."""


class SlotError(ForcecastRuntimeError):
    """An upload, commit or rollback was refused; ``reason`` is stable for machines."""

    reason = "slot_refused"
    exit_code = EXIT_REFUSED

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


def _write_durable(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    _write_durable(temporary, data)
    temporary.replace(path)
    _fsync_dir(path.parent)


def created_at(manifest: dict[str, Any], where: str) -> datetime:
    """A manifest's signed ``created_utc`` as a time (the order of package versions).

    Raises
    ------
    SlotError
        ``manifest_invalid`` if it is not ``YYYY-MM-DDTHH:MM:SSZ``.
    """
    value = manifest.get("created_utc")
    try:
        return datetime.strptime(str(value), CREATED_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SlotError(
            "manifest_invalid", f"{where}: manifest field created_utc {value!r} is not YYYY-MM-DDTHH:MM:SSZ"
        ) from None


class ModelSlots:
    """The device's model folder (see the module docstring).

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
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._lock_file: int | None = None

    @property
    def active(self) -> Path:
        """The active package's path (it may not exist on a new device)."""
        return self.folder / ACTIVE

    @property
    def previous(self) -> Path:
        """The previous package's path, the rollback target (it may not exist)."""
        return self.folder / PREVIOUS

    # ---------------------------------------------------------------- lock

    @contextmanager
    def locked(self, wait: bool = True) -> Iterator[None]:
        """Hold the folder: this process's threads and other processes wait (re-entrant in one thread).

        Parameters
        ----------
        wait
            False: raise ``SlotError("busy")`` at once instead of waiting for the holder.
        """
        if not self._thread_lock.acquire(blocking=wait):
            raise SlotError("busy", f"{self.folder}: another operation holds the model folder")
        try:
            if self._depth == 0:
                descriptor = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(descriptor)
                    raise SlotError("busy", f"{self.folder}: another process holds the model folder") from None
                self._lock_file = descriptor
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                    os.close(self._lock_file)
                    self._lock_file = None
        finally:
            self._thread_lock.release()

    # ---------------------------------------------------------------- upload

    def upload(self) -> Upload | None:
        """The upload in progress, if any."""
        with self.locked():
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

    def peek_upload(self) -> Upload | None:
        """The upload's bookkeeping as last written, without waiting for the folder (for status reports)."""
        try:
            state = json.loads((self.folder / UPLOAD).read_text())
            return Upload(int(state["size"]), str(state["sha256"]), int(state["offset"]), int(state["crc32"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def begin_upload(self, size: int, sha256: str) -> Upload:
        """Start an upload, or resume the one for the same ``size`` and ``sha256``; returns where to continue."""
        if not 0 < size <= MAX_PACKAGE_BYTES:
            raise SlotError("bad_size", f"package size {size} is outside 1..{MAX_PACKAGE_BYTES} bytes")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise SlotError("bad_hash", "sha256 must be 64 lower-case hex digits")
        with self.locked():
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
        with self.locked():
            current = self.upload()
            if current is None:
                raise SlotError("no_upload", "no upload in progress: begin one first")
            if offset != current.offset:
                raise SlotError("bad_offset", f"chunk at offset {offset}, the upload stands at {current.offset}")
            if current.offset + len(data) > current.size:
                raise SlotError(
                    "too_long", f"chunk ends at {current.offset + len(data)}, beyond the size {current.size}"
                )
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
        """Forget the upload in progress (and a commit's leftover candidate)."""
        with self.locked():
            for name in (PART, UPLOAD, CANDIDATE):
                (self.folder / name).unlink(missing_ok=True)

    # ---------------------------------------------------------------- commit, trial, rollback

    def commit(self, accept: Accept | None = None, allow_downgrade: bool = False) -> ModelContract:
        """Verify the finished upload and make it the active model (see the module docstring).

        Parameters
        ----------
        accept
            Called with the candidate's path, contract and manifest before the switch; raises to refuse
            (e.g. the contract needs sensors the device lacks, or the golden self-test fails). It runs
            with the folder held.
        allow_downgrade
            Accept a package older than the active model or the floor.

        Raises
        ------
        SlotError
            ``no_upload``, ``incomplete`` (the upload stays, to be resumed), ``size_mismatch``,
            ``hash_mismatch``, ``downgrade``, a package reason (``bad_signature``, ``untrusted_key``,
            ``manifest_invalid``, ...; from ``accept`` too: ``contract_mismatch``, ``selftest_failed``), or
            ``refused`` (``accept`` failed otherwise). The active model is untouched.
        """
        with self.locked():
            current = self.upload()
            if current is None:
                raise SlotError("no_upload", "nothing to commit: no upload in progress")
            if current.offset != current.size:
                raise SlotError("incomplete", f"upload has {current.offset} of {current.size} bytes")
            data = (self.folder / PART).read_bytes()  # read once: these bytes, and only these, are installed
            try:
                contract = self._verify_candidate(data, current, accept, allow_downgrade)
            except BaseException:
                self.abort_upload()
                raise
            self._switch(current.sha256)
            return contract

    def _verify_candidate(
        self, data: bytes, current: Upload, accept: Accept | None, allow_downgrade: bool
    ) -> ModelContract:
        if len(data) != current.size:
            raise SlotError("size_mismatch", f"upload file has {len(data)} bytes, expected {current.size}")
        if hashlib.sha256(data).hexdigest() != current.sha256:
            raise SlotError("hash_mismatch", "the uploaded bytes do not match the announced SHA-256")
        candidate = self.folder / CANDIDATE
        _write_durable(candidate, data)
        try:
            package, contract = open_package(candidate, self.trusted)
        except PackageError as exc:
            raise SlotError(exc.reason, str(exc)) from None
        if not allow_downgrade:
            self.check_version(package)
        if accept is not None:
            try:
                accept(candidate, contract, package.manifest)
            except (PackageError, SlotError) as exc:
                raise SlotError(exc.reason, str(exc)) from None
            except Exception as exc:
                raise SlotError("refused", f"the device refused the model: {exc}") from None
        if hashlib.sha256(candidate.read_bytes()).hexdigest() != current.sha256:  # our own file; never expected
            raise SlotError("hash_mismatch", f"{candidate} changed while it was checked")
        return contract

    def _switch(self, sha256: str) -> None:
        # At every instant a crash leaves a loadable active.fcpkg: the old one is first *linked* to
        # previous.fcpkg, then the candidate replaces active.fcpkg in one rename. The trial is written
        # before the switch and names the candidate, so it only applies once the switch happened.
        active = self.active
        if active.exists():
            linked = self.folder / (PREVIOUS + ".tmp")
            linked.unlink(missing_ok=True)
            os.link(active, linked)
            linked.replace(self.previous)
        _write_atomic(self.folder / TRIAL, json.dumps({"starts": 0, "sha256": sha256}).encode())
        (self.folder / CANDIDATE).replace(active)
        _fsync_dir(self.folder)
        for name in (UPLOAD, PART):
            (self.folder / name).unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def floor(self) -> datetime | None:
        """The oldest creation time a new package may have: the active model's or the confirmed floor's."""
        with self.locked():
            active = self._manifest(self.active)
            times = [self._recorded_floor(), self._created(active, ACTIVE) if active is not None else None]
            return max((t for t in times if t is not None), default=None)

    def check_version(self, package: ModelPackage) -> None:
        """Refuse ``package`` if it is older than :meth:`floor`.

        Raises
        ------
        SlotError
            ``downgrade`` (or ``manifest_invalid`` if its ``created_utc`` cannot be read).
        """
        created = created_at(package.manifest, package.path.name)
        floor = self.floor()
        if floor is not None and created < floor:
            raise SlotError(
                "downgrade",
                f"{package.path.name}: package created {created:{CREATED_FORMAT}} is older than the device's "
                f"model ({floor:{CREATED_FORMAT}}); versions never go backwards unless [models] allow_downgrade",
            )

    def model_for_start(self) -> tuple[Path, bool]:
        """The package the runtime should load now, and whether a rollback just happened.

        A model on trial gets one start; if that start never confirmed (or was marked failed), the
        previous model comes back.
        """
        with self.locked():
            (self.folder / CANDIDATE).unlink(missing_ok=True)  # left by a commit that was killed (we hold the lock)
            trial = self.folder / TRIAL
            if not trial.exists():
                return self.active, False
            state = self._trial(trial)
            if state is None:  # a commit that crashed before its switch: the old model was never replaced
                trial.unlink()
                _fsync_dir(self.folder)
                return self.active, False
            if (int(state.get("starts", 0)) >= 1 or state.get("failed")) and self.previous.exists():
                self.rollback()
                return self.active, True
            _write_atomic(trial, json.dumps(state | {"starts": int(state.get("starts", 0)) + 1}).encode())
            return self.active, False

    @property
    def on_trial(self) -> bool:
        """Whether the active model was switched to and has not yet completed its health period."""
        return (self.folder / TRIAL).exists()

    def confirm(self, wait: bool = True) -> bool:
        """The active model passed its health period: end its trial and raise the version floor to it.

        Parameters
        ----------
        wait
            False: give up at once (returning False) if another operation holds the folder; the
            runtime's loop calls it so and tries again later rather than stall.
        """
        try:
            with self.locked(wait):
                manifest = self._manifest(self.active)
                created = self._created(manifest, ACTIVE) if manifest is not None else None
                recorded = self._recorded_floor()
                if manifest is not None and created is not None and (recorded is None or created > recorded):
                    record = {"created_utc": created.strftime(CREATED_FORMAT), "version": manifest.get("model_version")}
                    _write_atomic(self.folder / FLOOR, json.dumps(record).encode())
                (self.folder / TRIAL).unlink(missing_ok=True)
                _fsync_dir(self.folder)
                return True
        except SlotError:
            return False

    def mark_failed(self, reason: str) -> None:
        """The model on trial misbehaved: the next start rolls back to the previous model."""
        with self.locked():
            trial = self.folder / TRIAL
            state = self._trial(trial) if trial.exists() else None
            if state is not None:
                _write_atomic(trial, json.dumps(state | {"failed": reason}).encode())

    def rollback(self) -> None:
        """Make the previous model active again (the failed one is discarded).

        Raises
        ------
        SlotError
            ``no_previous`` when there is nothing to go back to.
        """
        with self.locked():
            previous = self.previous
            if not previous.exists():
                raise SlotError("no_previous", "no previous model to roll back to")
            previous.replace(self.active)
            (self.folder / TRIAL).unlink(missing_ok=True)
            _fsync_dir(self.folder)

    # ---------------------------------------------------------------- internals

    def _recorded_floor(self) -> datetime | None:
        path = self.folder / FLOOR
        try:
            record = json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            return None  # an unreadable record does not lock the device out of updates
        return self._created(record, FLOOR) if isinstance(record, dict) else None

    @staticmethod
    def _created(manifest: dict[str, Any], where: str) -> datetime | None:
        try:
            return created_at(manifest, where)
        except SlotError:
            return None

    @staticmethod
    def _manifest(path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            return read_package(path).manifest
        except PackageError:
            return None

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
