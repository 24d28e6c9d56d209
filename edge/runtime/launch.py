"""Put a runtime together from a package, a source spec and ``device.toml``, and run it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from forcecast.edge.ble.profile import ProfileHandler
from forcecast.edge.contract import ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import ModelPackage, PackageError, read_package
from forcecast.edge.profile import ProfileFile, profile_path
from forcecast.edge.records import EventRecord, EventType
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, load_device_config
from forcecast.edge.runtime.device_info import device_info, fit_info
from forcecast.edge.runtime.feedback import Cue, GpioCue, StdoutCue
from forcecast.edge.runtime.health import HealthMonitor
from forcecast.edge.runtime.lifecycle import EventRecords, ModelFit, ModelLifecycle, file_sha256, load_model_file
from forcecast.edge.runtime.patient_state import start_patient
from forcecast.edge.runtime.pipeline import Listener, Pipeline, run_source
from forcecast.edge.runtime.store import RecordStore
from forcecast.edge.runtime.systemd import Notifier
from forcecast.edge.runtime.updates import ModelUpdates, sensor_columns, start_model, trusted_keys
from forcecast.edge.slots import ModelSlots
from forcecast.edge.sources.base import Source, SourceError


def open_source(spec: str, config: DeviceConfig, speed: float = 1.0) -> Source:
    """A source from its command-line spec: ``i2c``, ``synthetic[:SUBJECT]`` or ``replay:FILE``."""
    kind, _, argument = spec.partition(":")
    if kind == "replay":
        from forcecast.edge.sources.replay import ReplaySource

        if not argument:
            raise SourceError("replay needs a file: --source replay:trials/S01/walk_comfortable.csv")
        return ReplaySource(argument, speed=speed)
    if kind == "synthetic":
        from forcecast.edge.sources.plugins import source_class

        try:
            subject = int(argument) if argument else 1
        except ValueError:
            raise SourceError(f"synthetic:{argument}: the subject must be a number, e.g. synthetic:3") from None
        walker: Source = source_class("synthetic")(subject=subject, speed=speed)  # the lab layer's walker, a plug-in
        return walker
    if kind == "i2c":
        from forcecast.edge.sources.i2c import I2CSource

        return I2CSource(config.sensors, poll_s=config.runtime.poll_s)
    raise SourceError(f"unknown source {spec!r}: use i2c, synthetic[:SUBJECT] or replay:FILE")


def patient_for(source: Source, config: DeviceConfig, explicit: bool) -> PatientConfig:
    """The configured patient, or (without a config file) the replayed/synthetic subject's profile."""
    subject = getattr(source, "subject", None)
    if explicit or subject is None:
        return config.patient
    return replace(
        config.patient,
        patient_id=subject.subject_id,
        body_mass_kg=subject.body_mass_kg,
        height_m=subject.height_m,
        hka_deg=subject.hka_deg,
        affected_side=subject.affected_side,
    )


def make_cue(config: DeviceConfig) -> Cue | None:
    """The configured feedback output."""
    feedback = config.feedback
    if feedback.output == "gpio":
        return GpioCue(feedback.gpio_chip, feedback.gpio_pin, feedback.pulse_s)
    if feedback.output == "stdout":
        return StdoutCue()
    return None


def slots_info(slots: ModelSlots) -> dict[str, Any]:
    """What the device-info JSON says about the model slots: previous model, trial, upload in progress."""
    previous = slots.previous
    version = None
    if previous.exists():
        try:
            version = read_package(previous).manifest.get("model_version")
        except PackageError:
            version = "unreadable"
    upload = slots.peek_upload()  # never waits: a commit may hold the folder for seconds
    return {
        "previous_model": version,
        "on_trial": slots.on_trial,
        "upload": None if upload is None else {"offset": upload.offset, "size": upload.size},
    }


@dataclass
class Runtime:
    """A runtime put together and ready to run (see :func:`build_runtime`).

    Which model runs is not a field: :attr:`lifecycle` owns it (read the threading rules of
    :mod:`forcecast.edge.runtime.lifecycle`); :attr:`package`, :attr:`contract`, :attr:`model` and
    :attr:`package_sha256` read its current snapshot.
    """

    config: DeviceConfig
    lifecycle: ModelLifecycle
    source: Source
    source_spec: str
    patient: PatientConfig
    store: RecordStore
    pipeline: Pipeline
    notifier: Notifier = field(default_factory=Notifier)
    slots: ModelSlots | None = None
    profiles: ProfileHandler | None = None
    """Takes patient profiles over BLE (stored in ``profile.json`` beside the record store)."""

    @property
    def package(self) -> ModelPackage:
        """The active model's package."""
        return self.lifecycle.current.package

    @property
    def contract(self) -> ModelContract:
        """The active model's contract."""
        return self.lifecycle.current.contract

    @property
    def model(self) -> TFLiteModel:
        """The active model's interpreter."""
        return self.lifecycle.current.model

    @property
    def package_sha256(self) -> str:
        """SHA-256 of the active model's package file."""
        return self.lifecycle.current.sha256

    @property
    def updates(self) -> ModelUpdates | None:
        """Model updates (None: a fixed package, or ``[models] updates = false``)."""
        return self.lifecycle.updates

    @property
    def health(self) -> HealthMonitor:
        """The health watch of a model on trial."""
        return self.lifecycle.health

    def describe(self) -> str:
        """One line for the log: model, legs, patient, source, store."""
        return (
            f"model {self.package.manifest['model_version']} ({self.package.manifest['quantisation'].get('mode')}, "
            f"{self.model.runtime}); legs {', '.join(self.config.runtime.legs)}; patient {self.patient.patient_id} "
            f"({self.patient.body_mass_kg:g} kg, {self._profile_source()}); source {self.source_spec} at "
            f"{self.source.rate_hz:g} Hz; "
            f"store {self.store.path}"
        )

    def _profile_source(self) -> str:
        version = self.pipeline.patient_state.version
        return f"profile version {version}" if version else "no profile"

    def info(self) -> dict[str, Any]:
        """What the device tells a host about itself (the BLE device-info characteristic; any thread)."""
        active = self.lifecycle.current  # one snapshot: package, contract and SHA-256 of the same model
        info = device_info(self.config, active.package, active.contract, active.sha256)
        info["updates"] = self.updates is not None
        info["profile_version"] = self.pipeline.patient_state.version  # 0: device.toml's [patient]; not personal
        if self.slots is not None:
            info |= slots_info(self.slots)
        return fit_info(info)  # no personal data, at most 512 bytes (forcecast.edge.runtime.device_info)

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Run until the source ends or ``duration_s`` of sensor time has passed (any thread).

        Raises
        ------
        ModelHealthError
            If the model on trial produced non-finite or implausible outputs and the previous model
            cannot take over while running: the next start runs the previous model.
        """
        notified = False

        def tick() -> None:
            nonlocal notified
            if not notified and self.pipeline.calibration is not None:
                calibrated = self.pipeline.report.calibration.get("calibrated")
                self.notifier.ready(f"running; calibration {'ok' if calibrated else 'skipped'}")
                notified = True
            self.lifecycle.check_trial()
            self.notifier.ping()

        try:
            report = run_source(self.pipeline, self.source, duration_s, tick)
        except KeyboardInterrupt:
            report = self.pipeline.finish()
        return report.as_dict() | {"store": str(self.store.path), "patient_id": self.patient.patient_id}

    def record_events(self, records: EventRecords) -> None:
        """Record lifecycle events through the pipeline's storage guard: a full disk holds them, never stops us."""
        self.lifecycle.record(records)

    def close(self) -> None:
        """Stop the source and close the store."""
        self.source.close()
        self.store.close()


def event_recorder(pipeline: Pipeline, store: RecordStore) -> Callable[[EventRecords], None]:
    """Where lifecycle events go: the pipeline's storage guard (a full disk holds them, never stops us)."""

    def record(records: EventRecords) -> None:
        patient = pipeline.patient.patient_id
        records = [(t, r if r.patient_id is not None else replace(r, patient_id=patient)) for t, r in records]
        if pipeline.storage is not None:
            pipeline.storage.append("event", records)
        else:
            store.append("event", records)

    return record


def build_runtime(
    model_path: Path | None,
    source_spec: str,
    config_path: Path | None,
    pubkeys: list[Path],
    store_path: Path | None = None,
    speed: float = 1.0,
    listeners: list[Listener] | None = None,
) -> Runtime:
    """Verify and load the model, open the source and the store, and build the pipeline.

    With ``model_path`` the runtime runs that package and takes no updates; without it, the model comes
    from the slots in ``[models] folder`` (rolling back one that fails on trial) and updates are taken.
    A patient profile stored in the record store's folder (``profile.json``) is put over ``[patient]``.
    """
    config = load_device_config(config_path)
    trusted = trusted_keys(list(pubkeys) or list(config.trusted_keys))
    source = open_source(source_spec, config, speed)
    slots: ModelSlots | None = None
    notes: list[str] = []
    if model_path is not None:
        loaded = load_model_file(model_path, trusted, ModelFit.of(config, source.columns))
    else:
        slots = ModelSlots(config.models.folder, [load_public_key(k) for k in trusted])
        loaded, notes = start_model(slots, config, source.columns)
    patient = patient_for(source, config, explicit=config_path is not None)
    store = RecordStore(store_path or config.store.path, config.store.max_bytes, config.device_id)
    stored_profile = ProfileFile(profile_path(store.path.parent))
    patient_state = start_patient(patient, stored_profile)
    patient = patient_state.patient
    health = HealthMonitor(config.models.health_s, config.models.health_steps)
    pipeline = Pipeline(
        loaded.model,
        loaded.contract,
        config,
        source.columns,
        source.rate_hz,
        source.acc_range_mps2,
        source.gyr_range_rads,
        sink=store,
        cue=make_cue(config),
        model_version=loaded.version,
        patient=patient,
        listeners=[*(listeners or []), health.listener],
        patient_state=patient_state,
    )
    lifecycle = ModelLifecycle(
        loaded, file_sha256(loaded.package.path), pipeline, health, event_recorder(pipeline, store), slots
    )
    runtime = Runtime(
        config,
        lifecycle,
        source,
        source_spec,
        patient,
        store,
        pipeline,
        slots=slots,
        profiles=ProfileHandler(stored_profile, patient_state),
    )
    if notes:
        runtime.record_events([(0.0, EventRecord(event=EventType.MODEL_ROLLED_BACK, detail=note)) for note in notes])
    if slots is not None and slots.on_trial:
        lifecycle.watch_trial()  # this start is the new model's trial: its health period begins
    if slots is not None and config.models.updates:
        # A new model must run on the sensors the device has, whatever a replayed trial provides.
        fitted = tuple(c for c in source.columns if c in sensor_columns(config))
        lifecycle.attach(ModelUpdates(slots, config, fitted))
    return runtime


def launch(
    model_path: Path | None,
    source_spec: str,
    config_path: Path | None,
    pubkeys: list[Path],
    store_path: Path | None = None,
    speed: float = 1.0,
    duration_s: float | None = None,
    log: TextIO | None = sys.stderr,
    listeners: list[Listener] | None = None,
    ble: bool = False,
) -> dict[str, Any]:
    """Run until the source ends, ``duration_s`` of sensor time has passed, or SIGTERM/SIGINT.

    With ``ble`` (or ``[ble] enabled`` in the config) the GATT server runs alongside.
    """
    runtime = build_runtime(model_path, source_spec, config_path, pubkeys, store_path, speed, listeners)
    if log is not None:
        print(runtime.describe(), file=log)
    try:
        if ble or runtime.config.ble.enabled:
            import asyncio

            from forcecast.edge.ble.serve import serve_radio

            return asyncio.run(serve_radio(runtime, duration_s, log))
        previous = signal.signal(signal.SIGTERM, lambda *_: runtime.source.close())
        try:
            return runtime.run(duration_s)
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        runtime.close()
