"""Run a model over whole sequences the way the device would, and score it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.contract import ContractError, ModelContract
from training.data import LegSequence
from training.metrics import summarise
from training.windows import Predict, predict_sequence

CONTRACT_FILE = "contract.json"


def keras_predictor(model: Any) -> Predict:
    """Wrap a Keras model as a :data:`Predict` function."""

    def predict(x: NDArray[np.float32], s: NDArray[np.float32] | None) -> NDArray[np.float32]:
        inputs = [x] if s is None else [x, s]
        return np.asarray(model(inputs, training=False))

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


HEADLINE = ("r", "rmse_bw", "rmse_n", "nrmse_pct")


def headline_axes(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The per-axis figures ``evaluate --json`` and the package manifest report."""
    return {a: {k: m[k] for k in HEADLINE} for a, m in result["pooled"]["axes"].items()}


def evaluate_sequences(
    predict: Predict, sequences: list[LegSequence], contract: ModelContract, use_static: bool
) -> dict[str, Any]:
    """Pooled and per-subject metrics plus the predictions (for plots).

    Returns
    -------
    dict
        ``pooled`` and ``per_subject`` metrics (see :func:`training.metrics.summarise`),
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
