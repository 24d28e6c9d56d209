"""Put a runtime together from a package, a source spec and ``device.toml``, and run it."""

from __future__ import annotations

import hashlib
import math
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import ModelPackage, PackageError, open_package, read_package
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, load_device_config
from forcecast.edge.runtime.device_info import device_info, fit_info
from forcecast.edge.runtime.feedback import Cue, GpioCue, StdoutCue
from forcecast.edge.runtime.health import Health, HealthMonitor, ModelHealthError
from forcecast.edge.runtime.pipeline import Listener, Pipeline, run_source
from forcecast.edge.runtime.store import RecordStore
from forcecast.edge.runtime.systemd import Notifier
from forcecast.edge.runtime.updates import ModelUpdates, runtime_switch, sensor_columns, start_model, trusted_keys
from forcecast.edge.selftest import run_golden
from forcecast.edge.slots import ModelSlots, SlotError
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
        return source_class("synthetic")(subject=subject, speed=speed)  # the lab layer's walker, a plug-in
    if kind == "i2c":
        from forcecast.edge.sources.i2c import I2CSource

        return I2CSource(config.sensors)
    raise SourceError(f"unknown source {spec!r}: use i2c, synthetic[:SUBJECT] or replay:FILE")


def load_model(
    path: Path, trusted: list[Path], edgetpu: bool = False, threads: int = 1
) -> tuple[ModelPackage, ModelContract, TFLiteModel]:
    """Verify a package against trusted keys, build its interpreter and pass its golden self-test.

    Raises
    ------
    PackageError
        If the package is refused, has no Edge TPU build when one is asked for, or fails its self-test.
    """
    package, contract = open_package(path, [load_public_key(k) for k in trusted_keys(trusted)])
    if edgetpu and package.edgetpu_model is None:
        raise PackageError(
            "unsupported", f"{path.name}: [runtime] edgetpu = true but the package has no Edge TPU build"
        )
    model = TFLiteModel(package.edgetpu_model if edgetpu else package.model, num_threads=threads, edgetpu=edgetpu)  # type: ignore[arg-type]
    try:
        model.check_contract(contract)
    except ContractError as exc:
        raise PackageError("contract_invalid", f"{path.name}: {exc}") from None
    result = run_golden(model, package.manifest["golden"])
    if not result.ok:
        raise PackageError("selftest_failed", f"{path.name}: golden self-test failed: {'; '.join(result.messages)}")
    return package, contract, model


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
        affected_side=subject.affected_side,  # type: ignore[arg-type]
    )


def make_cue(config: DeviceConfig) -> Cue | None:
    """The configured feedback output."""
    feedback = config.feedback
    if feedback.output == "gpio":
        return GpioCue(feedback.gpio_chip, feedback.gpio_pin, feedback.pulse_s)
    if feedback.output == "stdout":
        return StdoutCue()
    return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes ("" if it does not exist)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


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
    """A runtime put together and ready to run (see :func:`build_runtime`)."""

    config: DeviceConfig
    package: ModelPackage
    contract: ModelContract
    model: TFLiteModel
    source: Source
    source_spec: str
    patient: PatientConfig
    store: RecordStore
    pipeline: Pipeline
    notifier: Notifier = field(default_factory=Notifier)
    slots: ModelSlots | None = None
    updates: ModelUpdates | None = None
    package_sha256: str = ""
    health: HealthMonitor = field(default_factory=lambda: HealthMonitor(0.0))

    def describe(self) -> str:
        """One line for the log: model, legs, patient, source, store."""
        return (
            f"model {self.package.manifest['model_version']} ({self.package.manifest['quantisation'].get('mode')}, "
            f"{self.model.runtime}); legs {', '.join(self.config.runtime.legs)}; patient {self.patient.patient_id} "
            f"({self.patient.body_mass_kg:g} kg); source {self.source_spec} at {self.source.rate_hz:g} Hz; "
            f"store {self.store.path}"
        )

    def info(self) -> dict[str, Any]:
        """What the device tells a host about itself (the BLE device-info characteristic)."""
        info = device_info(self.config, self.package, self.contract, self.package_sha256)
        info["updates"] = self.updates is not None
        if self.slots is not None:
            info |= slots_info(self.slots)
        return fit_info(info)  # no personal data, at most 512 bytes (forcecast.edge.runtime.device_info)

    def watch_trial(self) -> None:
        """The model on trial starts its health period now (its first inference; pipeline thread)."""
        self.health.arm()

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
            self._check_trial()
            self.notifier.ping()

        try:
            report = run_source(self.pipeline, self.source, duration_s, tick)
        except KeyboardInterrupt:
            report = self.pipeline.finish()
        return report.as_dict() | {"store": str(self.store.path), "patient_id": self.patient.patient_id}

    def _check_trial(self) -> None:
        """End the trial of the running model once its health period is over, well or badly."""
        state = self.health.state
        if self.slots is None or state in (Health.IDLE, Health.RUNNING):
            return
        newest = self.pipeline.newest_input_s
        at = newest if math.isfinite(newest) else 0.0
        version = self.pipeline.model_version
        if state is Health.HEALTHY:
            if self.slots.confirm(wait=False):  # busy (a commit is running): try again at the next chunk
                self.health.disarm()
                detail = f"{version} ran {self.health.ran_s:.0f} s with plausible outputs"
                self.record_events([(at, {"event": "model_confirmed", "detail": detail})])
            return
        problem = str(self.health.problem)
        self.health.disarm()
        self.slots.mark_failed(problem)
        self.record_events([(at, {"event": "model_unhealthy", "detail": f"{version}: {problem}"})])
        if self.updates is not None and self.slots.previous.exists():
            try:
                note = self.updates.rollback()
            except SlotError:
                note = ""
            if note and self.updates.last_result.get("live"):
                self.record_events([(at, {"event": "model_rolled_back", "detail": f"to {note}: {problem}"})])
                return
        raise ModelHealthError(f"model {version} on trial misbehaved ({problem}); the next start rolls it back")

    def record_events(self, records: list[tuple[float, dict[str, Any]]]) -> None:
        """Record lifecycle events through the pipeline's storage guard: a full disk holds them, never stops us."""
        if self.pipeline.storage is not None:
            self.pipeline.storage.append("event", records)
        else:
            self.store.append("event", records)

    def close(self) -> None:
        """Stop the source and close the store."""
        self.source.close()
        self.store.close()


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
    """
    config = load_device_config(config_path)
    trusted = trusted_keys(list(pubkeys) or list(config.trusted_keys))
    source = open_source(source_spec, config, speed)
    slots: ModelSlots | None = None
    notes: list[str] = []
    if model_path is not None:
        package, contract, model = load_model(model_path, trusted, config.runtime.edgetpu, config.runtime.threads)
    else:
        slots = ModelSlots(config.models.folder, [load_public_key(k) for k in trusted])
        loaded, notes = start_model(slots, config, source.columns)
        package, contract, model = loaded.package, loaded.contract, loaded.model
    patient = patient_for(source, config, explicit=config_path is not None)
    store = RecordStore(store_path or config.store.path, config.store.max_bytes, config.device_id)
    pipeline = Pipeline(
        model,
        contract,
        config,
        source.columns,
        source.rate_hz,
        source.acc_range_mps2,
        source.gyr_range_rads,
        sink=store,
        cue=make_cue(config),
        model_version=str(package.manifest["model_version"]),
        patient=patient,
        listeners=list(listeners or []),
    )
    runtime = Runtime(
        config,
        package,
        contract,
        model,
        source,
        source_spec,
        patient,
        store,
        pipeline,
        slots=slots,
        package_sha256=file_sha256(package.path),
        health=HealthMonitor(config.models.health_s, config.models.health_steps),
    )
    pipeline.listeners.append(runtime.health.listener)
    if notes:
        runtime.record_events([(0.0, {"event": "model_rolled_back", "detail": note}) for note in notes])
    if slots is not None and slots.on_trial:
        runtime.watch_trial()  # this start is the new model's trial: its health period begins
    if slots is not None and config.models.updates:
        # A new model must run on the sensors the device has, whatever a replayed trial provides.
        fitted = tuple(c for c in source.columns if c in sensor_columns(config))
        runtime.updates = ModelUpdates(slots, config, fitted, runtime_switch(runtime, slots))
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
