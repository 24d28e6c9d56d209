"""Body mass from force, for subjects whose mass was not recorded.

Two methods, the first preferred when a trial allows it:

- **Quiet standing** on the plates: the summed vertical force over the steadiest 2 s (coefficient
  of variation under 3 %) is body weight.
- **Walking strides**: over a stride the body neither rises nor sinks, so both feet's vertical
  impulses sum to body weight × stride time; for one leg, the impulse of a clean plate contact is
  ≈ body weight × stride time / 2. Stride time is that foot's median time between swings.
  The median over all clean contacts of both legs (asymmetries cancel) gives the estimate.

The result is flagged in ``subjects.csv`` by ``body_mass_source = estimated_standing`` or
``estimated_strides`` (``measured`` when the lab gave it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset.importers.gait import runs
from forcecast.lab.dataset.importers.recording import FloatArray

STANDING_WINDOW_S = 2.0
STANDING_MAX_CV = 0.03
MIN_STANDING_N = 200.0


@dataclass(frozen=True)
class MassEstimate:
    """A body-mass estimate: value, method, and how many contacts or seconds it rests on."""

    mass_kg: float
    method: str
    support: int


def from_standing(time_s: FloatArray, total_vertical_n: FloatArray) -> MassEstimate | None:
    """Body mass from the steadiest window of summed vertical force, if the subject stood still on the plates."""
    rate = 1.0 / float(np.median(np.diff(time_s)))
    width = round(STANDING_WINDOW_S * rate)
    v = np.asarray(total_vertical_n, dtype=np.float64)
    if v.size < width or width < 10:
        return None
    step = max(1, width // 4)
    best: tuple[float, float] | None = None
    for start in range(0, v.size - width + 1, step):
        window = v[start : start + width]
        if not np.all(np.isfinite(window)):
            continue
        mean = float(window.mean())
        if mean < MIN_STANDING_N:
            continue
        cv = float(window.std()) / mean
        if best is None or cv < best[0]:
            best = (cv, mean)
    if best is None or best[0] > STANDING_MAX_CV:
        return None
    return MassEstimate(best[1] / GRAVITY_MPS2, "estimated_standing", int(STANDING_WINDOW_S))


def stride_time_s(swing_time_s: FloatArray, swing: np.ndarray) -> float | None:
    """Median time between the starts of successive swings of one foot."""
    starts, _ = runs(swing)
    if starts.size < 2:
        return None
    intervals = np.diff(swing_time_s[starts])
    intervals = intervals[(intervals > 0.6) & (intervals < 2.5)]
    return float(np.median(intervals)) if intervals.size else None


def contact_body_weight(time_s: FloatArray, vertical_n: FloatArray, stride_s: float) -> float:
    """Body weight implied by one clean contact's vertical impulse and the stride time."""
    v = np.nan_to_num(np.asarray(vertical_n, dtype=np.float64), nan=0.0)
    impulse = float(np.trapezoid(v, time_s))
    return 2.0 * impulse / stride_s


def from_strides(body_weights_n: list[float]) -> MassEstimate | None:
    """Body mass from per-contact body weights (:func:`contact_body_weight`)."""
    if not body_weights_n:
        return None
    return MassEstimate(float(np.median(body_weights_n)) / GRAVITY_MPS2, "estimated_strides", len(body_weights_n))
