"""``forcecast quantize``: a trained run → a signed model package, with accuracy per build.

Every run converts the model to each requested TFLite build, scores float Keras and every build on
the held-out (subject-naive) test subjects with the same metrics as ``evaluate``, and refuses an int8
build that loses more than 0.01 vertical r or 1 percentage point vertical nRMSE against float, unless
told to allow it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.config import ConfigError
from forcecast.edge.contract import ModelContract
from forcecast.edge.errors import EXIT_REFUSED, ForcecastRuntimeError
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_private_key
from forcecast.edge.selftest import MEAN_TOLERANCE_STEPS, TOLERANCE_STEPS, output_step
from forcecast.training.config import load_train_config
from forcecast.training.convert import MODES, Mode, audit_ops, convert
from forcecast.training.data import LegSequence, load_sequences
from forcecast.training.edgetpu import compatibility, compile_for_edgetpu, describe, find_compiler
from forcecast.training.evaluate import (
    evaluate_sequences,
    headline_axes,
    keras_predictor,
    load_keras_run,
    model_uses_static,
    tflite_predictor,
)
from forcecast.training.package import build_manifest, write_package
from forcecast.training.splits import split_sequences
from forcecast.training.windows import Predict, WindowSource

MAX_R_LOSS = 0.01
MAX_NRMSE_GAIN_PCT = 1.0
REPRESENTATIVE_WINDOWS = 300
GOLDEN_PAIRS = 4


class DegradationError(ForcecastRuntimeError):
    """Quantisation cost more accuracy than allowed."""

    reason = "degradation"
    exit_code = EXIT_REFUSED


@dataclass
class QuantizeResult:
    """What a quantize run produced."""

    package: Path
    mode: Mode
    model_bytes: int
    ops: list[str]
    accuracy: dict[str, dict[str, Any]]
    edgetpu_bytes: int | None = None


def quantize(
    run: Path,
    out: Path,
    mode: Mode,
    key: Path,
    data: Path | None = None,
    allow_degradation: bool = False,
    builds: tuple[Mode, ...] = MODES,
) -> QuantizeResult:
    """Convert, score, package and sign. See the module docstring."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signer = load_private_key(key)
    model, contract = load_keras_run(run / "model.keras")
    config = load_train_config(run / "config.toml")
    metrics = json.loads((run / "metrics.json").read_text())
    if data is None:
        if not metrics.get("data"):
            raise ConfigError(f"{run}/metrics.json does not name its training dataset; pass --data")
        data = Path(metrics["data"])
    if not data.is_dir():
        raise ConfigError(f"the training dataset {data} is not here; pass --data")
    use_static = model_uses_static(model)
    loaded = load_sequences(data, config.data)
    if loaded.fingerprint != metrics["data_fingerprint_sha256"]:
        raise ConfigError(f"{data}: not the data {run.name} was trained on (fingerprint differs)")
    split, sets = split_sequences(loaded, config)  # the very split training drew (stratified, same seed)
    representative = _representative(sets["train"], contract, use_static)
    test = sets["test"]

    accuracy: dict[str, dict[str, Any]] = {"keras_float": _score(keras_predictor(model), test, contract, use_static)}
    flatbuffers: dict[str, bytes] = {}
    for build in dict.fromkeys((*builds, mode)):
        flatbuffers[build] = convert(model, build, representative)
        tflite = TFLiteModel(flatbuffers[build])
        accuracy[build] = _score(tflite_predictor(tflite, use_static), test, contract, use_static)
        accuracy[build]["model_bytes"] = len(flatbuffers[build])
    chosen = flatbuffers[mode]
    if mode == "int8":
        _check_degradation(accuracy["keras_float"], accuracy["int8"], allow_degradation)
    packaged = TFLiteModel(chosen)
    golden = _golden(packaged, test, contract, use_static)
    ops = audit_ops(chosen)
    edgetpu_model, edgetpu = None, None
    compiler = find_compiler() if mode == "int8" else None
    if compiler:
        edgetpu_model, log = compile_for_edgetpu(chosen, compiler)
        edgetpu = describe(edgetpu_model, log)
    manifest = build_manifest(
        chosen,
        contract,
        model_version=f"{metrics['model']}-{mode}-{metrics['data_fingerprint_sha256'][:8]}",
        signer=signer,
        quantisation={
            "mode": mode,
            "ops": ops,
            "edgetpu_ops": compatibility(ops),
            "tensors": {
                n: {
                    "shape": list(i.shape),
                    "dtype": np.dtype(i.dtype).name,
                    "scale": i.scale,
                    "zero_point": i.zero_point,
                }
                for n, i in {**packaged.inputs, **packaged.outputs}.items()
            },
        },
        golden=golden,
        accuracy={"test_subjects": list(split.test), "builds": accuracy},
        training={
            "data_fingerprint_sha256": metrics["data_fingerprint_sha256"],
            "split": split.as_dict(),
            "versions": metrics.get("versions", {}),
            "model": metrics["model"],
        },
        edgetpu=edgetpu,
    )
    write_package(out, chosen, manifest, signer, edgetpu_model)
    return QuantizeResult(out, mode, len(chosen), ops, accuracy, len(edgetpu_model) if edgetpu_model else None)


def _score(predict: Predict, sequences: list[LegSequence], contract: ModelContract, use_static: bool) -> dict[str, Any]:
    result = evaluate_sequences(predict, sequences, contract, use_static)
    return {"axes": headline_axes(result), "n_windows": result["n_windows"]}


def _check_degradation(reference: dict[str, Any], quantised: dict[str, Any], allow: bool) -> None:
    r_loss = reference["axes"]["v"]["r"] - quantised["axes"]["v"]["r"]
    nrmse_gain = quantised["axes"]["v"]["nrmse_pct"] - reference["axes"]["v"]["nrmse_pct"]
    if (r_loss > MAX_R_LOSS or nrmse_gain > MAX_NRMSE_GAIN_PCT) and not allow:
        raise DegradationError(
            f"int8 loses {r_loss:.4f} vertical r and adds {nrmse_gain:.2f} pp vertical nRMSE against float "
            f"(limits {MAX_R_LOSS} and {MAX_NRMSE_GAIN_PCT} pp); use --allow-degradation to package it anyway"
        )


def _representative(train: list[LegSequence], contract: ModelContract, use_static: bool) -> Any:
    source = WindowSource(train, contract, use_static)
    picks = np.random.default_rng(0).choice(len(source), size=min(REPRESENTATIVE_WINDOWS, len(source)), replace=False)

    def samples() -> Any:
        for k in picks:
            inputs, _ = source.gather(np.array([k]))
            yield {"imu": inputs[0], **({"static": inputs[1]} if use_static else {})}

    return samples


def _golden(
    model: TFLiteModel, test: list[LegSequence], contract: ModelContract, use_static: bool
) -> list[dict[str, Any]]:
    source = WindowSource(test, contract, use_static)
    picks = np.linspace(0, len(source) - 1, GOLDEN_PAIRS).astype(int)
    step = output_step(model)
    rule = {
        "output_step": step,
        "tolerance_steps": TOLERANCE_STEPS,
        "mean_tolerance_steps": MEAN_TOLERANCE_STEPS,
        # read by devices older than the integer rule; half a step of margin keeps float rounding out of it
        "tolerance": (TOLERANCE_STEPS + 0.5) * step,
    }
    pairs = []
    for k in picks:
        inputs, _ = source.gather(np.array([k]))
        feed = {"imu": inputs[0], **({"static": inputs[1]} if use_static else {})}
        output = next(iter(model(**feed).values()))
        pairs.append({"inputs": {n: v.tolist() for n, v in feed.items()}, "output": output.tolist(), **rule})
    return pairs
