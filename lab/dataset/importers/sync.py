"""IMU ↔ force clock lag: estimate it from heel strikes, and correct it.

At initial contact the vertical force rises from zero and the foot (and shank) accelerometer feels
the heel-strike shock at the same instant. For every foot contact whose force onset is seen (a
threshold crossing from a known low value), that leg's impact envelope (high-passed acceleration
RMS) is read over candidate lags; the trial's lag is where the summed envelopes peak. It measures
force onset to the centre of the shock, so it includes a few ms of the shock's own duration.
A positive lag means the IMU clock runs late: IMU time minus the lag is force time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from forcecast.lab.dataset.trial import Stream, Trial

FloatArray = NDArray[np.float64]
ONSET_THRESHOLD_N = 20.0
SEARCH_S = (-0.05, 0.25)
"""Window after a force onset in which the IMU impact is looked for (lags of −50..250 ms)."""
IMPACT_HIGHPASS_HZ = 15.0
IMPACT_WINDOW_S = 0.05
"""The shock's energy is averaged over this window: its centre is steadier than any single ringing peak."""
LAG_GRID_S = np.arange(SEARCH_S[0], SEARCH_S[1] + 1e-9, 0.001)
PER_CONTACT_S = 0.025
"""Each contact's own peak is looked for this close to the trial's lag (for the spread)."""
MIN_QUIET_S = 0.02
"""An onset counts only after this long below threshold (so a bouncing contact is not a new onset)."""


@dataclass(frozen=True)
class LagEstimate:
    """An IMU lag estimate.

    Attributes
    ----------
    lag_s
        Median lag (IMU late positive), NaN when not estimable.
    spread_s
        Median absolute deviation of the per-contact lags (NaN with fewer than 2 contacts).
    contacts
        Number of contacts used.
    """

    lag_s: float
    spread_s: float
    contacts: int

    @property
    def ok(self) -> bool:
        """Whether a lag could be estimated."""
        return self.contacts > 0 and bool(np.isfinite(self.lag_s))

    def as_dict(self) -> dict[str, float | int | None]:
        """Milliseconds, for reports (``None`` for unknown)."""

        def ms(value: float) -> float | None:
            return round(1000.0 * value, 1) if np.isfinite(value) else None

        return {"lag_ms": ms(self.lag_s), "spread_ms": ms(self.spread_s), "contacts": self.contacts}


def force_onsets(time_s: FloatArray, vertical_n: FloatArray, threshold_n: float = ONSET_THRESHOLD_N) -> FloatArray:
    """Times at which vertical force rises through ``threshold_n`` from a known low value (interpolated)."""
    v = np.asarray(vertical_n, dtype=np.float64)
    if v.size < 3:
        return np.zeros(0)
    below = np.isfinite(v) & (v < threshold_n)
    rate = 1.0 / float(np.median(np.diff(time_s)))
    quiet = max(1, round(MIN_QUIET_S * rate))
    crossings = np.flatnonzero(below[:-1] & (v[1:] >= threshold_n)) + 1
    out = []
    for i in crossings:
        if i < quiet or not np.all(below[i - quiet : i]):
            continue
        f0, f1 = v[i - 1], v[i]
        out.append(time_s[i - 1] + (threshold_n - f0) / (f1 - f0) * (time_s[i] - time_s[i - 1]))
    return np.asarray(out, dtype=np.float64)


def impact_signal(imu: Stream, side: str) -> tuple[FloatArray, FloatArray] | None:
    """Times and impact envelope of one leg: RMS of the high-passed foot (else shank) acceleration.

    The high-pass (zero-phase, :data:`IMPACT_HIGHPASS_HZ`) removes the limb's own motion, whose
    deceleration before contact is as strong as the shock but slower; the norm makes it blind to how
    the sensor is mounted; the moving RMS over :data:`IMPACT_WINDOW_S` finds the centre of the
    ringing shock. Missing samples are filled by interpolation first.
    """
    for segment in ("foot", "shank"):
        names = [f"{side}_{segment}_acc_{a}" for a in "xyz"]
        if not all(n in imu.columns for n in names) or imu.time_s.size < 30:
            continue
        acc = np.column_stack([imu.column(n) for n in names])
        finite = np.all(np.isfinite(acc), axis=1)
        if finite.sum() < 30:
            return None
        acc = np.column_stack([np.interp(imu.time_s, imu.time_s[finite], a[finite]) for a in acc.T])
        rate = 1.0 / float(np.median(np.diff(imu.time_s)))
        cutoff = min(IMPACT_HIGHPASS_HZ, 0.3 * rate)
        sos = signal.butter(4, cutoff, "highpass", fs=rate, output="sos")
        energy = np.sum(signal.sosfiltfilt(sos, acc, axis=0) ** 2, axis=1)
        width = max(1, round(IMPACT_WINDOW_S * rate))
        return imu.time_s, np.sqrt(np.convolve(energy, np.ones(width) / width, mode="same"))
    return None


def lag_scores(imu: Stream, onsets: dict[str, FloatArray]) -> list[FloatArray]:
    """Each contact's impact envelope over the candidate lags :data:`LAG_GRID_S` (one row per contact)."""
    rows = []
    for side, times in onsets.items():
        found = impact_signal(imu, side)
        if found is None:
            continue
        t, envelope = found
        for onset in times:
            if onset + SEARCH_S[0] < t[0] or onset + SEARCH_S[1] > t[-1]:
                continue
            rows.append(np.interp(onset + LAG_GRID_S, t, envelope))
    return rows


def combine_scores(rows: list[FloatArray]) -> LagEstimate:
    """The lag at which the contacts' summed envelopes peak, with the spread of each contact's own peak near it."""
    if not rows:
        return LagEstimate(float("nan"), float("nan"), 0)
    best = int(np.argmax(np.sum(rows, axis=0)))
    near = np.abs(LAG_GRID_S - LAG_GRID_S[best]) <= PER_CONTACT_S
    own = np.asarray([LAG_GRID_S[near][int(np.argmax(row[near]))] for row in rows])
    spread = float(np.median(np.abs(own - np.median(own)))) if own.size > 1 else float("nan")
    return LagEstimate(float(LAG_GRID_S[best]), spread, len(rows))


def estimate_lag(imu: Stream, onsets: dict[str, FloatArray]) -> LagEstimate:
    """Lag of the IMU clock behind the force clock from force onsets of each leg (``l``/``r`` -> times).

    The impact envelopes of all contacts are summed on a grid of candidate lags (1 ms steps over
    :data:`SEARCH_S`); the best lag is the one where the shocks line up. The spread is the median
    absolute deviation of each contact's own envelope peak near that lag.
    """
    return combine_scores(lag_scores(imu, onsets))


def trial_lag(trial: Trial, threshold_n: float = ONSET_THRESHOLD_N) -> LagEstimate:
    """The lag of a format-v1 trial, from each leg's force onsets and its foot/shank accelerometer."""
    if trial.force is None:
        return LagEstimate(float("nan"), float("nan"), 0)
    onsets = {}
    for side in ("l", "r"):
        name = f"{side}_grf_v"
        if name in trial.force.columns:
            onsets[side] = force_onsets(trial.force.time_s, trial.force.column(name), threshold_n)
    return estimate_lag(trial.imu, onsets)


def shift_imu(imu: Stream, lag_s: float) -> Stream:
    """The IMU stream with its clock moved onto the force clock (``time - lag``)."""
    return Stream(imu.time_s - lag_s, imu.columns, imu.values, imu.source)


def _refine_peak(t: FloatArray, y: FloatArray, k: int) -> float:
    """Parabolic interpolation of a sampled peak's time."""
    if k <= 0 or k >= y.size - 1:
        return float(t[k])
    a, b, c = y[k - 1], y[k], y[k + 1]
    denominator = a - 2.0 * b + c
    if denominator >= 0:
        return float(t[k])
    offset = 0.5 * (a - c) / denominator
    return float(t[k] + offset * 0.5 * (t[k + 1] - t[k - 1]))
