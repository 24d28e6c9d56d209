"""Run a model over whole sequences the way the device would, and score it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.training.data import LegSequence
from forcecast.training.metrics import summarise
from forcecast.training.windows import Predict, predict_sequence

CONTRACT_FILE = "contract.json"


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
    n_windows = int(sum(np.isfinite(p[:, 0]).sum() for _, p in predictions) // contract.out_len)
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
