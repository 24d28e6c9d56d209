"""Figure: how close segment alignment gets to the synthetic lab's true sensor mountings.

For every subject of a hard-preset cohort (arbitrary placements, vendor frames, soft tissue), one
session (a static trial and walks at comfortable and fast speed, resampled to 100 Hz) is aligned
offline, once with the static trial (``segment_v1``) and once without (``segment_v1_walking``). The
angle between the estimated rotation and the true one (from the lab's mounting) is reported per group
of sensors: the whole rotation, and the axis found from motion alone (``motion_axis``: medio-lateral for
leg sensors, forward for the pelvis). Without standing, gravity comes from the walking posture and the
frame leans by the segment's mean lean while walking; the motion axis does not.

Prints one JSON object.

Usage::

    python scripts/alignment_accuracy.py [--subjects 16] [--seed 3] [--duration-s 30]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from forcecast.edge.dsp.segment_alignment import StreamAligner, angle_deg, settings_for
from forcecast.lab.dataset import resample_trial
from forcecast.lab.synth import SynthConfig, make_subject, static_trial, walking_trial
from forcecast.lab.synth.body import mount_matrix

RATE = 100.0


def summary(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile and worst, in degrees."""
    return {
        "median": round(float(np.median(values)), 2),
        "p90": round(float(np.percentile(values, 90)), 2),
        "max": round(float(np.max(values)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Align every subject's session with and without standing; print the errors as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    config = SynthConfig(
        subjects=args.subjects, seed=args.seed, duration_s=args.duration_s, static_s=5.0, preset="hard"
    )
    errors: dict[str, list[float]] = {
        f"{standing}/{group}/{what}": []
        for standing in ("with_standing", "walking_only")
        for group in ("legs", "pelvis")
        for what in ("rotation", "motion_axis")
    }
    not_converged: list[str] = []
    for index in range(1, args.subjects + 1):
        subject = make_subject(config, index)
        walks = [resample_trial(walking_trial(subject, c, config), RATE) for c in ("comfortable", "fast")]
        still = resample_trial(static_trial(subject, config), RATE)
        for standing, trials, alignment in (
            ("with_standing", [still, *walks], "segment_v1"),
            ("walking_only", walks, "segment_v1_walking"),
        ):
            aligner = StreamAligner(trials[0].imu.columns, RATE, settings_for(alignment))
            for trial in trials:
                aligner.update(np.vstack([trial.imu.values, np.full((1, len(trial.imu.columns)), np.nan)]))
            for place, result in aligner.results().items():
                if not result.converged:
                    not_converged.append(f"{subject.subject_id} {standing}: {result.reason}")
                    continue
                truth = mount_matrix(subject.mounts[place])
                estimate = result.matrix()
                group = "pelvis" if place == "pelvis" else "legs"
                errors[f"{standing}/{group}/rotation"].append(angle_deg(estimate, truth))
                axis = 0 if place == "pelvis" else 1  # the axis found from motion: forward (pelvis) or medio-lateral
                cos = float(np.clip(estimate[axis] @ truth[axis], -1.0, 1.0))
                errors[f"{standing}/{group}/motion_axis"].append(float(np.rad2deg(np.arccos(cos))))
    report = {
        "cohort": {"preset": "hard", "subjects": args.subjects, "seed": args.seed, "duration_s": args.duration_s},
        "error_deg": {k: summary(v) for k, v in errors.items() if v},
        "not_converged": not_converged,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
