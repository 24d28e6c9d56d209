"""One-to-one matching of detected step events to true ones, for step-detection accuracy tests.

Each true step is matched to at most one detection, and each detection to at most one true step, within
a time tolerance; among all such matchings the one with the most pairs, then the smallest total time
error, is taken (an assignment problem, solved with :func:`scipy.optimize.linear_sum_assignment`).
Detections left over are false positives, true steps left over are misses. A detector that reports every
step twice therefore gets half its detections counted as false positives: its precision is about 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class StepMatch:
    """The outcome of :func:`match_events`.

    Attributes
    ----------
    pairs
        ``(true index, detected index)`` of each match, in order of the true steps.
    missed
        Indices of true steps no detection matched (false negatives).
    extra
        Indices of detections matched to no true step (false positives).
    """

    pairs: tuple[tuple[int, int], ...]
    missed: tuple[int, ...]
    extra: tuple[int, ...]

    @property
    def precision(self) -> float:
        """Matched detections over all detections (1.0 when nothing was detected and nothing was there)."""
        detected = len(self.pairs) + len(self.extra)
        return len(self.pairs) / detected if detected else float(not self.missed)

    @property
    def recall(self) -> float:
        """Matched true steps over all true steps (1.0 when there were none)."""
        truth = len(self.pairs) + len(self.missed)
        return len(self.pairs) / truth if truth else 1.0

    def __add__(self, other: StepMatch) -> StepMatch:
        """Counts of two matchings together (e.g. both legs); indices are no longer meaningful, only counts."""
        return StepMatch(self.pairs + other.pairs, self.missed + other.missed, self.extra + other.extra)


def match_events(truth_s: Sequence[float], detected_s: Sequence[float], tolerance_s: float) -> StepMatch:
    """Match detected event times to true ones one-to-one, within ``tolerance_s``.

    Parameters
    ----------
    truth_s, detected_s
        Event times (s), in any order.
    tolerance_s
        Largest ``|detected - true|`` a match may have.

    Raises
    ------
    ValueError
        If the tolerance is not positive or a time is not finite.
    """
    if not tolerance_s > 0:
        raise ValueError(f"tolerance_s must be positive, got {tolerance_s}")
    truth = np.asarray(truth_s, dtype=np.float64).reshape(-1)
    detected = np.asarray(detected_s, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(detected))):
        raise ValueError("event times must be finite")
    if truth.size == 0 or detected.size == 0:
        return StepMatch((), tuple(range(truth.size)), tuple(range(detected.size)))
    error = np.abs(truth[:, None] - detected[None, :])
    allowed = error <= tolerance_s
    # A forbidden pair costs more than every allowed pair together, so the assignment first maximises
    # the number of allowed pairs, then minimises their total error.
    forbidden = tolerance_s * (min(truth.size, detected.size) + 1)
    rows, cols = linear_sum_assignment(np.where(allowed, error, forbidden))
    kept = sorted((int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c])
    matched_truth = {r for r, _ in kept}
    matched_detected = {c for _, c in kept}
    return StepMatch(
        tuple(kept),
        tuple(i for i in range(truth.size) if i not in matched_truth),
        tuple(j for j in range(detected.size) if j not in matched_detected),
    )


def check_detection(match: StepMatch, min_precision: float, min_recall: float, what: str = "steps") -> None:
    """Assert a detector's precision and recall.

    Raises
    ------
    AssertionError
        Naming the figure that fell short, with the counts.
    """
    counts = f"{len(match.pairs)} matched, {len(match.missed)} missed, {len(match.extra)} false positives"
    assert match.precision >= min_precision, f"{what}: precision {match.precision:.3f} < {min_precision} ({counts})"
    assert match.recall >= min_recall, f"{what}: recall {match.recall:.3f} < {min_recall} ({counts})"
