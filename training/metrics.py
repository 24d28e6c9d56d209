"""Accuracy metrics in the form the IMU→GRF literature reports them.

Per axis: Pearson r, RMSE in body weights and in newtons, and nRMSE as a percentage of the measured
range of that axis. For the vertical axis also the error of the first (weight-acceptance) and second
(push-off) peak of every step. Pooled over all samples and per subject.

Only *known* samples count: a measured sample that is NaN (overground stance off the force plates) is
left out, and so is a predicted NaN (no window covered the sample). Two figures are reported:

- whole-cycle (``axes``): every known sample, swing (0 N) included;
- stance-only (``stance_axes``): known samples whose measured vertical force exceeds
  :data:`STANCE_THRESHOLD_BW` (0.05 body weights), on every axis. Swing is easy to predict (zero)
  and inflates r; stance-only r is the harder, more honest number for overground data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.features import OUTPUT_AXES

STANCE_THRESHOLD_BW = 0.05
MIN_STANCE_S = 0.25

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class AxisMetrics:
    """Agreement of predicted and measured force on one axis."""

    r: float
    rmse_bw: float
    rmse_n: float
    nrmse_pct: float
    n_samples: int

    def to_dict(self) -> dict[str, float]:
        """JSON-ready, rounded to meaningful digits."""
        return _rounded(self)


@dataclass(frozen=True)
class PeakMetrics:
    """Per-step vertical peak errors (predicted minus measured, in body weights)."""

    first_peak_mae_bw: float
    second_peak_mae_bw: float
    first_peak_bias_bw: float
    second_peak_bias_bw: float
    n_steps: int

    def to_dict(self) -> dict[str, float]:
        """JSON-ready, rounded to meaningful digits."""
        return _rounded(self)


def _rounded(metrics: AxisMetrics | PeakMetrics) -> dict[str, float]:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(metrics).items()}


def axis_metrics(predicted: FloatArray, measured: FloatArray, body_weight_n: FloatArray) -> AxisMetrics:
    """Metrics over the samples where both are finite.

    Parameters
    ----------
    predicted, measured
        Force in body weights, shape ``(n,)``.
    body_weight_n
        Body weight of the person each sample belongs to, shape ``(n,)``, to express errors in N.
    """
    ok = np.isfinite(predicted) & np.isfinite(measured)
    p, m, w = predicted[ok], measured[ok], body_weight_n[ok]
    if p.size < 2:
        return AxisMetrics(float("nan"), float("nan"), float("nan"), float("nan"), int(p.size))
    error = p - m
    rmse = float(np.sqrt(np.mean(error**2)))
    span = float(m.max() - m.min())
    r = float(np.corrcoef(p, m)[0, 1]) if np.std(p) > 0 and np.std(m) > 0 else float("nan")
    return AxisMetrics(
        r=r,
        rmse_bw=rmse,
        rmse_n=float(np.sqrt(np.mean((error * w) ** 2))),
        nrmse_pct=100.0 * rmse / span if span > 0 else float("nan"),
        n_samples=int(p.size),
    )


def stances(vertical_bw: FloatArray, rate_hz: float) -> list[tuple[int, int]]:
    """``[start, stop)`` of each complete stance in a measured vertical force series."""
    loaded = np.nan_to_num(vertical_bw, nan=0.0) > STANCE_THRESHOLD_BW
    edges = np.diff(np.concatenate([[0], loaded.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for a, b in zip(starts, stops, strict=True):
        whole = a > 0 and b < vertical_bw.size and np.isfinite(vertical_bw[a - 1]) and np.isfinite(vertical_bw[b])
        if whole and (b - a) / rate_hz >= MIN_STANCE_S:
            out.append((int(a), int(b)))
    return out


def peak_errors(predicted_v: FloatArray, measured_v: FloatArray, rate_hz: float) -> tuple[FloatArray, FloatArray]:
    """Per-step errors of the first and second vertical peak (each shape ``(steps,)``)."""
    first, second = [], []
    for a, b in stances(measured_v, rate_hz):
        p, m = predicted_v[a:b], measured_v[a:b]
        if not np.all(np.isfinite(p)):
            continue
        mid = (b - a) // 2
        first.append(p[:mid].max() - m[:mid].max())
        second.append(p[mid:].max() - m[mid:].max())
    return np.array(first), np.array(second)


def peak_metrics(first: FloatArray, second: FloatArray) -> PeakMetrics:
    """Summarise per-step peak errors."""
    if first.size == 0:
        nan = float("nan")
        return PeakMetrics(nan, nan, nan, nan, 0)
    return PeakMetrics(
        float(np.mean(np.abs(first))),
        float(np.mean(np.abs(second))),
        float(np.mean(first)),
        float(np.mean(second)),
        int(first.size),
    )


def stance_mask(measured: FloatArray) -> NDArray[np.bool_]:
    """Samples in stance: measured vertical force (column 0, BW) known and above :data:`STANCE_THRESHOLD_BW`."""
    vertical = measured[:, 0]
    return np.isfinite(vertical) & (np.nan_to_num(vertical, nan=0.0) > STANCE_THRESHOLD_BW)


def summarise(
    predicted: list[FloatArray], measured: list[FloatArray], body_weight_n: list[float], rate_hz: float
) -> dict[str, object]:
    """Pooled metrics of several sequences (each ``(n, 3)`` in BW).

    Returns
    -------
    dict
        ``axes`` (whole-cycle, per axis :class:`AxisMetrics`), ``stance_axes`` (the same over stance
        samples only, see :func:`stance_mask`) and ``peaks`` (:class:`PeakMetrics`).
    """
    p = np.concatenate(predicted) if predicted else np.empty((0, 3))
    m = np.concatenate(measured) if measured else np.empty((0, 3))
    w = (
        np.concatenate([np.full(len(x), bw) for x, bw in zip(predicted, body_weight_n, strict=True)])
        if predicted
        else np.empty(0)
    )
    axes = {axis: axis_metrics(p[:, j], m[:, j], w).to_dict() for j, axis in enumerate(OUTPUT_AXES)}
    stance = stance_mask(m)
    stance_axes = {
        axis: axis_metrics(p[stance, j], m[stance, j], w[stance]).to_dict() for j, axis in enumerate(OUTPUT_AXES)
    }
    firsts, seconds = [], []
    for pi, mi in zip(predicted, measured, strict=True):
        f, s = peak_errors(pi[:, 0], mi[:, 0], rate_hz)
        firsts.append(f)
        seconds.append(s)
    peaks = peak_metrics(
        np.concatenate(firsts) if firsts else np.empty(0), np.concatenate(seconds) if seconds else np.empty(0)
    )
    return {"axes": axes, "stance_axes": stance_axes, "peaks": peaks.to_dict()}
