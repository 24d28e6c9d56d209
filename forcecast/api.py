"""The public Python API: ``import forcecast`` then ``forcecast.load_model``, ``forcecast.GRFPredictor`` ...

Every name here is reached lazily through ``forcecast.__getattr__``, so ``import forcecast`` (and the CLI on a
device) loads neither pandas nor TensorFlow until one of them is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forcecast import _API
from forcecast.edge.runtime.config import PatientConfig
from forcecast.lab.dataset.dataset import CheckReport, Dataset
from forcecast.lab.dataset.dataset import check_dataset as _check_dataset

__all__ = list(_API)  # one list, in forcecast/__init__.py (read there without importing this module)


class Model:
    """A trained model (a run's ``model.keras`` or a ``.fcpkg`` package) that predicts through the device code.

    Use :func:`load_model` to make one.
    """

    def __init__(self, runner: Any, contract: Any, version: str, path: Path | None = None) -> None:
        self.runner, self.contract, self.version = runner, contract, version
        self.path = path
        """The model file it was loaded from (``model.keras`` or ``.fcpkg``): where its subject split is recorded."""

    def predict(
        self,
        imu: pd.DataFrame | tuple[NDArray[np.float64], list[str], NDArray[np.float64]],
        subject: dict[str, Any] | None = None,
        legs: tuple[str, ...] = ("l", "r"),
    ) -> pd.DataFrame:
        """GRF per leg for an IMU recording (see :class:`GRFPredictor` for the columns)."""
        return GRFPredictor(self, subject=subject, legs=legs).predict(imu).grf_


def load_model(path: Path | str, pubkeys: list[Path] | None = None) -> Model:
    """Load a training run folder, its ``model.keras``, or a ``.fcpkg`` package (verified against ``pubkeys``)."""
    from forcecast.training.predict import load_stream_model
    from forcecast.training.quiet import import_tensorflow

    import_tensorflow(False)
    runner, contract, version = load_stream_model(Path(path), pubkeys)
    source = Path(path) / "model.keras" if Path(path).is_dir() else Path(path)
    return Model(runner, contract, version, source)


class GRFPredictor:
    """Predict GRF for IMU recordings with the device's streaming pipeline.

    Parameters
    ----------
    model
        A :class:`Model` or a path for :func:`load_model`.
    subject
        The wearer: ``body_mass_kg``, ``height_m``, optionally ``hka_deg``, ``affected_side`` and ``patient_id``.
    legs
        Legs to predict.

    Attributes
    ----------
    grf_
        After :meth:`predict`: ``time_s``, per leg ``<leg>_<v|ap|ml>_<bw|n>`` and ``<leg>_stance``.
    steps_
        After :meth:`predict`: one row per detected stance (the device's step records).
    report_
        After :meth:`predict`: the pipeline's run report.
    """

    def __init__(
        self, model: Model | Path | str, subject: dict[str, Any] | None = None, legs: tuple[str, ...] = ("l", "r")
    ) -> None:
        self.model = model if isinstance(model, Model) else load_model(model)
        self.subject = dict(subject or {})
        self.legs = legs

    def predict(self, imu: pd.DataFrame | tuple[NDArray[np.float64], list[str], NDArray[np.float64]]) -> GRFPredictor:
        """Run the pipeline over ``imu``: a format-v1 table or ``(time_s, columns, values)``; returns ``self``."""
        from forcecast.training.predict import FrameSource, predict_source

        if isinstance(imu, pd.DataFrame):
            source = FrameSource.from_frame(imu)
        else:
            time_s, columns, values = imu
            source = FrameSource(np.asarray(time_s), tuple(columns), np.asarray(values))
        anthropometrics = {k: v for k, v in self.subject.items() if k != "patient_id"}
        try:
            patient = PatientConfig(str(self.subject.get("patient_id", "P001")), **anthropometrics)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"subject {self.subject}: {exc}") from None
        result = predict_source(
            self.model.runner, self.model.contract, source, patient, self.legs, model_version=self.model.version
        )
        self.grf_, self.steps_, self.report_ = result.grf, result.steps, result.report
        return self


def open_dataset(root: Path | str) -> Dataset:
    """Open a format-v1 dataset folder (subjects and trial files; problems collected in ``.problems``)."""
    return Dataset.scan(root)


def check_dataset(root: Path | str) -> CheckReport:
    """Check a dataset as ``forcecast data check`` does; ``.ok``, ``.errors``, ``.warnings``."""
    return _check_dataset(root)


def import_lab_data(src: Path | str, mapping: Path | str, out: Path | str, imu_lag_ms: float | None = None) -> Any:
    """Import lab files (C3D, OpenSim, CSV) under ``src`` into the dataset ``out`` as ``forcecast data import`` does.

    ``mapping`` is the mapping TOML; ``imu_lag_ms`` ``None`` estimates the IMU lag per trial. Returns the import
    report (``.as_dict()``).
    """
    from forcecast.lab.dataset.importers import load_mapping
    from forcecast.lab.dataset.importers.importer import import_lab_data as _import

    return _import(Path(src), load_mapping(Path(mapping)), Path(out), imu_lag_ms)


def _root(data: Dataset | Path | str) -> Path:
    return data.root if isinstance(data, Dataset) else Path(data)


def _train_config(config: Any) -> Any:
    """A :class:`forcecast.training.config.TrainConfig` as given, or loaded from a TOML path (``None``: defaults)."""
    from forcecast.training.config import TrainConfig, load_train_config

    return config if isinstance(config, TrainConfig) else load_train_config(Path(config) if config else None)


def train(data: Dataset | Path | str, out: Path | str, config: Any = None) -> pd.DataFrame:
    """Train on a dataset (an opened :class:`Dataset` or its folder) into the run folder ``out``.

    ``config`` is a ``TrainConfig``, a TOML path, or ``None`` (defaults). Returns the per-axis subject-naive
    metrics (one row per axis; empty when the run has no test subjects).
    """
    from forcecast.training.fit import train as _train
    from forcecast.training.quiet import import_tensorflow

    import_tensorflow(False)
    result = _train(_root(data), Path(out), _train_config(config), verbose=0)
    axes = result.metrics.get("subject_naive", {}).get("pooled", {}).get("axes", {})
    return pd.DataFrame(axes).T.rename_axis("axis").reset_index()


def evaluate(
    model: Model | Path | str,
    data: Dataset | Path | str,
    subjects: str | list[str] | None = None,
    allow_training_subjects: bool = False,
) -> pd.DataFrame:
    """Score ``model`` on the trials with force of ``data``: one row per axis (r, RMSE in BW and N, nRMSE).

    As ``forcecast evaluate``: by default only the subjects the model never saw (its run's subject-naive test
    subjects); scoring a subject it trained or validated on needs ``allow_training_subjects`` and warns
    (:class:`UserWarning`), because those scores overstate accuracy on new people.

    Parameters
    ----------
    model, data
        A loaded model (or its run folder, ``model.keras`` or ``.fcpkg``) and a dataset (or its folder).
    subjects
        ``None`` (the held-out subjects), ``"all"``, or subject ids (a list or comma-separated).
    allow_training_subjects
        Allow subjects seen in training among ``subjects``.

    Raises
    ------
    ConfigError
        An unknown subject; a training subject without ``allow_training_subjects``; or, by default, a dataset
        of which the model saw every subject.
    """
    import warnings

    from forcecast.training.config import DataConfig
    from forcecast.training.data import load_sequences
    from forcecast.training.evaluate import choose_subjects, evaluate_sequences, run_split, tflite_predictor
    from forcecast.training.predict import KerasStreamModel

    loaded = model if isinstance(model, Model) else load_model(model)
    c = loaded.contract
    config = DataConfig(
        rate_hz=c.rate_hz,
        leg_places=c.leg_places,
        window=c.window,
        out_len=c.out_len,
        delay=c.delay,
        alignment=c.alignment,
    )
    sequences = load_sequences(_root(data), config).sequences
    requested = ",".join(subjects) if isinstance(subjects, list) else subjects
    split = run_split(loaded.path) if loaded.path is not None else None
    choice = choose_subjects(requested, sorted({s.subject_id for s in sequences}), split, allow_training_subjects)
    for warning in choice.warnings:
        warnings.warn(f"forcecast.evaluate: {warning}", UserWarning, stacklevel=2)
    sequences = [s for s in sequences if s.subject_id in choice.subjects]
    runner = loaded.runner
    if isinstance(runner, KerasStreamModel):
        from forcecast.training.evaluate import keras_predictor

        result = evaluate_sequences(keras_predictor(runner.model), sequences, c, runner.uses_static)
    else:
        use_static = "static" in runner.inputs
        result = evaluate_sequences(tflite_predictor(runner, use_static), sequences, c, use_static)
    return pd.DataFrame(result["pooled"]["axes"]).T.rename_axis("axis").reset_index()


def cross_validate(
    data: Dataset | Path | str, out: Path | str, config: Any = None, folds: str | int = "loso", static: str = "both"
) -> pd.DataFrame:
    """Subject-wise cross-validation as ``forcecast cv`` (fold runs under ``out``); the table of ``cv.csv``."""
    from forcecast.training.cv import cross_validate as _cross_validate
    from forcecast.training.quiet import import_tensorflow

    import_tensorflow(False)
    outcome = _cross_validate(_root(data), Path(out), _train_config(config), folds, static, progress=False)
    if outcome.summary is None:
        raise RuntimeError(f"{out}: cross-validation incomplete ({len(outcome.results)} of {len(outcome.tasks)} runs)")
    return pd.read_csv(Path(out) / "cv.csv")
