"""Figure: how well `forcecast data import` recovers the synthetic overground lab's truth from its C3D files.

Writes a hard-preset cohort as raw C3D files (overground plates, sample-and-hold IMU channels with a
per-session lag, foot markers with gaps, quiet-standing trials), imports it, checks it, and compares
with the truth the synthetic lab keeps in ``_truth/``: the IMU lag applied per trial (and each
trial's own estimate), body mass (with every mass left blank, so all are estimated; ``--no-standing``
drops the standing trials to measure the stride method), clean and refused plate contacts, the error
of known force samples, and how often 0 N is claimed where the foot carries load.

Prints one JSON object.

Usage::

    python scripts/lab_import_accuracy.py [--subjects 8] [--seed 0] [--out DIR] [--no-standing]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.lab.dataset import Dataset, check_dataset
from forcecast.lab.dataset.importers import import_lab_data, load_mapping
from forcecast.lab.synth.c3d_export import TRUTH_DIR, OvergroundConfig, OvergroundTruth, write_overground_dataset
from forcecast.lab.synth.config import hard_preset


def main(argv: list[str] | None = None) -> int:
    """Run the figure and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--no-standing", action="store_true", help="no quiet-standing trials (mass from strides)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        raw, out = root / "raw", root / "dataset"
        lab = OvergroundConfig(seed=args.seed, mass_known=False, static=not args.no_standing)
        truth = write_overground_dataset(raw, hard_preset(subjects=args.subjects, seed=args.seed), lab)
        report = import_lab_data(raw, load_mapping(raw / "mapping.toml"), out)
        check = check_dataset(out)
        print(json.dumps(_figures(truth, report.as_dict(), raw, out, check.ok), indent=1))
    return 0


def _figures(
    truth: OvergroundTruth, report: dict[str, Any], raw: Path, out: Path, check_ok: bool
) -> dict[str, object]:
    subjects = truth["subjects"]
    applied, own, clean, refused = [], [], 0, 0
    for trial in report["trials"]:
        if trial["status"] != "imported":
            continue
        true_lag = subjects[trial["subject_id"]]["lag_ms"]
        applied.append(trial["lag_applied_ms"] - true_lag)
        if trial["lag"]["lag_ms"] is not None:
            own.append(trial["lag"]["lag_ms"] - true_lag)
        clean += sum(trial["clean_contacts"].values())
        refused += sum(trial["unclean_contacts"].values())
    mass_errors = [
        100.0
        * (s["body_mass_kg"] - subjects[s["subject_id"]]["body_mass_kg"])
        / subjects[s["subject_id"]]["body_mass_kg"]
        for s in report["subjects"]
        if s["body_mass_kg"] is not None
    ]
    force_error, zero_in_stance, swing_known, swing_total = _force_figures(raw, out)
    a, o, m = np.abs(applied), np.abs(own), np.abs(mass_errors)
    return {
        "subjects": len(subjects),
        "trials_imported": len(applied),
        "static_trials_kept": report.get("static_kept", 0),
        "data_check_ok": check_ok,
        "true_lags_ms": sorted({v["lag_ms"] for v in subjects.values()}),
        "lag_applied_abs_error_ms": {"median": round(float(np.median(a)), 1), "max": round(float(a.max()), 1)},
        "lag_own_estimate_abs_error_ms": {
            "median": round(float(np.median(o)), 1),
            "p90": round(float(np.percentile(o, 90)), 1),
            "max": round(float(o.max()), 1),
        },
        "mass_sources": sorted({s["body_mass_source"] for s in report["subjects"]}),
        "mass_abs_error_pct": {"median": round(float(np.median(m)), 2), "max": round(float(m.max()), 2)},
        "plate_contacts": {"clean": clean, "refused": refused},
        "known_force_abs_error_n": {
            "p99": round(float(np.percentile(force_error, 99)), 2),
            "max": round(float(force_error.max()), 2),
        },
        "zero_claimed_under_load_samples": zero_in_stance,
        "swing_known_zero_fraction": round(swing_known / max(swing_total, 1), 3),
    }


def _force_figures(raw: Path, out: Path) -> tuple[np.ndarray, int, int, int]:
    imported, source = Dataset.open(out), Dataset.open(raw / TRUTH_DIR)
    errors, zero_in_stance, swing_known, swing_total = [], 0, 0, 0
    for ref in imported.trials:
        match = next(r for r in source.trials if (r.subject_id, r.trial_id) == (ref.subject_id, ref.trial_id))
        a, b = imported.load(ref).force, source.load(match).force
        if a is None:  # a static trial kept IMU-only for the sensor alignment
            continue
        assert b is not None
        ka, kb = np.rint(a.time_s * 1000).astype(int), np.rint(b.time_s * 1000).astype(int)
        _, ia, ib = np.intersect1d(ka, kb, return_indices=True)
        mine, truth = a.values[ia], b.values[ib]
        errors.append(np.abs(mine - truth)[np.isfinite(mine)])
        for side in (0, 3):
            zero_in_stance += int(np.sum((mine[:, side] == 0) & (truth[:, side] > 50)))
            swing_total += int(np.sum(truth[:, side] == 0))
            swing_known += int(np.sum((mine[:, side] == 0) & (truth[:, side] == 0)))
    return np.concatenate(errors), zero_in_stance, swing_known, swing_total


if __name__ == "__main__":
    sys.exit(main())
