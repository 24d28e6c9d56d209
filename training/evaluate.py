"""Run a model over whole sequences the way the device would, and score it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.config import ConfigError
from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.runtime.inference import default_streaming
from forcecast.training.data import LegSequence
from forcecast.training.metrics import summarise
from forcecast.training.windows import Predict, predict_sequence

CONTRACT_FILE = "contract.json"
METRICS_FILE = "metrics.json"
SEEN_ROLES = {"train": "train", "val": "validation", "exposed": "subject-exposed"}
ALL_SUBJECTS = "all"
ALLOW_FLAG = "--allow-training-subjects"


def keras_predictor(model: Any) -> Predict:
    """Wrap a Keras model as a :data:`Predict` function."""

    def predict(x: NDArray[np.float32], s: NDArray[np.float32] | None) -> NDArray[np.float32]:
        inputs = [x] if s is None else [x, s]
        return np.asarray(model(inputs, training=False))

    return predict


def tflite_predictor(model: TFLiteModel, use_static: bool) -> Predict:
    """Batch-1 TFLite inference as a :data:`Predict` function (loops over the batch)."""

    def predict(x: NDArray[np.float32], s: NDArray[np.float32] | None) -> NDArray[np.float32]:
        out = np.empty((x.shape[0], *next(iter(model.outputs.values())).shape[1:]), dtype=np.float32)
        for i in range(x.shape[0]):
            feed = {"imu": x[i : i + 1]}
            if use_static and s is not None:
                feed["static"] = s[i : i + 1]
            out[i] = next(iter(model(**feed).values()))[0]
        return out

    return predict


def model_uses_static(model: Any) -> bool:
    """Whether a Keras model has a ``static`` input."""
    return any(t.name.split(":")[0].startswith("static") for t in model.inputs)


def load_keras_run(model_path: Path) -> tuple[Any, ModelContract]:
    """A ``.keras`` model and the contract saved beside it."""
    import keras

    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: model file not found")
    contract_path = model_path.parent / CONTRACT_FILE
    if not contract_path.is_file():
        raise ContractError(f"{contract_path}: missing; a model needs the contract its training run wrote beside it")
    return keras.saving.load_model(model_path, compile=False), ModelContract.load(contract_path)


def load_package_model(package_path: Path, pubkeys: list[Path]) -> tuple[TFLiteModel, ModelContract, str]:
    """The TFLite model and contract of a ``.fcpkg``, checked as far as the keys given allow.

    With public keys the package must verify against one of them (signature, hash, contract);
    without, only the model hash and the contract are checked. The third value says which.
    """
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import open_checked

    package, contract, checked = open_checked(package_path, [load_public_key(p) for p in pubkeys])
    return TFLiteModel(package.model), contract, checked


HEADLINE = ("r", "rmse_bw", "rmse_n", "nrmse_pct")


def headline_axes(result: dict[str, Any], which: str = "axes") -> dict[str, dict[str, float]]:
    """The per-axis figures ``evaluate --json`` and the package manifest report.

    ``which`` is ``"axes"`` (whole-cycle, over known samples) or ``"stance_axes"`` (stance-only).
    """
    return {a: {k: m[k] for k in HEADLINE} for a, m in result["pooled"][which].items()}


def evaluate_sequences(
    predict: Predict, sequences: list[LegSequence], contract: ModelContract, use_static: bool
) -> dict[str, Any]:
    """Pooled and per-subject metrics plus the predictions (for plots).

    Metrics count known samples only (measured and predicted finite), whole-cycle and stance-only
    (see :mod:`forcecast.training.metrics`).

    Returns
    -------
    dict
        ``pooled`` and ``per_subject`` metrics (see :func:`forcecast.training.metrics.summarise`),
        ``n_windows`` (inferences run), ``subjects``, and ``predictions``: a list of
        ``(sequence, predicted (n, 3))``.
    """
    predictions = [(seq, predict_sequence(predict, seq, contract, use_static)) for seq in sequences]
    hop = default_streaming(contract).hop  # predict_sequence runs the device's windows: one per hop
    n_windows = int(sum(np.isfinite(p[:, 0]).sum() for _, p in predictions) // hop)
    pooled = summarise(
        [p for _, p in predictions],
        [s.targets.astype(np.float64) for s, _ in predictions],
        [s.body_weight_n for s, _ in predictions],
        contract.rate_hz,
    )
    per_subject = {}
    for subject in sorted({s.subject_id for s in sequences}):
        mine = [(s, p) for s, p in predictions if s.subject_id == subject]
        per_subject[subject] = summarise(
            [p for _, p in mine],
            [s.targets.astype(np.float64) for s, _ in mine],
            [s.body_weight_n for s, _ in mine],
            contract.rate_hz,
        )
    return {
        "pooled": pooled,
        "per_subject": per_subject,
        "n_windows": n_windows,
        "subjects": sorted({s.subject_id for s in sequences}),
        "predictions": predictions,
    }


def run_split(model_path: Path) -> dict[str, Any] | None:
    """The subject split the model was trained with, or ``None`` where none was recorded.

    A ``.keras`` model's split is in ``metrics.json`` beside it (written by ``forcecast train``);
    a ``.fcpkg`` package's in its manifest (``training.split``, written by ``forcecast quantize``).

    Raises
    ------
    ConfigError
        When ``metrics.json`` exists but is not JSON, or a split is not a table of subject lists.
    """
    if model_path.suffix == ".fcpkg":
        from forcecast.edge.package import read_package

        training = read_package(model_path).manifest.get("training")
        split = training.get("split") if isinstance(training, dict) else None
        where = f"{model_path}: manifest training.split"
    else:
        metrics_path = model_path.parent / METRICS_FILE
        if not metrics_path.is_file():
            return None
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{metrics_path}: not JSON ({exc})") from None
        split = metrics.get("split") if isinstance(metrics, dict) else None
        where = f"{metrics_path}: split"
    if split is None:
        return None
    if not isinstance(split, dict) or not all(
        isinstance(split.get(role, []), list) and all(isinstance(s, str) for s in split.get(role, []))
        for role in ("test", *SEEN_ROLES)
    ):
        raise ConfigError(f"{where}: expected lists of subject ids under test, train, val and exposed")
    return split


@dataclass(frozen=True)
class SubjectChoice:
    """The subjects ``evaluate`` scores and what the user must be told about them.

    Attributes
    ----------
    subjects
        Subjects to score, sorted.
    seen
        Those of them the model saw in training, as ``subject -> role`` (train, validation, subject-exposed).
    warnings
        Lines for stderr (training subjects scored, or no split recorded with the model).
    """

    subjects: list[str]
    seen: dict[str, str]
    warnings: list[str]


def seen_in_training(split: dict[str, Any]) -> dict[str, str]:
    """Subjects the model trained or validated on (or trained on part of), each with its role."""
    return {s: label for role, label in SEEN_ROLES.items() for s in split.get(role, [])}


def choose_subjects(
    requested: str | None, available: list[str], split: dict[str, Any] | None, allow_training: bool
) -> SubjectChoice:
    """Which subjects to score: by default the ones the model never saw (the run's subject-naive test subjects).

    Parameters
    ----------
    requested
        The ``--subjects`` value: ``None`` (default), ``"all"`` or comma-separated subject ids.
    available
        Subjects of the dataset.
    split
        The run's split (:func:`run_split`); ``None`` when none was recorded: every subject is then scored
        by default, with a warning that held-out and training subjects cannot be told apart.
    allow_training
        Whether subjects the model saw in training may be scored (``--allow-training-subjects``).

    Raises
    ------
    ConfigError
        A named subject is not in the dataset; a training subject is named without ``allow_training``;
        or, by default, every subject of the dataset was seen in training.
    """
    have = sorted(available)
    seen_all = seen_in_training(split) if split is not None else {}
    if requested is None:
        if split is None:
            return SubjectChoice(
                have,
                {},
                [
                    "no subject split recorded with the model (metrics.json or the package manifest): scoring "
                    "every subject; some may have been training subjects"
                ],
            )
        unseen = [s for s in have if s not in seen_all]
        if not unseen:
            raise ConfigError(
                f"--subjects: every subject of the dataset was seen in training ({_roles(seen_all, have)}); "
                f"name them with --subjects and {ALLOW_FLAG} to score them anyway"
            )
        return SubjectChoice(unseen, {}, [])
    if requested.strip() == ALL_SUBJECTS:
        wanted = have
    else:
        wanted = sorted({s.strip() for s in requested.split(",") if s.strip()})
        if not wanted:
            raise ConfigError(f"--subjects {requested!r}: no subject named (comma-separated ids, or '{ALL_SUBJECTS}')")
        unknown = [s for s in wanted if s not in have]
        if unknown:
            raise ConfigError(f"--subjects: {', '.join(unknown)} not in the dataset (have: {', '.join(have)})")
    seen = {s: seen_all[s] for s in wanted if s in seen_all}
    if seen and not allow_training:
        raise ConfigError(
            f"--subjects: {_roles(seen, wanted)} seen in training by this model, so their scores are not "
            f"subject-naive; add {ALLOW_FLAG} to score them anyway (default: the held-out subjects)"
        )
    warnings = []
    if seen:
        warnings.append(
            f"scoring subject(s) the model saw in training: {_roles(seen, wanted)}; these scores overstate "
            "accuracy on new people"
        )
    if split is None:
        warnings.append("no subject split recorded with the model: cannot tell whether these were training subjects")
    return SubjectChoice(wanted, seen, warnings)


def _roles(seen: dict[str, str], subjects: list[str]) -> str:
    return ", ".join(f"{s} ({seen[s]})" for s in subjects if s in seen)
