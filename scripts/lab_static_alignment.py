"""Figure: segment alignment of imported lab data, with the static trials kept and without them.

A hard-preset overground lab (C3D, vendor units, sample-and-hold, IMU lag) is imported twice: as
``data import`` does by default (quiet-standing trials kept IMU-only) and with ``--skip-static``. The
training pipeline's alignment (:func:`forcecast.training.alignment.fit_session_alignments`, every trial of a
subject, at 100 Hz) is fitted with ``segment_v1`` on the first and ``segment_v1_walking`` on the second
(``segment_v1`` refuses it), and compared with the lab's true sensor mountings: the angle of the whole
rotation and of the up axis, per group of sensors.

Prints one JSON object.

Usage::

    python scripts/lab_static_alignment.py [--subjects 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from forcecast.edge.dsp.segment_alignment import SegmentAlignment, angle_deg, settings_for
from forcecast.lab.dataset import Dataset
from forcecast.lab.dataset.importers import import_lab_data, load_mapping
from forcecast.lab.synth.body import mount_matrix
from forcecast.lab.synth.c3d_export import OvergroundConfig, write_overground_dataset
from forcecast.lab.synth.config import hard_preset
from forcecast.lab.synth.lab import subjects_for
from forcecast.training.alignment import fit_session_alignments, model_places

RATE_HZ = 100.0
LEG_PLACES = ("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis")


def summary(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile and worst, in degrees."""
    return {
        "median": round(float(np.median(values)), 2),
        "p90": round(float(np.percentile(values, 90)), 2),
        "max": round(float(np.max(values)), 2),
    }


def errors(
    results: dict[str, dict[str, SegmentAlignment]], truth: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Rotation and up-axis errors (degrees) per group of sensors."""
    found: dict[str, list[float]] = {}
    for subject_id, places in results.items():
        for place, result in places.items():
            estimate, true = result.matrix(), truth[subject_id][place]
            group = "pelvis" if place == "pelvis" else "legs"
            found.setdefault(f"{group}/rotation", []).append(angle_deg(estimate, true))
            cos = float(np.clip(estimate[2] @ true[2], -1.0, 1.0))
            found.setdefault(f"{group}/up_axis", []).append(float(np.rad2deg(np.arccos(cos))))
    return {key: summary(values) for key, values in sorted(found.items())}


def main(argv: list[str] | None = None) -> int:
    """Import the lab with and without static trials, align, print the errors as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = hard_preset(subjects=args.subjects, seed=args.seed)
    truth = {s.subject_id: {p: mount_matrix(m) for p, m in s.mounts.items()} for s in subjects_for(config)}
    places = model_places(LEG_PLACES)
    report: dict[str, object] = {"cohort": {"preset": "hard", "subjects": args.subjects, "seed": args.seed}}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        write_overground_dataset(raw, config, OvergroundConfig(seed=args.seed))
        mapping = load_mapping(raw / "mapping.toml")
        for name, keep, alignment in (
            ("static_kept/segment_v1", True, "segment_v1"),
            ("skip_static/segment_v1_walking", False, "segment_v1_walking"),
        ):
            out = Path(tmp) / name.split("/")[0]
            imported = import_lab_data(raw, mapping, out, keep_static=keep)
            dataset = Dataset.open(out)
            results = fit_session_alignments(dataset, dataset.trials, RATE_HZ, places, settings=settings_for(alignment))
            report[name] = {
                "static_trials_kept": len(imported.static_kept),
                "standing_s_min": round(min(r.standing_s for p in results.values() for r in p.values()), 1),
                "error_deg": errors(results, truth),
            }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
