"""The model lifecycle: the one way a package becomes a running model, and the one owner of the running model.

Loading
-------
:func:`load_model` is the only code that turns a package file into a model the device runs. Every entry
point goes through it: ``forcecast edge run --model``, a start from the model slots, an upload committed over
BLE, ``forcecast flash --path``, a rollback, ``forcecast edge bench`` and ``forcecast demo``. So a bad package
is refused for the same reason wherever it arrives (:class:`forcecast.edge.package.PackageError` ``reason``):

=====================  ==================================================================================
reason                 what was wrong
=====================  ==================================================================================
(read and signature)   ``unreadable``, ``too_large``, ``untrusted_key``, ``bad_signature``,
                       ``model_mismatch``, ``contract_invalid`` ... (:func:`forcecast.edge.package.open_package`)
``contract_mismatch``  the contract does not fit the device: sensors it lacks for the legs it predicts,
                       or no Edge TPU build where ``[runtime] edgetpu = true``
``model_invalid``      signed and intact, but ``model.tflite`` does not load in this runtime
``contract_invalid``   the model's tensors are not the shapes its contract implies
``selftest_failed``    the golden input/output pairs do not reproduce on this interpreter
=====================  ==================================================================================

Threading rules (a running runtime)
-----------------------------------
Three kinds of threads touch the model of a running runtime; :class:`ModelLifecycle` is the only object
that changes which model that is.

1. **The pipeline thread** (:meth:`forcecast.edge.runtime.launch.Runtime.run`: the source, the pipeline,
   inference). It runs the pipeline's own copy of the model and never reads :attr:`ModelLifecycle.current`.
   After every chunk it calls :meth:`ModelLifecycle.check_trial`, which takes the lifecycle lock *without
   waiting*: while a commit holds it (seconds of self-test) the check simply happens at a later chunk,
   so inference never stalls behind an upload. :meth:`ModelLifecycle.watch_trial` runs here too (the
   pipeline calls it after a switched model's first inference).
2. **The radio's event-loop thread** (asyncio, bumble). It only *reads*: :attr:`ModelLifecycle.current`
   (device info) is one immutable :class:`ActiveModel` snapshot published by a single assignment, so a
   reader never sees the package of one model with the contract or SHA-256 of another, and never waits
   for a lock. It must not call anything below that takes the lifecycle lock.
3. **Worker threads** (the GATT server runs control and upload writes with ``asyncio.to_thread``; in
   another process ``forcecast flash --path``). They change the model only through
   :class:`forcecast.edge.runtime.updates.ModelUpdates`, whose every operation holds the lifecycle lock:
   :meth:`ModelUpdates.held` (a re-entrant thread lock, then the model folder's cross-process ``flock``).

**The live switch** happens entirely under that lock, in the worker thread that committed (or in the
pipeline thread, for a rollback after a failed trial): the new model was loaded and self-tested by
:func:`load_model`; :meth:`ModelLifecycle.switch` then (a) refuses with ``ContractError`` a model that can
only start with the runtime, (b) counts the switch as the model's start in the slots, (c) stops the health
watch of the old model, (d) queues the model in the pipeline (:meth:`Pipeline.switch_model`, its own small
lock), which the pipeline thread takes over at the start of its next chunk, and (e) publishes the new
:class:`ActiveModel` snapshot. Lock order is always lifecycle lock → folder lock → pipeline switch lock
→ snapshot lock; nothing takes them the other way round.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.package import ModelPackage, PackageError, check_model, open_package, read_package
from forcecast.edge.records import EventRecord, EventType
from forcecast.edge.runtime.health import Health, HealthMonitor, ModelHealthError
from forcecast.edge.runtime.pipeline import needed_columns
from forcecast.edge.selftest import run_golden
from forcecast.edge.slots import ModelSlots, SlotError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from forcecast.edge.runtime.config import DeviceConfig
    from forcecast.edge.runtime.pipeline import Pipeline
    from forcecast.edge.runtime.updates import ModelUpdates

EventRecords = list[tuple[float, EventRecord]]
"""Lifecycle events to record: ``(sensor time, event)`` pairs."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified package with its interpreter, fitted to the device and self-tested (:func:`load_model`)."""

    package: ModelPackage
    contract: ModelContract
    model: TFLiteModel

    @property
    def version(self) -> str:
        """The manifest's model version."""
        return str(self.package.manifest["model_version"])


@dataclass(frozen=True)
class ModelFit:
    """What a model must fit on this device.

    Attributes
    ----------
    columns
        IMU columns the sensors (or the replayed source) provide.
    legs
        Legs the runtime predicts (``l``, ``r``).
    edgetpu
        Run the package's Edge TPU build (it must have one).
    threads
        Interpreter threads.
    """

    columns: tuple[str, ...]
    legs: tuple[str, ...] = ("r",)
    edgetpu: bool = False
    threads: int = 1

    @classmethod
    def of(cls, config: DeviceConfig, columns: tuple[str, ...]) -> ModelFit:
        """The fit a device with ``config`` and sensors giving ``columns`` asks for."""
        runtime = config.runtime
        return cls(tuple(columns), tuple(runtime.legs), runtime.edgetpu, runtime.threads)


def load_model(path: Path | str, trusted: Sequence[Ed25519PublicKey] | None, fit: ModelFit) -> LoadedModel:
    """Open, verify, fit and self-test a package: the only way a package becomes a running model.

    Parameters
    ----------
    path
        The package file.
    trusted
        Keys the package may be signed with (an empty list trusts nothing). ``None`` only for developer
        tools measuring a package whose signer is not at hand (``forcecast edge bench`` without
        ``--pubkey``): then the model hash and the contract are checked, the signature is not.
    fit
        What the device has (:class:`ModelFit`).

    Raises
    ------
    PackageError
        With the first reason the package is refused (see the module docstring for the reasons).
    forcecast.edge.interpreter.RuntimeMissingError
        If no TFLite runtime (or no Edge TPU library where one is asked for) is installed: that is the
        device's problem, not the package's.
    """
    path = Path(path)
    if trusted is None:
        package = read_package(path)
        check_model(package)
        contract = package.contract
    else:
        package, contract = open_package(path, list(trusted))
    name = path.name
    try:
        needed_columns(contract, fit.legs, fit.columns)
    except ContractError as exc:
        raise PackageError("contract_mismatch", f"{name}: {exc}") from None
    if fit.edgetpu and package.edgetpu_model is None:
        raise PackageError("contract_mismatch", f"{name}: [runtime] edgetpu = true but it has no Edge TPU build")
    model_bytes = package.edgetpu_model if fit.edgetpu and package.edgetpu_model is not None else package.model
    try:
        model = TFLiteModel(model_bytes, num_threads=fit.threads, edgetpu=fit.edgetpu)
    except ValueError as exc:  # signed and intact, yet not a model this runtime can load
        raise PackageError("model_invalid", f"{name}: model.tflite does not load: {exc}") from None
    try:
        model.check_contract(contract)
    except ContractError as exc:
        raise PackageError("contract_invalid", f"{name}: {exc}") from None
    result = run_golden(model, package.manifest["golden"])
    if not result.ok:
        raise PackageError("selftest_failed", f"{name}: golden self-test failed: {'; '.join(result.messages)}")
    return LoadedModel(package, contract, model)


def load_model_file(path: Path | str, key_files: Sequence[Path], fit: ModelFit) -> LoadedModel:
    """:func:`load_model` with the trusted keys given as public-key files (``--pubkey``, ``trusted_keys``).

    Raises
    ------
    forcecast.edge.config.ConfigError
        If no key file is given (the device runs only signed models) or one cannot be read.
    PackageError
        As :func:`load_model`.
    """
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.runtime.updates import trusted_keys

    return load_model(path, [load_public_key(k) for k in trusted_keys(list(key_files))], fit)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes ("" if it does not exist)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


@dataclass(frozen=True)
class ActiveModel:
    """What runs now: one immutable snapshot, replaced whole at a switch (see the threading rules)."""

    loaded: LoadedModel
    sha256: str

    @property
    def package(self) -> ModelPackage:
        """The package."""
        return self.loaded.package

    @property
    def contract(self) -> ModelContract:
        """Its contract."""
        return self.loaded.contract

    @property
    def model(self) -> TFLiteModel:
        """Its interpreter."""
        return self.loaded.model

    @property
    def version(self) -> str:
        """Its model version."""
        return self.loaded.version


class ModelLifecycle:
    """The one owner of the model a running runtime runs: switch, trial watch, confirm, roll back.

    Read the module docstring's threading rules before calling anything here.

    Parameters
    ----------
    loaded
        The model the runtime started with (already in ``pipeline``).
    sha256
        SHA-256 of its package file (device info).
    pipeline
        The pipeline running it.
    health
        The health watch of a model on trial (a pipeline listener).
    record
        Records lifecycle events (through the pipeline's storage guard).
    slots
        The model slots it came from (None: a fixed package, ``--model``; no trial, no switch).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        sha256: str,
        pipeline: Pipeline,
        health: HealthMonitor,
        record: Callable[[EventRecords], None],
        slots: ModelSlots | None = None,
    ) -> None:
        self._current = ActiveModel(loaded, sha256)
        self._publish_lock = threading.Lock()
        self.pipeline = pipeline
        self.health = health
        self.record = record
        self.slots = slots
        self.updates: ModelUpdates | None = None

    @property
    def current(self) -> ActiveModel:
        """The active model's snapshot (any thread; never waits for a commit)."""
        return self._current

    def attach(self, updates: ModelUpdates) -> None:
        """Take updates (before the runtime's threads start): their switch is :meth:`switch`."""
        updates.switch = self.switch
        self.updates = updates

    # ------------------------------------------------------------ worker thread, lifecycle lock held

    def switch(self, loaded: LoadedModel) -> None:
        """Hand the running pipeline over to ``loaded`` (called by ``ModelUpdates`` with its lock held).

        The switch counts as the new model's start (a crash before its health period ends rolls it
        back); its health period begins with its first inference (:meth:`watch_trial`).

        Raises
        ------
        ContractError
            If the model can only start with the runtime (another rate, alignment or sensors); nothing
            changes then and the model runs from the next start.
        """
        if self.slots is None:
            raise ContractError(f"model {loaded.version}: this runtime runs a fixed package")
        if not self.pipeline.can_switch_to(loaded.contract):
            raise ContractError(f"model {loaded.version} can only start with the runtime")
        self.slots.model_for_start()  # the switch is this model's start: a crash before it confirms rolls back
        self.health.disarm()  # whatever was watched is not running any more
        watch = self.watch_trial if self.slots.on_trial else None
        self.pipeline.switch_model(loaded.model, loaded.contract, loaded.version, on_running=watch)
        active = ActiveModel(loaded, file_sha256(self.slots.active))
        with self._publish_lock:
            self._current = active

    # ------------------------------------------------------------ pipeline thread

    def watch_trial(self) -> None:
        """The model on trial starts its health period now (its first inference; pipeline thread)."""
        self.health.arm()

    def check_trial(self) -> None:
        """End the trial of the running model once its health period is over, well or badly (pipeline thread).

        Never waits: if a commit holds the lifecycle, the check happens after a later chunk.

        Raises
        ------
        ModelHealthError
            If the model on trial misbehaved and the previous model cannot take over while running.
        """
        if self.slots is None or self.health.state in (Health.IDLE, Health.RUNNING):
            return
        try:
            with self._held_now():
                self._end_trial()
        except SlotError as exc:
            if exc.reason != "busy":
                raise

    def _held_now(self) -> AbstractContextManager[None]:
        if self.updates is not None:
            return self.updates.held(wait=False)
        return self.slots.locked(wait=False) if self.slots is not None else nullcontext()

    def _end_trial(self) -> None:
        state = self.health.state  # again: a switch may have ended this trial while we waited
        if self.slots is None or state in (Health.IDLE, Health.RUNNING):
            return
        newest = self.pipeline.newest_input_s
        at = newest if math.isfinite(newest) else 0.0
        version = self.pipeline.model_version
        if state is Health.HEALTHY:
            if self.slots.confirm(wait=False):
                self.health.disarm()
                detail = f"{version} ran {self.health.ran_s:.0f} s with plausible outputs"
                self.record([(at, EventRecord(event=EventType.MODEL_CONFIRMED, detail=detail))])
            return
        problem = str(self.health.problem)
        self.health.disarm()
        self.slots.mark_failed(problem)
        self.record([(at, EventRecord(event=EventType.MODEL_UNHEALTHY, detail=f"{version}: {problem}"))])
        if self.updates is not None and self.slots.previous.exists():
            try:
                note = self.updates.rollback()
            except SlotError:
                note = ""
            if note and self.updates.last_result.get("live"):
                rolled_back = EventRecord(event=EventType.MODEL_ROLLED_BACK, detail=f"to {note}: {problem}")
                self.record([(at, rolled_back)])
                return
        raise ModelHealthError(f"model {version} on trial misbehaved ({problem}); the next start rolls it back")
