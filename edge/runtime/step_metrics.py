"""Per-step load metrics from one stance's GRF, the same for predicted and measured force.

Vertical peaks: the maximum in the first and in the second half of stance (weight acceptance and
push-off). Loading rate: mean slope of the vertical force between 20 % and 80 % of the first peak.
Impulses: time integrals (trapezoid) in BW·s; the anterior-posterior force splits into its braking
(negative, reported as a positive number) and propulsive parts. Peak medial-lateral force: the
largest medial (positive) value. The stance waveform is resampled to 101 points (0–100 % stance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.runtime.steps import Stance

FloatArray = NDArray[np.float64]
WAVEFORM_POINTS = 101
AXES = ("v", "ap", "ml")


def step_metrics(stance: Stance, body_weight_n: float) -> dict[str, Any]:
    """Metrics of one stance (keys in the step record's vocabulary; ``*_bw`` also given in N)."""
    t, f = stance.time_s, stance.grf_bw
    v, ap, ml = f[:, 0], f[:, 1], f[:, 2]
    mid = stance.ic_s + (stance.tc_s - stance.ic_s) / 2
    first = t <= mid
    peak1, peak2 = float(v[first].max()), float(v[~first].max())
    i_peak1 = int(np.flatnonzero(first)[np.argmax(v[first])])
    loading_rate = _loading_rate(t[: i_peak1 + 1], v[: i_peak1 + 1], peak1)
    metrics: dict[str, Any] = {
        "ic_s": round(stance.ic_s, 4),
        "tc_s": round(stance.tc_s, 4),
        "stance_s": round(stance.tc_s - stance.ic_s, 4),
        "peak1_bw": peak1,
        "peak2_bw": peak2,
        "loading_rate_bw_s": loading_rate,
        "impulse_v_bws": float(np.trapezoid(v, t)),
        "impulse_brake_bws": float(-np.trapezoid(np.minimum(ap, 0.0), t)),
        "impulse_prop_bws": float(np.trapezoid(np.maximum(ap, 0.0), t)),
        "peak_ml_bw": float(max(ml.max(), 0.0)),
    }
    for key in ("peak1", "peak2", "peak_ml"):
        metrics[f"{key}_n"] = metrics[f"{key}_bw"] * body_weight_n
    metrics["loading_rate_n_s"] = loading_rate * body_weight_n
    grid = np.linspace(stance.ic_s, stance.tc_s, WAVEFORM_POINTS)
    metrics["waveform_bw"] = {a: np.round(np.interp(grid, t, f[:, k]), 4).tolist() for k, a in enumerate(AXES)}
    for key, value in list(metrics.items()):
        if isinstance(value, float):
            metrics[key] = round(value, 5) if np.isfinite(value) else None  # JSON has no NaN
    return metrics


def _loading_rate(t: FloatArray, v: FloatArray, peak: float) -> float:
    """Slope (BW/s) between the 20 % and 80 % crossings of the first peak on the rising edge."""
    lo_i = np.flatnonzero(v >= 0.2 * peak)
    hi_i = np.flatnonzero(v >= 0.8 * peak)
    if lo_i.size == 0 or hi_i.size == 0:
        return float("nan")
    t_lo = _cross(t, v, int(lo_i[0]), 0.2 * peak)
    t_hi = _cross(t, v, int(hi_i[0]), 0.8 * peak)
    return float(0.6 * peak / (t_hi - t_lo)) if t_hi > t_lo else float("nan")


def _cross(t: FloatArray, v: FloatArray, i: int, level: float) -> float:
    if i == 0 or v[i] == v[i - 1]:
        return float(t[i])
    return float(t[i - 1] + (level - v[i - 1]) / (v[i] - v[i - 1]) * (t[i] - t[i - 1]))
