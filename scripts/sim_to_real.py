"""Sim-to-real: whether pretraining on the synthetic lab helps when only 3 subjects are available.

Pretrains one model on synthetic subjects, then, on a target dataset, trains with only 3 subjects
available (the split draws 2 to train and 1 to validate on) twice per repeat: from scratch, and
fine-tuned from the pretrained run (``[fit] init_from``, optional ``freeze``). Both arms use the same
3 subjects, the same configuration and seed, and the same subject-naive test subjects; each repeat
draws another 3 from the target's remaining subjects. Prints one JSON object (and writes it to
``OUT/sim_to_real.json``): per repeat and arm the subject-naive r, nRMSE and RMSE per axis, whole-cycle
and stance-only where the metrics have it, and the mean over repeats with the fine-tuned minus scratch
difference.

The target defaults to a fresh synthetic lab with other people (another seed); pass ``--target`` for
another dataset, e.g. the hard preset imported from C3D. Run it niced, in the background: a few CPU
minutes per training with ``--quick``.

Example::

    nice python scripts/sim_to_real.py --out /tmp/s2r --quick --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

BLOCKS = ("axes", "stance_axes")
METRICS = ("r", "nrmse_pct", "rmse_bw")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (datasets, runs, JSON)")
    parser.add_argument("--target", type=Path, help="target dataset (default: a synthetic lab with other people)")
    parser.add_argument("--pretrain-data", type=Path, help="pretraining dataset (default: synthesised)")
    parser.add_argument("--pretrain-subjects", type=int, default=12, help="synthetic pretraining subjects")
    parser.add_argument("--target-subjects", type=int, default=9, help="subjects of a synthesised target")
    parser.add_argument("--test-subjects", type=int, default=3, help="subject-naive test subjects (fixed)")
    parser.add_argument("--available", type=int, default=3, help="target subjects available for training")
    parser.add_argument("--repeats", type=int, default=2, help="draws of the available subjects")
    parser.add_argument("--duration-s", type=float, default=30.0, help="synthesised walking trial length")
    parser.add_argument("--config", type=Path, help="training TOML (same for every run)")
    parser.add_argument("--quick", action="store_true", help="quick training settings")
    parser.add_argument("--freeze", default="", help="comma-separated layer patterns frozen when fine-tuning")
    parser.add_argument("--finetune-lr", type=float, help="learning rate when fine-tuning (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and the runs")
    return parser.parse_args(argv)


def subset(source: Path, target: Path, subjects: list[str]) -> Path:
    """A dataset folder holding only ``subjects`` of ``source`` (trial folders symlinked, subjects.csv filtered)."""
    target.mkdir(parents=True, exist_ok=True)
    with (source / "subjects.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    index = header.index("subject_id")
    with (target / "subjects.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(r for r in body if r[index] in subjects)
    (target / "trials").mkdir(exist_ok=True)
    for subject in subjects:
        link = target / "trials" / subject
        if not link.exists():
            link.symlink_to((source / "trials" / subject).resolve(), target_is_directory=True)
    for extra in source.iterdir():  # dataset-level files other than subjects and trials (e.g. a README)
        if extra.is_file() and extra.name != "subjects.csv" and not (target / extra.name).exists():
            (target / extra.name).symlink_to(extra.resolve())
    return target


def synthesise(folder: Path, subjects: int, seed: int, duration_s: float) -> Path:
    """A synthetic lab dataset (kept when already there)."""
    from forcecast.lab.synth import SynthConfig, generate_dataset

    if not (folder / "subjects.csv").is_file():
        generate_dataset(folder, SynthConfig(subjects=subjects, seed=seed, duration_s=duration_s))
    return folder


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Subject-naive r / nRMSE / RMSE per axis, whole-cycle and stance-only where present."""
    pooled = metrics["subject_naive"]["pooled"]
    return {b: {a: {m: pooled[b][a][m] for m in METRICS} for a in pooled[b]} for b in BLOCKS if b in pooled}


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; prints one JSON object."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    from forcecast.lab.dataset import Dataset
    from forcecast.training.config import load_train_config, quick
    from forcecast.training.fit import train

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    config = load_train_config(args.config)
    if args.quick:
        config = quick(config)
    config = replace(config, fit=replace(config.fit, seed=args.seed))

    pretrain_data = args.pretrain_data or synthesise(
        args.out / "pretrain_data", args.pretrain_subjects, 1000 + args.seed, args.duration_s
    )
    target = args.target or synthesise(
        args.out / "target_data", args.target_subjects, 2000 + args.seed, args.duration_s
    )
    subjects = sorted(Dataset.open(target).subjects)
    if len(subjects) < args.test_subjects + args.available:
        print(
            f"{target}: {len(subjects)} subjects, need {args.test_subjects} test + {args.available} available",
            file=sys.stderr,
        )
        return 2
    rng = np.random.default_rng(args.seed)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    test, pool = sorted(order[: args.test_subjects]), order[args.test_subjects :]

    pretrain_run = args.out / "pretrain"
    if not (pretrain_run / "metrics.json").is_file():
        train(pretrain_data, pretrain_run, config, verbose=0)
    pretrain_metrics = json.loads((pretrain_run / "metrics.json").read_text())

    freeze = tuple(p.strip() for p in args.freeze.split(",") if p.strip())
    repeats: list[dict[str, Any]] = []
    for k in range(args.repeats):
        cycled = pool * (1 + (k + 1) * args.available // len(pool))
        available = sorted(cycled[k * args.available : (k + 1) * args.available])
        data = subset(target, args.out / f"target_{k}", [*available, *test])
        arms = {}
        base = replace(config, split=replace(config.split, test_subjects=tuple(test), exposed_fraction=0.0))
        tuned_fit = replace(base.fit, init_from=str(pretrain_run), freeze=freeze)
        if args.finetune_lr:
            tuned_fit = replace(tuned_fit, learning_rate=args.finetune_lr)
        for arm, run_config in (("scratch", base), ("finetuned", replace(base, fit=tuned_fit))):
            run = args.out / f"repeat{k}_{arm}"
            if not (run / "metrics.json").is_file():
                train(data, run, run_config, verbose=0)
            metrics = json.loads((run / "metrics.json").read_text())
            arms[arm] = {"split": metrics["split"], "epochs_run": metrics["epochs_run"], **headline(metrics)}
        repeats.append({"available": available, "arms": arms})

    mean: dict[str, Any] = {}
    for arm in ("scratch", "finetuned"):
        blocks = [b for b in BLOCKS if all(b in r["arms"][arm] for r in repeats)]
        mean[arm] = {
            b: {
                a: {m: round(float(np.mean([r["arms"][arm][b][a][m] for r in repeats])), 4) for m in METRICS}
                for a in ("v", "ap", "ml")
            }
            for b in blocks
        }
    gain = {
        b: {
            a: {m: round(mean["finetuned"][b][a][m] - mean["scratch"][b][a][m], 4) for m in METRICS}
            for a in mean[arm][b]
        }
        for b in mean["finetuned"]
        if b in mean["scratch"]
    }
    report = {
        "pretrain": {
            "data": str(pretrain_data),
            "subjects": len(Dataset.open(pretrain_data).subjects),
            "subject_naive": headline(pretrain_metrics),
        },
        "target": str(target),
        "test_subjects": test,
        "available_subjects": args.available,
        "freeze": list(freeze),
        "finetune_learning_rate": args.finetune_lr or config.fit.learning_rate,
        "quick": args.quick,
        "seed": args.seed,
        "repeats": repeats,
        "mean": mean,
        "finetuned_minus_scratch": gain,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "sim_to_real.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
