"""Model updates on the device: which model a start loads, and taking a new one while running.

The device's models live in :class:`forcecast.edge.slots.ModelSlots` (``[models] folder`` in ``device.toml``).
A candidate is accepted only if, on top of the slots' own checks (size, SHA-256, signature by a
trusted key), its contract fits the device (its sensors, the legs it predicts, the Edge TPU if one is
configured), its golden input/output pairs reproduce on this device's interpreter (in whole output
steps, :mod:`forcecast.edge.selftest`) and it is not older than the device's model (unless allowed). The same
check (:func:`forcecast.edge.runtime.lifecycle.load_model`, the one loader) runs for an upload over BLE,
for ``forcecast flash --path`` on a mounted model folder and for a start, and :class:`ModelUpdates` is the
one owner of the model folder for all of them; in a running runtime it hands an accepted model to
:class:`forcecast.edge.runtime.lifecycle.ModelLifecycle` (read its threading rules). A switched model stays
on trial until its health period (:mod:`forcecast.edge.runtime.health`) ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.package import PackageError
from forcecast.edge.runtime.config import DeviceConfig
from forcecast.edge.runtime.lifecycle import LoadedModel, ModelFit, load_model
from forcecast.edge.schema import SENSOR_AXES, SENSOR_KINDS, imu_column
from forcecast.edge.slots import ModelSlots, SlotError
from forcecast.edge.upload import UploadReceiver

__all__ = ["LoadedModel", "ModelUpdates", "sensor_columns", "start_model", "trusted_keys"]


def sensor_columns(config: DeviceConfig) -> tuple[str, ...]:
    """The IMU columns the configured sensors provide."""
    return tuple(imu_column(s.place, k, a) for s in config.sensors for k in SENSOR_KINDS for a in SENSOR_AXES)


def trusted_keys(keys: list[Path]) -> list[Path]:
    """The key files a package may be signed with (``--pubkey`` or ``trusted_keys`` in ``device.toml``).

    Raises
    ------
    forcecast.edge.config.ConfigError
        If there are none: the device runs only signed models.
    """
    from forcecast.edge.config import ConfigError

    if not keys:
        raise ConfigError(
            "no trusted public keys: list them in device.toml (trusted_keys = [...]) or pass --pubkey; "
            "the device runs only signed models"
        )
    return keys


def start_model(slots: ModelSlots, config: DeviceConfig, columns: tuple[str, ...]) -> tuple[LoadedModel, list[str]]:
    """The model a start runs, from the slots; rolls back a model on trial that fails, with notes on what happened.

    Raises
    ------
    forcecast.edge.config.ConfigError
        If no model is installed.
    PackageError
        If the active model fails and there is nothing to roll back to.
    """
    from forcecast.edge.config import ConfigError

    with slots.locked():  # nothing may switch the folder between choosing the model and loading it
        path, rolled_back = slots.model_for_start()
        notes = [
            "the model switched to last time did not complete its health period (it crashed, was stopped or "
            "misbehaved): rolled back to the previous one"
        ] * rolled_back
        if not path.exists():
            raise ConfigError(
                f"no model installed in {slots.folder}: install one with 'forcecast flash PKG --path {slots.folder}' "
                "or run a package directly with --model PKG"
            )
        try:
            return _open(path, slots, config, columns), notes
        except PackageError as exc:
            if not slots.on_trial:
                raise
            slots.rollback()
            notes.append(f"the new model failed at start ({exc.reason}: {exc}); rolled back to the previous one")
            return _open(path, slots, config, columns), notes


def _open(path: Path, slots: ModelSlots, config: DeviceConfig, columns: tuple[str, ...]) -> LoadedModel:
    return load_model(path, slots.trusted, ModelFit.of(config, columns))


class ModelUpdates:
    """The one owner of the device's model folder: uploads, commits, rollbacks, and the lock of the lifecycle.

    Every operation holds one lock (a re-entrant thread lock, then the model folder's cross-process lock,
    :meth:`forcecast.edge.slots.ModelSlots.locked`): an UPLOAD_BEGIN or a chunk that arrives while a commit
    self-tests waits for the commit to finish, and so does ``forcecast flash --path`` in another process.
    A commit installs the bytes it verified (its own candidate file), never whatever ``upload.part``
    holds by then. This is what the BLE link calls.

    Parameters
    ----------
    slots
        The device's model slots.
    config
        Device configuration (legs, Edge TPU, threads, ``[models] allow_downgrade``).
    columns
        IMU columns the running source provides.
    switch
        Called (with the lock held) with a newly accepted model to take it over while running
        (:meth:`forcecast.edge.runtime.lifecycle.ModelLifecycle.switch`); raises ``ContractError`` when
        the model can only start with the runtime. Returns nothing.
    allow_downgrade
        Accept packages older than the device's model (None: ``[models] allow_downgrade``).
    """

    def __init__(
        self,
        slots: ModelSlots,
        config: DeviceConfig,
        columns: tuple[str, ...],
        switch: Callable[[LoadedModel], None] | None = None,
        allow_downgrade: bool | None = None,
    ) -> None:
        self.slots = slots
        self.config = config
        self.columns = columns
        self.switch = switch
        self.allow_downgrade = config.models.allow_downgrade if allow_downgrade is None else allow_downgrade
        self.receiver = UploadReceiver(slots)
        self._lock = threading.RLock()
        self.last_result: dict[str, Any] = {}

    @contextmanager
    def held(self, wait: bool = True) -> Iterator[None]:
        """Hold the model lifecycle (this process's lock, then the folder's cross-process lock).

        Parameters
        ----------
        wait
            False: raise ``SlotError("busy")`` at once if another thread or process holds it (the
            pipeline thread never waits for a commit's self-test).
        """
        if not self._lock.acquire(blocking=wait):
            raise SlotError("busy", f"{self.slots.folder}: a model update is in progress")
        try:
            with self.slots.locked(wait):
                yield
        finally:
            self._lock.release()

    def begin(self, size: int, sha256: str) -> tuple[int, int]:
        """Start or resume an upload: ``(offset, crc32)`` (waits for a commit in progress)."""
        with self.held():
            return self.receiver.begin(size, sha256)

    def chunk(self, offset: int, data: bytes) -> bytes | None:
        """One upload chunk; an acknowledgement to notify when one is due (waits for a commit in progress)."""
        with self.held():
            return self.receiver.chunk(offset, data)

    def abort(self) -> None:
        """Drop the upload in progress."""
        with self.held():
            self.receiver.disconnected()
            self.slots.abort_upload()

    def disconnected(self) -> None:
        """The link dropped: forget chunks not yet durable (never waits: the radio's loop may call it)."""
        self.receiver.disconnected()

    def commit(self) -> str:
        """Verify, check and self-test the upload, switch to it; returns what the host is told.

        Raises
        ------
        SlotError
            With the reason; the running model is untouched and the upload is removed (except
            ``incomplete``, which stays to be resumed).
        """
        with self.held():
            accepted: list[LoadedModel] = []

            def accept(path: Path, _contract: ModelContract, _manifest: dict[str, Any]) -> None:
                accepted.append(load_model(path, self.slots.trusted, ModelFit.of(self.config, self.columns)))

            self.receiver.disconnected()  # nothing buffered may land in a later upload
            try:
                self.slots.commit(accept, allow_downgrade=self.allow_downgrade)
            except SlotError as exc:
                self.last_result = {"result": "refused", "reason": exc.reason, "detail": str(exc)}
                raise
            return self._take_over(accepted[0], "switched")

    def rollback(self) -> str:
        """Make the previous model active again and run it; returns what the host is told.

        Raises
        ------
        SlotError
            ``no_previous``, or the previous model's reason if it no longer loads (nothing changes then).
        """
        with self.held():
            previous = self.slots.previous
            if not previous.exists():
                raise SlotError("no_previous", "no previous model to roll back to")
            try:
                loaded = _open(previous, self.slots, self.config, self.columns)
            except PackageError as exc:
                raise SlotError(exc.reason, f"the previous model does not load: {exc}") from None
            self.slots.rollback()
            return self._take_over(loaded, "rolled_back")

    def _take_over(self, loaded: LoadedModel, result: str) -> str:
        # it was verified as the candidate (or previous) file, which is active.fcpkg now
        loaded = replace(loaded, package=replace(loaded.package, path=self.slots.active))
        note, live = loaded.version, self.switch is not None
        if self.switch is not None:
            try:
                self.switch(loaded)
            except ContractError:
                note += " (active from the next start: it needs another rate or other sensors)"
                live = False
        self.last_result = {"result": result, "model_version": loaded.version, "live": live}
        return note
