"""Put a runtime together from a package, a source spec and ``device.toml``, and run it."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

from edge.config import ConfigError
from edge.contract import ModelContract
from edge.interpreter import TFLiteModel
from edge.keys import load_public_key
from edge.package import ModelPackage, PackageError, open_package
from edge.protocol import VERSION as PROTOCOL_VERSION
from edge.runtime.config import DeviceConfig, PatientConfig, load_device_config
from edge.runtime.feedback import Cue, GpioCue, StdoutCue
from edge.runtime.pipeline import Listener, Pipeline, run_source
from edge.runtime.store import RecordStore
from edge.runtime.systemd import Notifier
from edge.selftest import run_golden
from edge.sources.base import Source, SourceError


def open_source(spec: str, config: DeviceConfig, speed: float = 1.0) -> Source:
    """A source from its command-line spec: ``i2c``, ``synthetic[:SUBJECT]`` or ``replay:FILE``."""
    kind, _, argument = spec.partition(":")
    if kind == "replay":
        from edge.sources.replay import ReplaySource

        if not argument:
            raise SourceError("replay needs a file: --source replay:trials/S01/walk_comfortable.csv")
        return ReplaySource(argument, speed=speed)
    if kind == "synthetic":
        from edge.sources.synthetic import SyntheticSource

        try:
            subject = int(argument) if argument else 1
        except ValueError:
            raise SourceError(f"synthetic:{argument}: the subject must be a number, e.g. synthetic:3") from None
        return SyntheticSource(subject=subject, speed=speed)
    if kind == "i2c":
        from edge.sources.i2c import I2CSource

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
    if not trusted:
        raise ConfigError(
            "no trusted public keys: list them in device.toml (trusted_keys = [...]) or pass --pubkey; "
            "the device runs only signed models"
        )
    package, contract = open_package(path, [load_public_key(k) for k in trusted])
    if edgetpu and package.edgetpu_model is None:
        raise PackageError(
            "unsupported", f"{path.name}: [runtime] edgetpu = true but the package has no Edge TPU build"
        )
    model = TFLiteModel(package.edgetpu_model if edgetpu else package.model, num_threads=threads, edgetpu=edgetpu)  # type: ignore[arg-type]
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


def device_info(
    config: DeviceConfig, package: ModelPackage, contract: ModelContract, patient: PatientConfig
) -> dict[str, Any]:
    """The device-info characteristic's JSON: who the device is, which model it runs, for whom."""
    manifest = package.manifest
    return {
        "device_id": config.device_id,
        "firmware": version("forcecast"),
        "protocol": PROTOCOL_VERSION,
        "model_version": manifest["model_version"],
        "model_sha256": manifest.get("model_sha256", ""),
        "quantisation": manifest["quantisation"].get("mode"),
        "rate_hz": contract.rate_hz,
        "legs": list(config.runtime.legs),
        "patient_id": patient.patient_id,
        "body_mass_kg": patient.body_mass_kg,
        "peak_limit_bw": patient.peak_limit_bw,
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
        return device_info(self.config, self.package, self.contract, self.patient)

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Run until the source ends or ``duration_s`` of sensor time has passed (any thread)."""
        notified = False

        def tick() -> None:
            nonlocal notified
            if not notified and self.pipeline.calibration is not None:
                calibrated = self.pipeline.report.calibration.get("calibrated")
                self.notifier.ready(f"running; calibration {'ok' if calibrated else 'skipped'}")
                notified = True
            self.notifier.ping()

        try:
            report = run_source(self.pipeline, self.source, duration_s, tick)
        except KeyboardInterrupt:
            report = self.pipeline.finish()
        return report.as_dict() | {"store": str(self.store.path), "patient_id": self.patient.patient_id}

    def close(self) -> None:
        """Stop the source and close the store."""
        self.source.close()
        self.store.close()


def build_runtime(
    model_path: Path,
    source_spec: str,
    config_path: Path | None,
    pubkeys: list[Path],
    store_path: Path | None = None,
    speed: float = 1.0,
    listeners: list[Listener] | None = None,
) -> Runtime:
    """Verify and load the model, open the source and the store, and build the pipeline."""
    config = load_device_config(config_path)
    package, contract, model = load_model(
        model_path, list(pubkeys) or list(config.trusted_keys), config.runtime.edgetpu, config.runtime.threads
    )
    source = open_source(source_spec, config, speed)
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
    return Runtime(config, package, contract, model, source, source_spec, patient, store, pipeline)


def launch(
    model_path: Path,
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

            from edge.ble.serve import serve_radio

            return asyncio.run(serve_radio(runtime, duration_s, log))
        previous = signal.signal(signal.SIGTERM, lambda *_: runtime.source.close())
        try:
            return runtime.run(duration_s)
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        runtime.close()
