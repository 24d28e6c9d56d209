"""Figure: accuracy with the test subjects' sensors turned arbitrarily vs as recorded (segment alignment).

A small hard-preset cohort (arbitrary placements, vendor frames, soft tissue; body masses known, since
estimating them is the importer's job) is synthesised; a model is trained ``--quick``-sized with
``[data] alignment = "segment_v1"``. Its pinned subject-naive test subjects are then evaluated twice:
as recorded, and with every IMU of theirs turned by a random rotation (drawn per subject and sensor:
the raw data of every trial, static included, as if the sensors had been strapped on differently).
Alignment is re-estimated from the turned data, as the device would. With ``--baseline`` the same is
done for a model trained without alignment, for comparison.

Prints one JSON object: per model, r and nRMSE per axis (whole-cycle and stance-only) on the test
subjects as recorded and turned, and ``delta_r_v`` (turned minus as recorded; the target is
``|delta_r_v| <= 0.02`` with alignment).

Usage::

    python scripts/alignment_robustness.py --out /tmp/alignment-bench [--subjects 8] [--baseline]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.schema import PLACES, SENSOR_AXES, imu_column
from forcecast.lab.dataset import Dataset
from forcecast.lab.dataset.trial import Stream, write_trial
from forcecast.lab.synth import SynthConfig, generate_dataset
from forcecast.training.config import DataConfig, FitConfig, SplitConfig, TrainConfig
from forcecast.training.data import load_sequences
from forcecast.training.evaluate import evaluate_sequences, keras_predictor, load_keras_run
from forcecast.training.fit import train


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed rotation matrix (from a random unit quaternion)."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def turned_copy(source: Path, target: Path, subjects: tuple[str, ...], seed: int) -> dict[str, dict[str, float]]:
    """Copy a dataset, turning every IMU of ``subjects`` by a random rotation; returns the angles (degrees)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    dataset = Dataset.open(target)
    rng = np.random.default_rng(seed)
    rotations = {s: {p: random_rotation(rng) for p in PLACES} for s in subjects}
    for ref in dataset.trials:
        if ref.subject_id not in subjects:
            continue
        trial = dataset.load(ref)
        values = trial.imu.values.copy()
        for place, rotation in rotations[ref.subject_id].items():
            for kind in ("acc", "gyr"):
                columns = [trial.imu.columns.index(imu_column(place, kind, a)) for a in SENSOR_AXES]
                values[:, columns] = trial.imu.values[:, columns] @ rotation.T
        imu = Stream(trial.imu.time_s, trial.imu.columns, values, trial.imu.source)
        for path in ref.paths:
            path.unlink()
        write_trial(target, replace(trial, imu=imu), file_format="csv", paired=trial.force is not None)
    return {
        s: {p: round(float(np.rad2deg(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))), 1) for p, r in rot.items()}
        for s, rot in rotations.items()
    }


def scores(run: Path, data: Path, config: TrainConfig, subjects: tuple[str, ...]) -> dict[str, Any]:
    """Subject-naive metrics of a run's model on ``subjects`` of dataset ``data``."""
    model, contract = load_keras_run(run / "model.keras")
    sequences = [s for s in load_sequences(data, config.data).sequences if s.subject_id in subjects]
    result = evaluate_sequences(keras_predictor(model), sequences, contract, config.model.use_static)
    out = {}
    for which in ("axes", "stance_axes"):
        out[which] = {
            axis: {"r": round(float(m["r"]), 4), "nrmse_pct": round(float(m["nrmse_pct"]), 2)}
            for axis, m in result["pooled"][which].items()
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Synthesise, train, evaluate as recorded and turned, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (datasets and runs)")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=30.0, help="length of each walking trial")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--rotation-seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--min-steps", type=int, default=400)
    parser.add_argument("--baseline", action="store_true", help="also train and test a model without alignment")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    recorded = args.out / "hard"
    synth = SynthConfig(
        subjects=args.subjects,
        seed=args.seed,
        duration_s=args.duration_s,
        static_s=5.0,
        speeds=("comfortable", "fast"),
        preset="hard",
        unknown_mass_fraction=0.0,
    )
    if not (recorded / "synth.json").is_file():
        generate_dataset(recorded, synth)
    test = tuple(f"S{i:02d}" for i in range(args.subjects - 1, args.subjects + 1))
    turned = args.out / "hard_turned"
    angles = turned_copy(recorded, turned, test, args.rotation_seed)
    report: dict[str, Any] = {
        "data": {"synth": "hard preset", "subjects": args.subjects, "duration_s": args.duration_s, "test": test},
        "rotation_deg": angles,
    }
    for alignment in ("segment_v1", "none") if args.baseline else ("segment_v1",):
        config = TrainConfig(
            data=DataConfig(alignment=alignment, train_stride=8),
            fit=FitConfig(epochs=args.epochs, patience=3, min_steps=args.min_steps),
            split=SplitConfig(test_subjects=test, val_fraction=0.15, exposed_fraction=0.0),
        )
        run = args.out / f"run_{alignment}"
        result = train(recorded, run, config, verbose=0)
        as_recorded = scores(run, recorded, config, test)
        as_turned = scores(run, turned, config, test)
        report[alignment] = {
            "epochs_run": result.epochs_run,
            "as_recorded": as_recorded,
            "turned": as_turned,
            "delta_r_v": round(as_turned["axes"]["v"]["r"] - as_recorded["axes"]["v"]["r"], 4),
            "delta_r_v_stance": round(as_turned["stance_axes"]["v"]["r"] - as_recorded["stance_axes"]["v"]["r"], 4),
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
