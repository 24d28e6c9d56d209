"""Subcommands owned by the lab layer: ``forcecast data synth|import|check|resample``.

Only the standard library is imported here; each handler imports what it needs (pandas, pyarrow and tqdm
come with the ``lab`` extra; without it a data command says so in one line, see :mod:`forcecast.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common, refuse_non_empty


def register(commands: Any) -> None:
    """Add the ``data`` command group to the top-level subparsers."""
    data = commands.add_parser(
        "data",
        help="synthesise, check and resample datasets (format v1)",
        description="Work with datasets in forcecast's interchange format v1.",
    )
    verbs = data.add_subparsers(dest="verb", metavar="VERB", required=True)

    synth = verbs.add_parser(
        "synth",
        help="write the synthetic gait lab dataset",
        description="Generate virtual subjects walking on an instrumented treadmill with IMUs, in format v1. "
        "The same seed gives byte-identical files.",
    )
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    synth.add_argument("--subjects", type=int, help="number of subjects (default 20)")
    synth.add_argument("--seed", type=int, help="master seed (default 0)")
    synth.add_argument("--duration-s", type=float, help="length of each walking trial (default 60)")
    synth.add_argument("--speeds", help="comma-separated conditions from slow,comfortable,fast (default all)")
    synth.add_argument("--format", dest="file_format", choices=("csv", "parquet"), help="file format (default csv)")
    synth.add_argument("--config", type=Path, help="TOML file with a [synth] table; flags override it")
    add_common(
        synth,
        json="print one JSON object instead of text",
        force="write into a non-empty --out folder (files of the same names are replaced)",
    )
    synth.add_argument(
        "--preset",
        choices=("easy", "hard"),
        default="easy",
        help="easy: treadmill dataset in format v1 (default); hard: an overground lab's raw C3D files, "
        "mapping.toml and subjects.csv without body mass, ready for 'forcecast data import'",
    )
    synth.set_defaults(handler=_synth)

    lab_import = verbs.add_parser(
        "import",
        help="import lab files (C3D, OpenSim .mot/.sto, CSV) into a dataset",
        description="Read SRC/subjects.csv and SRC/<subject_id>/*.c3d|.mot|.sto|.csv, pick and scale channels "
        "with the mapping file, assign clean plate contacts to feet, set swing to 0 N, estimate and correct "
        "the IMU lag, estimate unknown body mass, and write a dataset of format v1 to --out.",
    )
    lab_import.add_argument("src", type=Path, help="folder of lab files, one folder per subject")
    lab_import.add_argument("--mapping", type=Path, required=True, help="mapping file (TOML)")
    lab_import.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    lab_import.add_argument(
        "--imu-lag",
        default="auto",
        help="IMU lag behind the force clock: auto (estimate per trial, default) or milliseconds to apply",
    )
    lab_import.add_argument(
        "--skip-static",
        action="store_true",
        help="do not keep quiet-standing (static) trials as IMU-only trials for the segment_v1 alignment "
        "(they still weigh the subject)",
    )
    add_common(lab_import, json="print one JSON object instead of text")
    lab_import.set_defaults(handler=_import)

    check = verbs.add_parser(
        "check",
        help="validate a dataset and summarise it",
        description="Check every file of a dataset (format v1). Exits 1 if any error is found, "
        "listing each with its file, row and column.",
    )
    check.add_argument("dataset", type=Path, help="dataset folder")
    add_common(check, json="print one JSON object instead of text")
    check.set_defaults(handler=_check)

    resample = verbs.add_parser(
        "resample",
        help="resample a dataset to one rate (single-file trials)",
        description="Write a copy of a dataset with every trial's IMU and force on one time base at "
        "--rate-hz (anti-aliased: causal for IMU, zero-phase for force).",
    )
    resample.add_argument("dataset", type=Path, help="dataset folder to read")
    resample.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    resample.add_argument("--rate-hz", type=float, required=True, help="target sampling rate")
    resample.add_argument("--format", dest="file_format", choices=("csv", "parquet"), default="csv")
    add_common(resample, force="write into a non-empty --out folder (files of the same names are replaced)")
    resample.set_defaults(handler=_resample)



def _progress(json_output: bool, unit: str, desc: str) -> Any:
    from tqdm import tqdm

    def wrap(items: Any, total: int) -> Any:
        return tqdm(
            items,
            total=total,
            unit=unit,
            desc=desc,
            disable=True if json_output else None,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    return wrap


def _synth(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from forcecast.edge.config import ConfigError, load_config
    from forcecast.lab.synth import SynthConfig, generate_dataset

    config = load_config(SynthConfig, args.config, "synth") if args.config else _preset_config(args.preset)
    overrides: dict[str, Any] = {}
    for name in ("subjects", "seed", "duration_s", "file_format"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.speeds is not None:
        overrides["speeds"] = tuple(s.strip() for s in args.speeds.split(",") if s.strip())
    refuse_non_empty(args.out, args.force)
    try:
        config = replace(config, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.preset == "hard":
        return _synth_overground(args, config)
    started = time.perf_counter()
    subjects = generate_dataset(args.out, config, _progress(args.json, "trial", "synth"))
    elapsed = time.perf_counter() - started
    n_trials = len(subjects) * (len(config.speeds) + (1 if config.static_s > 0 else 0))
    result = {
        "out": str(args.out),
        "subjects": len(subjects),
        "trials": n_trials,
        "seed": config.seed,
        "seconds": round(elapsed, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {len(subjects)} subjects, {n_trials} trials to {args.out} in {elapsed:.1f} s")
    return 0


def _import(args: argparse.Namespace) -> int:
    from forcecast.edge.config import ConfigError
    from forcecast.lab.dataset.importers import load_mapping
    from forcecast.lab.dataset.importers.importer import import_lab_data, render_report

    if args.imu_lag == "auto":
        lag_ms = None
    else:
        try:
            lag_ms = float(args.imu_lag)
        except ValueError:
            raise ConfigError(f"--imu-lag must be 'auto' or a number of milliseconds, got {args.imu_lag!r}") from None
        if not -500.0 <= lag_ms <= 500.0:
            raise ConfigError(f"--imu-lag {lag_ms:g} ms is beyond ±500 ms")
    mapping = load_mapping(args.mapping)
    report = import_lab_data(
        args.src, mapping, args.out, lag_ms, _progress(args.json, "file", "import"), keep_static=not args.skip_static
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(render_report(report))
    return 0


def _check(args: argparse.Namespace) -> int:
    from forcecast.lab.dataset import check_dataset

    report = check_dataset(args.dataset, _progress(args.json, "trial", "check"))
    summary = report.summary()
    if args.json:
        print(json.dumps({"ok": report.ok, "summary": summary, "problems": [p.to_dict() for p in report.problems]}))
        return 0 if report.ok else 1
    print(f"dataset   {summary['root']}")
    print(f"subjects  {summary['subjects']} ({summary['subjects_with_trials']} with trials)")
    print(f"trials    {summary['trials']}, {_duration(summary['duration_s'])} in all")
    print(f"IMU rates {', '.join(f'{r:g} Hz' for r in summary['imu_rates_hz']) or '-'}")
    print(
        f"force     {', '.join(f'{r:g} Hz' for r in summary['force_rates_hz']) or 'none'}; coverage "
        + ", ".join(f"{side} {100 * c:.1f} %" for side, c in summary["force_coverage"].items())
    )
    print(f"places    {', '.join(summary['places']) or '-'}")
    lags = summary["imu_lag_ms"]
    if lags:
        print("IMU lag   " + ", ".join(f"{name} {lag:+.0f} ms" for name, lag in lags.items()))
    for problem in report.problems:
        print(f"  {problem}")
    verdict = "OK" if report.ok else "FAILED"
    print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if report.ok else 1


def _preset_config(preset: str) -> Any:
    """The synthetic lab's settings for a preset (the hard preset's IMU side, where defined, from the synth)."""
    from forcecast.lab.synth import SynthConfig
    from forcecast.lab.synth import config as synth_config

    if preset == "hard" and hasattr(synth_config, "hard_preset"):
        return synth_config.hard_preset()
    return SynthConfig()


def _synth_overground(args: argparse.Namespace, config: Any) -> int:
    from forcecast.lab.synth.c3d_export import OvergroundConfig, write_overground_dataset

    started = time.perf_counter()
    progress = _progress(args.json, "trial", "synth")
    truth = write_overground_dataset(args.out, config, OvergroundConfig(seed=config.seed), progress)
    elapsed = time.perf_counter() - started
    subjects = truth["subjects"]
    n_trials = sum(len(s["trials"]) for s in subjects.values())
    result = {
        "out": str(args.out),
        "subjects": len(subjects),
        "trials": n_trials,
        "seed": config.seed,
        "seconds": round(elapsed, 2),
        "preset": "hard",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"wrote {len(subjects)} subjects, {n_trials} C3D trials, mapping.toml and subjects.csv to {args.out} "
            f"in {elapsed:.1f} s (true lags and masses in {args.out}/_truth); next: forcecast data import {args.out} "
            f"--mapping {args.out}/mapping.toml --out DATASET"
        )
    return 0


def _resample(args: argparse.Namespace) -> int:
    import shutil

    from tqdm import tqdm

    from forcecast.lab.dataset import SUBJECTS_FILE, Dataset, resample_trial, write_trial

    if args.out.resolve() == args.dataset.resolve():
        raise FileExistsError(f"--out must differ from the input dataset ({args.out})")
    refuse_non_empty(args.out, args.force)
    dataset = Dataset.open(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.dataset / SUBJECTS_FILE, args.out / SUBJECTS_FILE)
    for ref in tqdm(dataset.trials, unit="trial", desc="resample", file=sys.stderr, disable=None):
        trial = resample_trial(dataset.load(ref), args.rate_hz)
        write_trial(args.out, trial, file_format=args.file_format, paired=False)
    print(f"wrote {len(dataset.trials)} trials at {args.rate_hz:g} Hz to {args.out}")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
