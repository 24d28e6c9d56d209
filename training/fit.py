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
from forcecast.training.multiworker import (
    DEFAULT_CONNECT_TIMEOUT_S,
    SINGLE,
    Role,
    adapt_to_workers,
    join,
    role_from_environment,
    step_counter,
    write_folder,
)
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


def distribution_strategy(name: str, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> tuple[Any, Role]:
    """The ``tf.distribute`` strategy and this process's role in it.

    ``none`` (default device), ``mirrored`` (all local devices) or ``multi_worker`` (the workers of
    ``TF_CONFIG``, which ``--workers`` sets: this worker first waits up to ``connect_timeout_s`` for
    every other one to answer, see :func:`forcecast.training.multiworker.rendezvous`). Create it before
    any other TensorFlow op: a multi-worker strategy must configure TensorFlow's collectives first.

    Raises
    ------
    forcecast.training.multiworker.WorkersError
        ``multi_worker`` without ``TF_CONFIG``, or a malformed one.
    forcecast.training.multiworker.WorkerUnreachableError
        A worker that did not answer in time, named by ``HOST:PORT``.
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), SINGLE
    if name == "multi_worker":
        role = role_from_environment()
        return join(role, connect_timeout_s), role
    return tf.distribute.get_strategy(), SINGLE


@dataclass(frozen=True)
class BatchPlan:
    """Batch, learning rate and steps once the replicas are known.

    ``[fit] batch_size`` is the batch of one replica (a worker's CPU, or one of its GPUs); the global
    batch of one synchronous step is ``batch_size × replicas``. An epoch covers the same number of windows
    however many replicas share it (fewer, larger steps), and so does the ``min_steps`` floor. The Adam
    learning rate grows with the square root of the replicas (the square-root rule for adaptive optimisers,
    Malladi et al. 2022, NeurIPS); one replica keeps ``[fit] learning_rate`` exactly.
    """

    replicas: int
    per_replica_batch: int
    global_batch: int
    learning_rate: float
    steps_per_epoch: int

    @classmethod
    def of(cls, config: TrainConfig, replicas: int, n_windows: int) -> BatchPlan:
        """The plan for ``replicas`` replicas and ``n_windows`` training windows."""
        fit = config.fit
        global_batch = fit.batch_size * replicas
        floor = -(-fit.min_steps // replicas)
        steps = steps_per_epoch(n_windows, global_batch, config.data.train_stride, fit.epochs, floor)
        rate = fit.learning_rate * replicas**0.5
        return cls(replicas, fit.batch_size, global_batch, rate, steps)


def train(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    progress: Progress | None = None,
    verbose: int | None = None,
    loaded: LoadedData | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> RunResult:
    """Train one model and write the run folder.

    Parameters
    ----------
    data_dir
        Dataset (format v1).
    out
        Run folder to create (may exist; files in it are replaced). With ``[fit] strategy = "multi_worker"``
        only the chief (worker 0) writes it; every other worker trains alongside, writes to a scratch
        folder that it removes, and returns without evaluating (its metrics hold the ``distribution`` table).
    config
        Resolved configuration.
    progress
        Progress wrapper for loading trials.
    verbose
        Keras verbosity; default: progress bar on a terminal, one line per epoch otherwise.
    loaded
        Already loaded sequences (``compare`` loads once for many runs).
    connect_timeout_s
        Multi-worker only: how long to wait for every other worker to answer on its port.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    import keras

    strategy, role = distribution_strategy(config.fit.strategy, connect_timeout_s)  # before any other TF op
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
    fit = config.fit
    plan = BatchPlan.of(config, int(strategy.num_replicas_in_sync), len(train_src))
    with write_folder(out, role) as folder:
        with strategy.scope():
            model = build_model(
                config.model,
                config.data.window,
                len(contract.channels),
                len(contract.static_features),
                config.data.out_len,
            )
            if finetune is not None:
                finetune.apply(model, config.model)
                contract = finetune.contract
            # XLA (jit_compile) makes these small CPU models about 2x slower per step; measured, see README.
            model.compile(optimizer=keras.optimizers.Adam(plan.learning_rate), loss=masked_mse(), jit_compile=False)
        counter = step_counter()
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=fit.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, fit.patience // 2)),
            keras.callbacks.CSVLogger(str(folder / "history.csv")),
            counter,
        ]
        train_batches = make_batches(
            train_src,
            plan.global_batch,
            config.data.train_stride,
            fit.seed,
            True,
            steps=plan.steps_per_epoch,
            augment=config.augment,
        )
        val_batches = make_batches(
            val_src, plan.global_batch, max(config.data.train_stride, config.data.out_len), fit.seed, shuffle=False
        )
        if role.n_workers > 1:
            train_batches, val_batches = shard_by_data(train_batches), shard_by_data(val_batches)
            adapt_to_workers(model, strategy, train_batches)
        history = model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=fit.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            shuffle=False,  # the pipeline draws fresh random windows every epoch itself
            callbacks=callbacks,
            verbose=verbose if verbose is not None else (1 if sys.stderr.isatty() else 2),
        )
        model.save(folder / "model.keras")  # every worker saves (the others to their scratch folder)
    distribution = {
        "strategy": fit.strategy,
        "workers": role.n_workers,
        "worker_index": role.index,
        "chief": role.chief,
        "replicas": plan.replicas,
        "per_replica_batch": plan.per_replica_batch,
        "global_batch": plan.global_batch,
        "learning_rate": plan.learning_rate,
        "steps_this_worker": counter.steps,
    }
    if not role.chief:
        seconds = time.perf_counter() - started
        epochs = len(history.history["loss"])
        summary = {
            "epochs_run": epochs,
            "best_val_loss": float(min(history.history["val_loss"])),
            "steps_per_epoch": plan.steps_per_epoch,
            "gradient_steps": plan.steps_per_epoch * epochs,
            "seconds": round(seconds, 1),
            "distribution": distribution,
        }
        return RunResult(out, split, summary, contract, seconds, epochs)
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
        "steps_per_epoch": plan.steps_per_epoch,
        "gradient_steps": plan.steps_per_epoch * len(history.history["loss"]),
        "augment": config.augment.enabled,
        "dropped": loaded.dropped + unused,
        "padded_short_sequences": loaded.padded,
        "imu_only_trials": loaded.imu_only_trials,
        "static_neutralised": neutralised_features(contract),
        "parameters": int(model.count_params()),
        "seconds": round(seconds, 1),
        "versions": versions(),
        **({"distribution": distribution} if role.n_workers > 1 or fit.strategy != "none" else {}),
        **({"init_from": finetune.provenance()} if finetune is not None else {}),
        **{name: {k: r[k] for k in ("pooled", "per_subject", "n_windows", "subjects")} for name, r in results.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from forcecast.training.card import write_model_card

    write_model_card(out, config, contract, metrics, results, loaded)
    return RunResult(out, split, metrics, contract, seconds, metrics["epochs_run"], results)


def shard_by_data(dataset: Any) -> Any:
    """``dataset`` auto-sharded by data, for several workers.

    Every worker runs the whole (identically seeded) pipeline and keeps its slice of each global batch,
    so the workers together take exactly the batches one machine would.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


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
