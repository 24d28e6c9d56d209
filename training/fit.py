"""A training run: split by subject, fit with early stopping, evaluate, write every output.

Outputs in ``RUN/``: ``model.keras``, ``contract.json`` (what the device needs), ``config.toml``
(resolved), ``metrics.json``, ``history.csv``, ``model_card.md`` and its PNG plots.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge import __version__
from forcecast.edge.contract import ModelContract
from forcecast.edge.features import OUTPUT_AXES, STATIC_FEATURES, input_channels
from forcecast.lab.dataset import DatasetError, Problem
from forcecast.training.config import TrainConfig, dump_toml
from forcecast.training.data import LegSequence, LoadedData, Progress, TrainingDataWarning, load_sequences
from forcecast.training.evaluate import CONTRACT_FILE, evaluate_sequences, keras_predictor
from forcecast.training.finetune import start_from
from forcecast.training.models import build_model, masked_mse
from forcecast.training.normalise import fit_checked, fit_static, neutralised_features
from forcecast.training.splits import Split, split_sequences
from forcecast.training.windows import WindowSource, make_batches, steps_per_epoch


@dataclass
class RunResult:
    """What a finished run produced."""

    out: Path
    split: Split
    metrics: dict[str, Any]
    contract: ModelContract
    seconds: float
    epochs_run: int
    evaluations: dict[str, Any] = field(default_factory=dict)
    """The evaluation results per set, with predictions (see :func:`forcecast.training.evaluate.evaluate_sequences`)."""


def fit_contract(train: list[LegSequence], config: TrainConfig) -> ModelContract:
    """The model contract, with normalisation fitted on the training sequences only.

    Inputs and targets over finite (known) samples, refusing unusable statistics by name; static
    features with 0/1 flags passed through and constant features neutralised (see
    :mod:`forcecast.training.normalise`).

    Raises
    ------
    DatasetError
        If a channel's statistics are not finite or out of range, naming the channel and sequence.
    """
    d = config.data
    inputs = fit_checked(train, "inputs", input_channels(d.leg_places), "IMU channel")
    targets = fit_checked(train, "targets", tuple(f"grf_{a}" for a in OUTPUT_AXES), "force")
    static = fit_static(train, STATIC_FEATURES) if config.model.use_static else None
    return ModelContract(
        rate_hz=d.rate_hz,
        leg_places=d.leg_places,
        window=d.window,
        out_len=d.out_len,
        delay=d.delay,
        static_features=STATIC_FEATURES if config.model.use_static else (),
        inputs=inputs,
        static=static.normalisation if static else None,
        targets=targets,
        alignment=d.alignment,
        notes=static.notes() if static else {},
    )


def no_window_problem(data_dir: Path, name: str, sequences: list[LegSequence], block: bool) -> Problem:
    """Why a set has no usable window, naming its sequences (``block``: two-subject validation block)."""
    keys = ", ".join(sorted({s.key for s in sequences})) or "no sequence at all"
    hint = (
        ": with two subjects, validation is a held-out block of the training subject's data; record longer or more "
        "trials"
        if block and name == "validation"
        else ""
    )
    return Problem(
        str(data_dir), f"no usable {name} window (finite inputs and a known target in its output block) in {keys}{hint}"
    )


def seed_everything(seed: int) -> None:
    """Same seed, same run: Python, NumPy and TensorFlow seeds and deterministic TF ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def distribution_strategy(name: str) -> Any:
    """``none`` (default device), ``mirrored`` (all local devices) or ``multi_worker`` (TF_CONFIG cluster)."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def train(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    progress: Progress | None = None,
    verbose: int | None = None,
    loaded: LoadedData | None = None,
) -> RunResult:
    """Train one model and write the run folder.

    Parameters
    ----------
    data_dir
        Dataset (format v1).
    out
        Run folder to create (may exist; files in it are replaced).
    config
        Resolved configuration.
    progress
        Progress wrapper for loading trials.
    verbose
        Keras verbosity; default: progress bar on a terminal, one line per epoch otherwise.
    loaded
        Already loaded sequences (``compare`` loads once for many runs).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    import keras

    seed_everything(config.fit.seed)
    loaded = loaded or load_sequences(data_dir, config.data, progress)
    split, sets = split_sequences(loaded, config)
    contract = fit_contract(sets["train"], config)
    finetune = start_from(config.fit, contract)  # --init-from: the source run's normalisation and weights
    if finetune is not None:
        contract = finetune.contract
    use_static = config.model.use_static
    train_src = WindowSource(sets["train"], contract, use_static)
    val_src = WindowSource(sets["val"], contract, use_static)
    unused = [
        {"sequence": key, "reason": f"no usable {name} window (NaN inputs throughout or no known target)"}
        for name, src in (("training", train_src), ("validation", val_src))
        for key in src.unused
    ]
    for entry in unused:
        warnings.warn(f"left out of training: {entry['sequence']}: {entry['reason']}", TrainingDataWarning, 2)
    for name, key, src in (("training", "train", train_src), ("validation", "val", val_src)):
        if len(src) == 0:
            raise DatasetError([no_window_problem(data_dir, name, sets[key], split.val_block_share > 0)])
    out.mkdir(parents=True, exist_ok=True)
    strategy = distribution_strategy(config.fit.strategy)
    with strategy.scope():
        model = build_model(
            config.model, config.data.window, len(contract.channels), len(contract.static_features), config.data.out_len
        )
        if finetune is not None:
            finetune.apply(model, config.model)
            contract = finetune.contract
        # XLA (jit_compile) makes these small CPU models about 2x slower per step; measured, see README.
        model.compile(optimizer=keras.optimizers.Adam(config.fit.learning_rate), loss=masked_mse(), jit_compile=False)
    fit = config.fit
    steps = steps_per_epoch(len(train_src), fit.batch_size, config.data.train_stride, fit.epochs, fit.min_steps)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=fit.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, fit.patience // 2)),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
    ]
    history = model.fit(
        make_batches(
            train_src, fit.batch_size, config.data.train_stride, fit.seed, True, steps=steps, augment=config.augment
        ),
        validation_data=make_batches(
            val_src, fit.batch_size, max(config.data.train_stride, config.data.out_len), fit.seed, shuffle=False
        ),
        epochs=fit.epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the pipeline draws fresh random windows every epoch itself
        callbacks=callbacks,
        verbose=verbose if verbose is not None else (1 if sys.stderr.isatty() else 2),
    )
    model.save(out / "model.keras")
    contract.save(out / CONTRACT_FILE)
    (out / "config.toml").write_text(dump_toml(config))

    predict = keras_predictor(model)
    results = {
        name: evaluate_sequences(predict, sets[key], contract, use_static)
        for name, key in (("subject_naive", "test"), ("subject_exposed", "exposed"), ("validation", "val"))
        if sets[key]
    }
    seconds = time.perf_counter() - started
    metrics = {
        "model": model.name,
        "split": split.as_dict(),
        "data": str(loaded.root.resolve()),
        "data_fingerprint_sha256": loaded.fingerprint,
        "epochs_run": len(history.history["loss"]),
        "best_val_loss": float(min(history.history["val_loss"])),
        "train_windows": len(train_src),
        "steps_per_epoch": steps,
        "gradient_steps": steps * len(history.history["loss"]),
        "augment": config.augment.enabled,
        "dropped": loaded.dropped + unused,
        "padded_short_sequences": loaded.padded,
        "imu_only_trials": loaded.imu_only_trials,
        "static_neutralised": neutralised_features(contract),
        "parameters": int(model.count_params()),
        "seconds": round(seconds, 1),
        "versions": versions(),
        **({"init_from": finetune.provenance()} if finetune is not None else {}),
        **{name: {k: r[k] for k in ("pooled", "per_subject", "n_windows", "subjects")} for name, r in results.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from forcecast.training.card import write_model_card

    write_model_card(out, config, contract, metrics, results, loaded)
    return RunResult(out, split, metrics, contract, seconds, metrics["epochs_run"], results)


def versions() -> dict[str, str]:
    """Software versions that produced a model."""
    import keras
    import tensorflow as tf

    return {
        "forcecast": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
