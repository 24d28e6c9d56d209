"""GRF from IMU-only recordings through the device's own streaming pipeline (``forcecast predict``).

What a researcher gets offline is what the device would compute: the trial is fed chunk by chunk to
:class:`forcecast.edge.runtime.pipeline.Pipeline` (quality guard, resampling, per-leg inference, step
detection, step metrics). A Keras run is wrapped in :class:`KerasStreamModel`, which gives it the
interface of :class:`forcecast.edge.interpreter.TFLiteModel` that the pipeline calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forcecast.edge.config import ConfigError
from forcecast.edge.contract import ModelContract
from forcecast.edge.interpreter import TensorInfo
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig
from forcecast.edge.runtime.pipeline import Pipeline, run_source
from forcecast.edge.schema import AFFECTED_SIDES, GRAVITY_MPS2, TIME_COLUMN, parse_column
from forcecast.edge.sources.base import Chunk, SourceError, SubjectProfile
from forcecast.edge.sources.lsm6dsox import ACC_RANGE_MPS2, GYR_RANGE_RADS

FloatArray = NDArray[np.float64]
AXES = ("v", "ap", "ml")
STEP_COLUMNS = ("leg", "ic_s", "tc_s", "stance_s", "peak1_bw", "peak2_bw", "peak1_n", "peak2_n", "flags")
"""Columns of an empty step table (a recording without a detected stance)."""
STATIC_KEYS = ("body_mass_kg", "height_m", "hka_deg", "affected_side")
"""Keys of ``--static KEY=VALUE,...`` (those of a dataset's ``subjects.csv``)."""


class KerasStreamModel:
    """A Keras model with the interface the device pipeline calls (``inputs``, ``encode``, ``run_encoded``).

    Parameters
    ----------
    model
        A Keras model from a training run (``model.keras``): input ``imu`` and optionally ``static``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        names = [t.name.split(":")[0] for t in model.inputs]
        self.uses_static = any(n.startswith("static") for n in names)
        self.inputs = {"imu": TensorInfo("imu", tuple(model.inputs[0].shape), np.float32, 0.0, 0)}
        if self.uses_static:
            self.inputs["static"] = TensorInfo("static", tuple(model.inputs[-1].shape), np.float32, 0.0, 0)

    def encode(self, name: str, values: NDArray[np.floating]) -> NDArray[np.float32]:
        """Float values as the model takes them (float32: a Keras model is not quantised)."""
        if name not in self.inputs:
            raise KeyError(f"the model has no input {name!r} (inputs: {', '.join(self.inputs)})")
        return np.asarray(values, dtype=np.float32)

    def run_encoded(self, **inputs: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        """Run once on a batch of one window; the output by name, as a TFLite model gives it."""
        feed = [inputs["imu"]] if not self.uses_static else [inputs["imu"], inputs["static"]]
        return {"grf": np.asarray(self.model(feed, training=False), dtype=np.float32)}


class FrameSource:
    """A recording in memory (time and IMU columns) played to the pipeline in chunks, as fast as it takes them.

    Parameters
    ----------
    time_s
        Sample times, seconds, shape ``(n,)``.
    columns
        Format-v1 IMU column names of ``values``.
    values
        Samples, shape ``(n, len(columns))``; NaN where a sensor delivered nothing.
    chunk_s
        Duration of each chunk (the device reads its FIFO about this often).
    name
        Where the data came from, for error messages.
    """

    acc_range_mps2 = ACC_RANGE_MPS2
    gyr_range_rads = GYR_RANGE_RADS

    def __init__(
        self,
        time_s: FloatArray,
        columns: tuple[str, ...],
        values: FloatArray,
        chunk_s: float = 0.04,
        name: str = "data",
    ) -> None:
        time_s = np.asarray(time_s, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if time_s.ndim != 1 or values.shape != (time_s.size, len(columns)):
            raise SourceError(f"{name}: time_s has shape {time_s.shape}, values {values.shape}, columns {len(columns)}")
        if time_s.size < 2 or not np.all(np.isfinite(time_s)):
            raise SourceError(f"{name}: needs at least 2 samples with finite {TIME_COLUMN}")
        steps = np.diff(time_s)
        if not np.any(steps > 0):
            raise SourceError(f"{name}: cannot tell the sample rate from {TIME_COLUMN}")
        self.rate_hz = float(1.0 / np.median(steps[steps > 0]))
        if not 10.0 <= self.rate_hz <= 2000.0:
            raise SourceError(f"{name}: {self.rate_hz:.3g} Hz is not an IMU rate ({TIME_COLUMN} in seconds?)")
        self.time_s, self.columns, self.values, self.chunk_s = time_s, tuple(columns), values, chunk_s

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "data") -> FrameSource:
        """The ``time_s`` and IMU columns of a format-v1 table (force and other columns are ignored).

        Raises
        ------
        SourceError
            If ``time_s`` or every IMU column is missing.
        """
        columns = tuple(c for c in frame.columns if (s := parse_column(str(c))) is not None and s.kind == "imu")
        if TIME_COLUMN not in frame.columns or not columns:
            raise SourceError(f"{name}: needs a {TIME_COLUMN} column and IMU columns such as r_shank_acc_x")
        return cls(
            frame[TIME_COLUMN].to_numpy(np.float64), columns, frame[list(columns)].to_numpy(np.float64), name=name
        )

    def chunks(self) -> Iterator[Chunk]:
        """Yield the recording in chunks of ``chunk_s``."""
        step = max(1, round(self.chunk_s * self.rate_hz))
        for a in range(0, self.time_s.size, step):
            yield Chunk(self.time_s[a : a + step], self.values[a : a + step], self.columns)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class Prediction:
    """What the device pipeline made of one recording.

    Attributes
    ----------
    grf
        One row per model-rate sample: ``time_s``, then per leg ``<leg>_<axis>_bw`` and ``<leg>_<axis>_n``
        (axes v, ap, ml) and ``<leg>_stance`` (inside a detected stance, initial contact to toe-off).
    steps
        One row per detected stance (the step records the device stores, without the waveform).
    events
        Quality and other events the pipeline recorded (payload dictionaries).
    report
        The run report (samples, inferences, steps, quality, calibration).
    """

    grf: pd.DataFrame
    steps: pd.DataFrame
    events: list[dict[str, Any]]
    report: dict[str, Any]


def patient_from(profile: SubjectProfile | None, static: dict[str, str] | None, patient_id: str) -> PatientConfig:
    """The patient the pipeline predicts for: a dataset subject's row, overridden by ``static`` values.

    Raises
    ------
    ConfigError
        Naming a ``static`` key that is unknown or a value that is not usable.
    """
    values: dict[str, Any] = {}
    if profile is not None:
        values = {
            "body_mass_kg": profile.body_mass_kg,
            "height_m": profile.height_m,
            "hka_deg": profile.hka_deg,
            "affected_side": profile.affected_side,
        }
        patient_id = profile.subject_id if patient_id == "" else patient_id
    for key, text in (static or {}).items():
        if key not in STATIC_KEYS:
            raise ConfigError(f"--static {key}: unknown key (use {', '.join(STATIC_KEYS)})")
        if key == "affected_side":
            if text not in AFFECTED_SIDES:
                raise ConfigError(f"--static affected_side={text}: must be one of {', '.join(AFFECTED_SIDES)}")
            values[key] = text
            continue
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"--static {key}={text}: not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"--static {key}={text}: not a finite number")
        values[key] = number
    try:
        return PatientConfig(patient_id or "P001", **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--static: {exc}") from None


def parse_static(text: str) -> dict[str, str]:
    """``body_mass_kg=70,height_m=1.7`` as a dictionary.

    Raises
    ------
    ConfigError
        If an item is not ``KEY=VALUE``.
    """
    items: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--static {item!r}: expected KEY=VALUE (keys: {', '.join(STATIC_KEYS)})")
        items[key.strip()] = value.strip()
    return items


def predict_source(
    model: Any,
    contract: ModelContract,
    source: Any,
    patient: PatientConfig,
    legs: tuple[str, ...] = ("l", "r"),
    calibration_s: float = 0.0,
    model_version: str = "",
) -> Prediction:
    """Run the device pipeline over ``source`` and collect its GRF, steps and events as tables.

    Parameters
    ----------
    model
        A :class:`forcecast.edge.interpreter.TFLiteModel` or :class:`KerasStreamModel`.
    contract
        The model's contract.
    source
        Any :class:`forcecast.edge.sources.base.Source` (a replayed file, :class:`FrameSource`).
    patient
        Whose data (static features, body weight for newtons).
    legs
        Legs to predict.
    calibration_s
        The device's start-up calibration pose (0: the data are used as they are, as training saw them).
    model_version
        Written into the step records.
    """
    blocks: dict[str, list[tuple[FloatArray, FloatArray]]] = {leg: [] for leg in legs}
    steps: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def listen(kind: str, payload: dict[str, Any]) -> None:
        if kind == "grf":
            blocks[payload["leg"]].append((payload["time_s"], payload["grf_bw"]))
        elif kind == "step":
            steps.append({k: v for k, v in payload.items() if k not in ("waveform_bw", "extra")})
        elif kind == "event":
            events.append(payload)

    config = DeviceConfig(runtime=RuntimeConfig(legs=legs, calibration_s=calibration_s), patient=patient)
    pipeline = Pipeline(
        model,
        contract,
        config,
        source.columns,
        source.rate_hz,
        source.acc_range_mps2,
        source.gyr_range_rads,
        model_version=model_version,
        listeners=[listen],
        time_origin_unix=0.0,
    )
    report = run_source(pipeline, source)
    step_table = pd.DataFrame(steps, columns=None if steps else list(STEP_COLUMNS))
    return Prediction(_grf_table(blocks, step_table, patient), step_table, events, report.as_dict())


def _grf_table(
    blocks: dict[str, list[tuple[FloatArray, FloatArray]]], steps: pd.DataFrame, patient: PatientConfig
) -> pd.DataFrame:
    """The per-leg blocks on one time axis (rows where a leg has no output hold NaN)."""
    body_weight_n = patient.body_mass_kg * GRAVITY_MPS2
    frames = []
    for leg, parts in blocks.items():
        t = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
        y = np.vstack([p[1] for p in parts]) if parts else np.empty((0, 3))
        frame = pd.DataFrame({TIME_COLUMN: np.round(t, 6)})
        for i, axis in enumerate(AXES):
            frame[f"{leg}_{axis}_bw"] = y[:, i]
        for i, axis in enumerate(AXES):
            frame[f"{leg}_{axis}_n"] = y[:, i] * body_weight_n
        stance = np.zeros(t.size, dtype=bool)
        if len(steps):
            for ic, tc in steps.loc[steps["leg"] == leg, ["ic_s", "tc_s"]].itertuples(index=False):
                stance |= (t >= ic - 1e-9) & (t <= tc + 1e-9)
        frame[f"{leg}_stance"] = stance
        frames.append(frame.set_index(TIME_COLUMN))
    table = pd.concat(frames, axis=1).sort_index() if frames else pd.DataFrame(index=pd.Index([], name=TIME_COLUMN))
    for leg in blocks:
        column = f"{leg}_stance"
        table[column] = table[column].astype("boolean").fillna(False).astype(bool)
    return table.reset_index()


def write_tables(prediction: Prediction, out: Path) -> tuple[Path, Path]:
    """Write the GRF table to ``out`` (``.csv`` or ``.parquet``) and the steps beside it (``<stem>.steps.<ext>``).

    Raises
    ------
    ConfigError
        If ``out`` has another suffix.
    """
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {out}: expected a .csv or .parquet file")
    steps_path = out.with_name(f"{out.stem}.steps{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = prediction.steps.copy()
    if "flags" in steps:
        steps["flags"] = steps["flags"].map(lambda f: ";".join(f) if isinstance(f, list | tuple) else f)
    if out.suffix == ".csv":
        prediction.grf.to_csv(out, index=False)
        steps.to_csv(steps_path, index=False)
    else:
        prediction.grf.to_parquet(out, index=False)
        steps.to_parquet(steps_path, index=False)
    return out, steps_path


def load_stream_model(path: Path, pubkeys: list[Path] | None = None) -> tuple[Any, ModelContract, str]:
    """The model the pipeline runs, its contract and a version label, from a run or a package.

    Parameters
    ----------
    path
        A training run folder (``RUN/``), its ``model.keras``, or a ``.fcpkg`` package.
    pubkeys
        Public keys a package must verify against (none: hash and contract are checked, not the signature).

    Raises
    ------
    ConfigError
        If ``path`` is none of these.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if path.suffix == ".keras":
        from forcecast.training.evaluate import load_keras_run

        model, contract = load_keras_run(path)
        return KerasStreamModel(model), contract, path.parent.name
    if path.suffix == ".fcpkg":
        from forcecast.training.evaluate import load_package_model

        tflite, contract, _ = load_package_model(path, list(pubkeys or []))
        return tflite, contract, path.stem
    raise ConfigError(f"--model {path}: expected a run folder, its model.keras, or a .fcpkg package")


IMU_SUFFIXES = (".imu.csv", ".imu.parquet", ".csv", ".parquet")


def imu_files(path: Path) -> list[Path]:
    """The trial files of ``--imu``: the file itself, or every IMU file under a folder (force files skipped).

    Raises
    ------
    ConfigError
        If the path does not exist or the folder holds no trial file.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"--imu {path}: no such file or folder")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(IMU_SUFFIXES) and ".force." not in p.name and p.name != "subjects.csv"
    )
    if not files:
        raise ConfigError(f"--imu {path}: holds no trial file ({', '.join(IMU_SUFFIXES)})")
    return files


def source_of(path: Path) -> tuple[Any, SubjectProfile | None]:
    """A source playing the trial file ``path`` as fast as it goes, and its subject if it sits in a dataset.

    CSV files are read by the device's own replay source; Parquet through pandas into a :class:`FrameSource`.
    """
    from forcecast.edge.sources.replay import ReplaySource, _subject_row

    if path.suffix == ".parquet":
        listing = path.parent.parent.parent / "subjects.csv"
        subject = _subject_row(listing, path.parent.name) if listing.is_file() else None
        return FrameSource.from_frame(pd.read_parquet(path), name=str(path)), subject
    replay = ReplaySource(path, speed=0)
    return replay, replay.subject


def _subject_of(path: Path, subject_id: str | None, found: SubjectProfile | None) -> SubjectProfile | None:
    """The dataset row of ``subject_id`` (``--subject``) for a trial at ``path``, else the one found for it."""
    if subject_id is None:
        return found
    from forcecast.edge.sources.replay import _subject_row

    listing = path.parent.parent.parent / "subjects.csv"
    row = _subject_row(listing, subject_id) if listing.is_file() else None
    if row is None:
        raise ConfigError(f"--subject {subject_id}: no usable row in {listing} (use --static KEY=VALUE,... instead)")
    return row


def predict_files(
    model_path: Path,
    imu: Path,
    out: Path,
    legs: tuple[str, ...] = ("l", "r"),
    subject: str | None = None,
    static: str | None = None,
    pubkeys: list[Path] | None = None,
    calibration_s: float = 0.0,
) -> dict[str, Any]:
    """``forcecast predict``: every trial file of ``imu`` through the device pipeline, tables written to ``out``.

    With several files the tables gain a ``trial`` column (the file's path relative to ``imu``).
    ``calibration_s`` is the device's start-up calibration (0: none, the data as recorded).

    Returns
    -------
    dict
        ``grf`` and ``steps`` (paths written), ``model`` and per trial ``file``, ``rows``, ``steps``, ``quality``.

    Raises
    ------
    ConfigError
        If the model, a file, ``--subject`` or ``--static`` is not usable, or the model needs static
        features that neither the dataset nor ``--static`` give.
    """
    model, contract, version = load_stream_model(model_path, pubkeys)
    overrides = parse_static(static) if static else None
    files = imu_files(imu)
    grfs, steps, trials = [], [], []
    for path in files:
        source, found = source_of(path)
        profile = _subject_of(path, subject, found)
        if contract.static_features and profile is None and not overrides:
            raise ConfigError(
                f"--imu {path}: the model takes static features but the file is not in a dataset with its subject "
                "in subjects.csv; give them with --static body_mass_kg=..,height_m=..,hka_deg=..,affected_side=.."
            )
        patient = patient_from(profile, overrides, subject or "")
        result = predict_source(model, contract, source, patient, legs, calibration_s, version)
        name = str(path.relative_to(imu)) if imu.is_dir() else path.name
        if len(files) > 1:
            result.grf.insert(0, "trial", name)
            if len(result.steps):
                result.steps.insert(0, "trial", name)
        grfs.append(result.grf)
        steps.append(result.steps)
        trials.append({"file": name, "rows": len(result.grf), **result.report})
    combined = Prediction(
        pd.concat(grfs, ignore_index=True), pd.concat(steps, ignore_index=True), [], {"trials": len(files)}
    )
    grf_path, steps_path = write_tables(combined, out)
    return {
        "model": str(model_path),
        "grf": str(grf_path),
        "steps": str(steps_path),
        "trials": [
            {k: t[k] for k in ("file", "rows", "steps", "quality", "inferences", "calibration")} for t in trials
        ],
    }
