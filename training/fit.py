"""A training run: split by subject, fit with early stopping, evaluate, write every output.

Outputs in ``RUN/``: ``model.keras``, ``contract.json`` (what the device needs), ``config.toml``
(resolved), ``metrics.json``, ``history.csv``, ``model_card.md`` and its PNG plots.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.contract import ModelContract, Normalisation
from edge.dataset import DatasetError, Problem
from edge.features import STATIC_FEATURES
from training.config import TrainConfig, dump_toml
from training.data import LegSequence, LoadedData, Progress, load_sequences
from training.evaluate import CONTRACT_FILE, evaluate_sequences, keras_predictor
from training.finetune import start_from
from training.models import build_model
from training.splits import Split, make_split, partition
from training.windows import WindowSource, make_batches


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
    """The evaluation results per set, with predictions (see :func:`training.evaluate.evaluate_sequences`)."""


def fit_contract(train: list[LegSequence], config: TrainConfig) -> ModelContract:
    """The model contract, with normalisation fitted on the training sequences only."""
    inputs = Normalisation.fit(np.concatenate([s.inputs for s in train]))
    static = Normalisation.fit(np.stack([s.static for s in train])) if config.model.use_static else None
    targets = Normalisation.fit(np.concatenate([s.targets for s in train]))
    d = config.data
    return ModelContract(
        rate_hz=d.rate_hz,
        leg_places=d.leg_places,
        window=d.window,
        out_len=d.out_len,
        delay=d.delay,
        static_features=STATIC_FEATURES if config.model.use_static else (),
        inputs=inputs,
        static=static,
        targets=targets,
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
    split = make_split([s.subject_id for s in loaded.sequences], config.split, config.fit.seed)
    sets = partition(loaded.sequences, split, config.split.exposed_train_share, gap=config.data.window)
    contract = fit_contract(sets["train"], config)
    finetune = start_from(config.fit, contract)  # --init-from: the source run's normalisation and weights
    if finetune is not None:
        contract = finetune.contract
    use_static = config.model.use_static
    train_src = WindowSource(sets["train"], contract, use_static)
    val_src = WindowSource(sets["val"], contract, use_static)
    for name, src in (("training", train_src), ("validation", val_src)):
        if len(src) == 0:
            raise DatasetError(
                [
                    Problem(
                        str(data_dir),
                        f"no complete {name} window: trials are shorter than the "
                        f"{config.data.window}-sample window or all NaN",
                    )
                ]
            )
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
        model.compile(optimizer=keras.optimizers.Adam(config.fit.learning_rate), loss="mse", jit_compile=False)
    fit = config.fit
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=fit.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, fit.patience // 2)),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
    ]
    history = model.fit(
        make_batches(train_src, fit.batch_size, config.data.train_stride, fit.seed, shuffle=True),
        validation_data=make_batches(
            val_src, fit.batch_size, max(config.data.train_stride, config.data.out_len), fit.seed, shuffle=False
        ),
        epochs=fit.epochs,
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
        "parameters": int(model.count_params()),
        "seconds": round(seconds, 1),
        "versions": versions(),
        **({"init_from": finetune.provenance()} if finetune is not None else {}),
        **{name: {k: r[k] for k in ("pooled", "per_subject", "n_windows", "subjects")} for name, r in results.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from training.card import write_model_card

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
