"""Subcommands owned by ``training``: ``forcecast train``, ``evaluate``, ``predict``, ``quantize``, ``compare``, ``cv``.

Only the standard library is imported here; TensorFlow loads inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common, add_dataset, dataset_of, refuse_existing_file, refuse_non_empty

_FORCE_FOLDER = "write into a non-empty --out folder (files of the same names are replaced)"


def register(commands: Any) -> None:
    """Add ``train``, ``evaluate``, ``quantize``, ``compare`` and ``cv`` to the top-level subparsers.

    The dataset folder is the first positional argument, ``DATA``, as in ``forcecast data check DATA``;
    the older ``--data DIR`` still works, with a deprecation warning.
    """
    train = commands.add_parser(
        "train",
        help="train a GRF model on a dataset (format v1)",
        description="Train a model with a subject-wise split, early stopping on validation loss, and write "
        "RUN/{model.keras, contract.json, config.toml, metrics.json, history.csv, model_card.md}.",
    )
    add_dataset(train)
    train.add_argument("--out", type=Path, required=True, help="run folder to write")
    train.add_argument("--config", type=Path, help="TOML with [data], [model], [fit], [split] tables")
    train.add_argument(
        "--model",
        choices=("cnn_lstm", "lstm", "gru", "cnn1d", "tcn", "resnet1d", "inception", "transformer"),
        help="architecture (default cnn_lstm)",
    )
    train.add_argument("--no-static", action="store_true", help="do not give the model the static features")
    train.add_argument("--test-subjects", help="comma-separated subject-naive test subjects")
    train.add_argument("--epochs", type=int, help="maximum epochs")
    train.add_argument("--quick", action="store_true", help="a fast smoke run that still writes every output")
    train.add_argument("--seed", type=int, help="random seed (split, initialisation, window draws)")
    add_common(train, json="print the metrics as one JSON object", force=_FORCE_FOLDER)
    train.add_argument(
        "--init-from",
        type=Path,
        metavar="RUN",
        help="fine-tune: start from RUN's model.keras weights and normalisation (same inputs and architecture)",
    )
    train.add_argument(
        "--freeze",
        metavar="PATTERN,...",
        help="with --init-from: comma-separated layer-name patterns to keep fixed, e.g. 'conv*,lstm' ([fit] freeze)",
    )
    train.add_argument(
        "--workers",
        metavar="HOST:PORT,...",
        help="train data-parallel on these machines (run the same command on each, with its --worker-index); "
        "worker 0 is the chief and writes --out ([fit] batch_size is per worker)",
    )
    train.add_argument("--worker-index", type=int, help="with --workers: this machine's position in the list")
    train.add_argument(
        "--worker-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="with --workers: seconds to wait for every worker to answer before giving up (default 120)",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained model on a dataset",
        description="Run a model over whole trials as the device would (blocks tiling time) and report per-axis "
        "Pearson r, RMSE (BW and N) and nRMSE.",
    )
    evaluate.add_argument(
        "--model", type=Path, required=True, help="RUN/model.keras (contract.json beside it) or a .fcpkg package"
    )
    evaluate.add_argument(
        "--pubkey", type=Path, action="append", default=[], help="trusted public key: verify a package's signature"
    )
    add_dataset(evaluate)
    evaluate.add_argument(
        "--subjects",
        help="comma-separated subjects to evaluate, or 'all' (default: those the model never saw, i.e. the run's "
        "subject-naive test subjects, read from RUN/metrics.json or the package manifest)",
    )
    evaluate.add_argument(
        "--allow-training-subjects",
        action="store_true",
        help="let --subjects name subjects the model trained, validated or was subject-exposed on (warned about)",
    )
    add_common(evaluate, json="print exactly one JSON object")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="GRF per leg for IMU-only recordings, through the device's streaming code",
        description="Play IMU trial files through the device pipeline and write GRF per leg (BW and N) with stance "
        "flags to --out (.csv or .parquet) and the per-step metrics to <out stem>.steps.<ext>.",
    )
    predict.add_argument(
        "--model", type=Path, required=True, help="a training run folder (or its model.keras) or a .fcpkg package"
    )
    predict.add_argument("--imu", type=Path, required=True, help="a trial file (.csv, .parquet) or a folder of them")
    predict.add_argument("--out", type=Path, required=True, help="GRF table to write (.csv or .parquet)")
    who = predict.add_mutually_exclusive_group()
    who.add_argument("--subject", help="patient id written into the step records (default: the trial's subject)")
    who.add_argument(
        "--static",
        metavar="KEY=VALUE,...",
        help="the wearer's static features (body_mass_kg, height_m, hka_deg, affected_side) when the file does "
        "not sit in a dataset with subjects.csv, or to override it",
    )
    predict.add_argument("--legs", default="l,r", help="legs to predict: l, r or l,r (default)")
    predict.add_argument(
        "--calibration-s",
        type=float,
        default=0.0,
        help="the device's start-up gravity calibration over the first S seconds (default 0: data as recorded, "
        "as training and evaluate see them)",
    )
    predict.add_argument(
        "--pubkey", type=Path, action="append", default=[], help="trusted public key: verify a package's signature"
    )
    add_common(predict, json="print a JSON summary", force="replace an existing --out file")
    predict.set_defaults(handler=_predict)

    quantize = commands.add_parser(
        "quantize",
        help="convert a trained run to TFLite and write a signed model package",
        description="Convert RUN's model to TFLite, score float Keras and every build on the held-out subjects, "
        "and write a signed .fcpkg. Fails if int8 loses more than 0.01 vertical r or 1 pp vertical "
        "nRMSE against float, unless --allow-degradation.",
    )
    quantize.add_argument("--run", type=Path, required=True, help="run folder written by 'forcecast train'")
    quantize.add_argument("--out", type=Path, required=True, help="package file to write (.fcpkg)")
    quantize.add_argument("--mode", choices=("float32", "float16", "dynamic", "int8"), default="int8")
    quantize.add_argument("--key", type=Path, required=True, help="private key from 'forcecast keys new'")
    quantize.add_argument("--data", type=Path, help="the training dataset, if it moved since training")
    quantize.add_argument("--allow-degradation", action="store_true", help="package int8 even if it loses accuracy")
    add_common(quantize, json="print the result as one JSON object", force="replace an existing --out package")
    quantize.set_defaults(handler=_quantize)

    compare = commands.add_parser(
        "compare",
        help="cross-validate the model zoo with and without static features; int8 size, latency, Pareto front",
        description="Train the chosen architectures (default all eight), each with and without static features "
        "and at each output delay, in every fold of a subject-wise cross-validation (parallel, resumable: "
        "OUT/runs/ holds one run per model, delay, fold and variant); convert each to int8 and time it on this "
        "CPU with the device's interpreter; write comparison.json/.csv/.md, comparison.png and pareto.png "
        "(vertical nRMSE against algorithmic delay + inference p99, the non-dominated front as a step line).",
    )
    add_dataset(compare)
    compare.add_argument("--out", type=Path, required=True, help="folder for the runs and the comparison")
    compare.add_argument("--config", type=Path, help="TOML base configuration")
    compare.add_argument(
        "--models",
        default="all",
        help="comma-separated architectures (cnn_lstm, lstm, gru, cnn1d, tcn, resnet1d, inception, transformer) "
        "or 'all' (default)",
    )
    compare.add_argument("--static", choices=("both", "on", "off"), default="both", help="static-feature variants")
    compare.add_argument(
        "--delays", help="comma-separated output delays in samples, e.g. 0,2,5,10 (default: the config's [data] delay)"
    )
    compare.add_argument("--folds", default="3", help="'loso' or K folds by subject (default 3)")
    compare.add_argument("--jobs", type=int, default=1, help="runs trained in parallel (one process each; default 1)")
    compare.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="train the runs on a Dask cluster (scheduler tcp://HOST:PORT) instead of local processes; "
        "see docs/cluster.md",
    )
    compare.add_argument("--limit", type=int, help="train at most this many missing runs now; re-run to continue")
    compare.add_argument("--invocations", type=int, default=200, help="timed int8 inferences per model (default 200)")
    compare.add_argument("--epochs", type=int, help="maximum epochs per run")
    compare.add_argument("--quick", action="store_true", help="few epochs per run")
    compare.add_argument("--seed", type=int, help="random seed (folds, initialisation, window draws)")
    add_common(
        compare,
        json="print the comparison as one JSON object (rows, Pareto front, files)",
        force="write into a non-empty --out folder that is not a comparison folder (one with runs/ is always resumed)",
    )
    compare.set_defaults(handler=_compare)

    cv = commands.add_parser(
        "cv",
        help="cross-validate by subject (leave-one-subject-out or K folds), with and without static features",
        description="Train one model per fold (its test subject(s) never seen in training) through the normal "
        "training run, with and without static features, in parallel worker processes; write per-fold results "
        "to OUT/folds/<fold>-<variant>/ (a re-run skips finished folds and refuses ones made with another setup), "
        "then OUT/cv.json, cv.csv and cv.md: per-fold, pooled and mean ± SD over folds, whole-cycle and stance-only.",
    )
    add_dataset(cv)
    cv.add_argument("--out", type=Path, required=True, help="folder for the folds and the summary")
    cv.add_argument("--folds", default="loso", help="'loso' (default: leave one subject out) or K folds by subject")
    cv.add_argument("--config", type=Path, help="TOML base configuration")
    cv.add_argument("--quick", action="store_true", help="few epochs per fold")
    cv.add_argument("--static", choices=("both", "on", "off"), default="both", help="static-feature variants to run")
    cv.add_argument("--jobs", type=int, default=1, help="folds trained in parallel (one process each; default 1)")
    cv.add_argument("--limit", type=int, help="train at most this many missing folds now; re-run to continue")
    cv.add_argument("--seed", type=int, help="random seed (fold assignment, initialisation, window draws)")
    cv.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="train the folds on a Dask cluster (scheduler tcp://HOST:PORT) instead of local processes; "
        "see docs/cluster.md",
    )
    add_common(
        cv,
        json="print the summary as one JSON object",
        force="write into a non-empty --out folder that is not a cross-validation folder (one with folds/ "
        "is always resumed)",
    )
    cv.add_argument("--init-from", type=Path, metavar="RUN", help="every fold fine-tunes from RUN (see train)")
    cv.add_argument("--freeze", metavar="PATTERN,...", help="with --init-from: layer-name patterns to keep fixed")
    cv.set_defaults(handler=_cv)


def _config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from forcecast.edge.config import ConfigError
    from forcecast.training.config import load_train_config, quick

    config = load_train_config(args.config)
    try:
        if getattr(args, "model", None):
            config = replace(config, model=replace(config.model, architecture=args.model))
        if getattr(args, "no_static", False):
            config = replace(config, model=replace(config.model, use_static=False))
        if getattr(args, "test_subjects", None):
            subjects = tuple(s.strip() for s in args.test_subjects.split(",") if s.strip())
            config = replace(config, split=replace(config.split, test_subjects=subjects))
        if args.quick:
            config = quick(config)
        if getattr(args, "epochs", None) is not None:
            config = replace(config, fit=replace(config.fit, epochs=args.epochs))
        if args.seed is not None:
            config = replace(config, fit=replace(config.fit, seed=args.seed))
        if getattr(args, "init_from", None) is not None:
            config = replace(config, fit=replace(config.fit, init_from=str(args.init_from)))
        if getattr(args, "freeze", None) is not None:
            patterns = tuple(p.strip() for p in args.freeze.split(",") if p.strip())
            config = replace(config, fit=replace(config.fit, freeze=patterns))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config


def _workers(args: argparse.Namespace, config: Any) -> Any:
    """With ``--workers``: ``TF_CONFIG`` for this worker and ``[fit] strategy = "multi_worker"``."""
    from dataclasses import replace

    from forcecast.training.multiworker import WorkersError, parse_workers, role_of, tf_config

    if args.workers is None:
        if args.worker_index is not None:
            raise WorkersError("--worker-index needs --workers")
        return config
    if args.worker_index is None:
        raise WorkersError("--workers needs --worker-index (this machine's position in the list, 0 = chief)")
    import os

    os.environ["TF_CONFIG"] = tf_config(role_of(parse_workers(args.workers), args.worker_index))
    return replace(config, fit=replace(config.fit, strategy="multi_worker"))


def _progress(desc: str) -> Any:
    from tqdm import tqdm

    return lambda items, total: tqdm(items, total=total, unit="trial", desc=desc, file=sys.stderr, disable=None)


def _train(args: argparse.Namespace) -> int:
    data = dataset_of(args)
    refuse_non_empty(args.out, args.force)
    config = _workers(args, _config(args))
    _load_tensorflow(args)
    from forcecast.training.fit import train

    result = train(
        data,
        args.out,
        config,
        _progress("load"),
        verbose=0 if args.json else None,
        connect_timeout_s=args.worker_timeout,
    )
    if args.json:
        print(json.dumps({k: result.metrics[k] for k in result.metrics if k != "versions"}))
        return 0
    if not result.metrics.get("distribution", {}).get("chief", True):
        d = result.metrics["distribution"]
        print(
            f"\nworker {d['worker_index']} of {d['workers']} done: {d['steps_this_worker']} steps here, "
            f"{result.epochs_run} epochs in {result.seconds:.0f} s; the chief (worker 0) wrote the run"
        )
        return 0
    print(f"\nrun written to {result.out} in {result.seconds:.0f} s ({result.epochs_run} epochs)")
    for name in ("subject_naive", "subject_exposed"):
        if name in result.metrics:
            _print_axes(name.replace("_", "-"), result.metrics[name]["pooled"]["axes"])
    print(f"model card: {result.out / 'model_card.md'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    data_dir = dataset_of(args)
    if args.model.suffix not in (".keras", ".fcpkg"):
        from forcecast.edge.config import ConfigError

        raise ConfigError(f"--model {args.model}: expected a .keras file from 'forcecast train' or a .fcpkg package")
    _load_tensorflow(args)
    from forcecast.edge.config import ConfigError
    from forcecast.training.data import load_sequences
    from forcecast.training.evaluate import (
        choose_subjects,
        evaluate_sequences,
        headline_axes,
        keras_predictor,
        load_keras_run,
        load_package_model,
        model_uses_static,
        run_split,
        tflite_predictor,
    )

    checked = ""
    if args.model.suffix == ".keras":
        model, contract = load_keras_run(args.model)
        use_static = model_uses_static(model)
        predict = keras_predictor(model)
    elif args.model.suffix == ".fcpkg":
        tflite, contract, checked = load_package_model(args.model, args.pubkey)
        use_static = "static" in tflite.inputs
        predict = tflite_predictor(tflite, use_static)
    else:
        raise ConfigError(f"--model {args.model}: expected a .keras file from 'forcecast train' or a .fcpkg package")
    from forcecast.training.config import DataConfig

    data = DataConfig(
        rate_hz=contract.rate_hz,
        leg_places=contract.leg_places,
        window=contract.window,
        out_len=contract.out_len,
        delay=contract.delay,
        alignment=contract.alignment,  # type: ignore[arg-type]  # the contract only holds known alignments
    )
    loaded = load_sequences(data_dir, data, None if args.json else _progress("load"))
    choice = choose_subjects(
        args.subjects,
        sorted({s.subject_id for s in loaded.sequences}),
        run_split(args.model),
        args.allow_training_subjects,
    )
    for warning in choice.warnings:
        print(f"forcecast evaluate: warning: {warning}", file=sys.stderr)
    sequences = [s for s in loaded.sequences if s.subject_id in choice.subjects]
    result = evaluate_sequences(predict, sequences, contract, use_static)
    axes = headline_axes(result)
    if args.json:
        stance = headline_axes(result, "stance_axes")
        print(
            json.dumps(
                {"axes": axes, "stance_axes": stance, "n_windows": result["n_windows"], "subjects": result["subjects"]}
            )
        )
        return 0
    seen = f" ({len(choice.seen)} seen in training)" if choice.seen else " (none seen in training)"
    print(f"{args.model} on {len(result['subjects'])} subject(s): {', '.join(result['subjects'])}{seen}")
    if checked:
        print(f"package: {checked}")
    _print_axes("pooled", result["pooled"]["axes"])
    _print_axes("stance-only", result["pooled"]["stance_axes"])
    peaks = result["pooled"]["peaks"]
    if peaks["n_steps"]:
        print(
            f"vertical peaks over {peaks['n_steps']} steps: first {peaks['first_peak_mae_bw']:.3f} BW, "
            f"second {peaks['second_peak_mae_bw']:.3f} BW mean absolute error"
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from forcecast.edge.config import ConfigError

    legs = tuple(leg.strip() for leg in args.legs.split(",") if leg.strip())
    if not legs or any(leg not in ("l", "r") for leg in legs) or len(set(legs)) != len(legs):
        raise ConfigError(f"--legs {args.legs}: expected l, r or l,r")
    refuse_existing_file(args.out, args.force)
    if args.model.suffix != ".fcpkg":  # a package runs on the TFLite runtime alone
        _load_tensorflow(args)
    from forcecast.training.predict import predict_files

    if not 0.0 <= args.calibration_s <= 60.0:
        raise ConfigError(f"--calibration-s {args.calibration_s:g}: must be within 0 to 60 s")
    summary = predict_files(
        args.model, args.imu, args.out, legs, args.subject, args.static, args.pubkey, args.calibration_s
    )
    if args.json:
        print(json.dumps(summary))
        return 0
    for trial in summary["trials"]:
        print(f"{trial['file']}: {trial['rows']} GRF rows, steps {trial['steps']}")
    print(f"written: {summary['grf']}, {summary['steps']}")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    refuse_existing_file(args.out, args.force)
    _load_tensorflow(args)
    from forcecast.training.convert import ConversionError
    from forcecast.training.edgetpu import compatibility, compatibility_line
    from forcecast.training.quantize import DegradationError, quantize

    try:
        result = quantize(args.run, args.out, args.mode, args.key, args.data, args.allow_degradation)
    except (DegradationError, ConversionError) as exc:
        print(f"forcecast quantize: refused: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "package": str(result.package),
                    "mode": result.mode,
                    "model_bytes": result.model_bytes,
                    "ops": result.ops,
                    "edgetpu_ops": compatibility(result.ops),
                    "edgetpu_bytes": result.edgetpu_bytes,
                    "accuracy": result.accuracy,
                }
            )
        )
        return 0
    print(
        f"{'build':>12}  {'bytes':>9}  "
        + "  ".join(f"{a:>16}" for a in ("v r / nRMSE", "ap r / nRMSE", "ml r / nRMSE"))
    )
    for build, scores in result.accuracy.items():
        axes = scores["axes"]
        size = f"{scores['model_bytes']:,}" if "model_bytes" in scores else "-"
        print(
            f"{build:>12}  {size:>9}  "
            + "  ".join(f"{axes[a]['r']:.4f} / {axes[a]['nrmse_pct']:.2f}%".rjust(16) for a in ("v", "ap", "ml"))
        )
    print(f"ops: {', '.join(result.ops)}")
    print(compatibility_line(result.ops))
    if result.edgetpu_bytes:
        print(f"Edge TPU build: {result.edgetpu_bytes:,} bytes (model_edgetpu.tflite in the package)")
    elif result.mode == "int8":
        print("Edge TPU build: skipped (edgetpu_compiler is not on PATH)")
    print(f"package {result.package} ({result.package.stat().st_size:,} bytes, {result.mode})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    data = dataset_of(args)
    from forcecast.training.compare import RUNS_FOLDER, CompareError, compare, parse_delays, parse_models
    from forcecast.training.cv import parse_folds

    models = parse_models(args.models)
    folds = parse_folds(args.folds)
    if args.invocations < 1:
        raise CompareError(f"--invocations must be >= 1, got {args.invocations}")
    if not (args.out / RUNS_FOLDER).is_dir():  # a comparison folder is resumed; anything else is refused
        refuse_non_empty(args.out, args.force)
    config = _config(args)
    delays = parse_delays(args.delays, config.data)
    _load_tensorflow(args)
    outcome = compare(
        data,
        args.out,
        config,
        models=models,
        static=args.static,
        delays=delays,
        folds=folds,
        jobs=args.jobs,
        limit=args.limit,
        progress=not args.json,
        invocations=args.invocations,
        cluster=args.cluster,
    )
    if outcome.summary is None:
        missing = outcome.missing
        if args.json:
            print(json.dumps({"complete": False, "done": len(outcome.results), "missing": missing}))
        else:
            print(f"{len(outcome.results)} of {len(outcome.tasks)} runs done; re-run to train the other {len(missing)}")
        return 0
    if args.json:
        print(json.dumps(outcome.summary))
        return 0
    from forcecast.training.compare_report import markdown

    print(markdown(outcome.summary))
    print(
        f"written: {args.out / 'comparison.md'}, comparison.json, comparison.csv, comparison.png, pareto.png "
        f"({outcome.trained_now} run(s) trained and {outcome.measured_now} int8 model(s) measured now)"
    )
    return 0


def _cv(args: argparse.Namespace) -> int:
    data = dataset_of(args)
    if not (args.out / "folds").is_dir():  # a cross-validation folder is resumed; anything else is refused
        refuse_non_empty(args.out, args.force)
    config = _config(args)
    _load_tensorflow(args)
    from forcecast.training.cv import cross_validate, parse_folds

    outcome = cross_validate(
        data,
        args.out,
        config,
        folds=parse_folds(args.folds),
        static=args.static,
        jobs=args.jobs,
        limit=args.limit,
        progress=not args.json,
        cluster=args.cluster,
    )
    if outcome.summary is None:
        missing = [t.name for t in outcome.tasks if t.name not in outcome.results]
        message = f"{len(outcome.results)} of {len(outcome.tasks)} fold runs done; re-run to train {', '.join(missing)}"
        if args.json:
            print(json.dumps({"complete": False, "done": len(outcome.results), "missing": missing}))
        else:
            print(message)
        return 0
    if args.json:
        print(json.dumps({"complete": True, **outcome.summary}))
        return 0
    from forcecast.training.cv_report import markdown

    print(markdown(outcome.summary))
    print(f"written: {args.out / 'cv.json'}, cv.csv, cv.md ({outcome.trained_now} fold run(s) trained now)")
    return 0


def _load_tensorflow(args: argparse.Namespace) -> None:
    """Import TensorFlow once the arguments are checked: quietly, unless ``--verbose``."""
    from forcecast.training.quiet import import_tensorflow

    import_tensorflow(args.verbose)


def _print_axes(label: str, axes: dict[str, dict[str, float]]) -> None:
    print(
        f"{label:>16}  "
        + "  ".join(
            f"{axis}: r {m['r']:.3f} nRMSE {m['nrmse_pct']:.1f}% RMSE {m['rmse_bw']:.3f} BW" for axis, m in axes.items()
        )
    )
