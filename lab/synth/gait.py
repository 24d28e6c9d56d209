"""Spatio-temporal gait: stride timing, phase of each leg, and the per-leg gait pattern.

Speed sets cadence (step length grows with height and speed, after Grieve & Gear 1966), stance
fraction (about 62 % at 1.3 m/s, longer when slower; Perry & Burnfield 2010) and the force and
joint-angle amplitudes. Strides vary by about 2 % with a persistent (AR(1)) pattern, as real gait
does (Hausdorff et al. 1995).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator

from forcecast.lab.synth.population import VirtualSubject

FloatArray = NDArray[np.float64]

STRIDE_CV = 0.02
STRIDE_AR = 0.6
DUTY_RANGE = (0.575, 0.72)


@dataclass(frozen=True)
class LegGait:
    """Pattern parameters of one leg at one speed (all forces in body weights).

    Attributes
    ----------
    side
        ``l`` or ``r``.
    duty
        Stance time as a fraction of the stride.
    first_peak_bw, second_peak_bw
        Vertical force peaks (weight acceptance, push-off).
    impact_bw
        Heel-strike impact transient on the vertical force.
    impulse_share
        Share of the body-weight impulse of a stride this leg carries (0.5 when symmetric).
    braking_bw
        Peak braking (negative AP) force; propulsion is set so AP impulse balances.
    medial_bw
        Peak medially directed force.
    lateral_bw
        Brief laterally directed force just after heel strike.
    hka_deg
        Knee alignment of this leg (varus positive).
    severity
        OA severity of this knee (0..1).
    thrust_deg
        Amplitude of a varus thrust (frontal-plane shank rotation) in early stance.
    knee_stance_scale, knee_swing_scale, hip_scale
        Scaling of the normative joint-angle excursions.
    """

    side: str
    duty: float
    first_peak_bw: float
    second_peak_bw: float
    impact_bw: float
    impulse_share: float
    braking_bw: float
    medial_bw: float
    lateral_bw: float
    hka_deg: float
    severity: float
    thrust_deg: float
    knee_stance_scale: float
    knee_swing_scale: float
    hip_scale: float


@dataclass(frozen=True)
class StrideTiming:
    """Heel-strike times of both legs and smooth phase functions through them."""

    heel_strikes: dict[str, FloatArray]
    stride_time_s: float

    def phase(self, side: str, time_s: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
        """Phase within the stride (0 at heel strike) and the stride index, for each time."""
        strikes = self.heel_strikes[side]
        cycles = PchipInterpolator(strikes, np.arange(strikes.size, dtype=np.float64))(time_s)
        index = np.floor(cycles).astype(np.int64)
        return cycles - index, index


def stride_time_s(speed_mps: float, height_m: float) -> float:
    """Stride time from speed and height: step length ≈ 0.415 H (v / 1.3)^0.55."""
    step_length = 0.415 * height_m * (speed_mps / 1.3) ** 0.55
    return 2.0 * step_length / speed_mps


def leg_gait(subject: VirtualSubject, side: str, speed_mps: float, rng: np.random.Generator) -> LegGait:
    """Gait pattern of one leg of ``subject`` at ``speed_mps``."""
    severity = subject.leg_severity(side)
    other_severity = subject.leg_severity("l" if side == "r" else "r")
    hka = subject.leg_hka_deg(side)
    dv = speed_mps - 1.3
    duty = 0.615 - 0.07 * dv - 0.012 * severity + 0.008 * other_severity
    first_peak = 1.10 + 0.30 * dv + subject.peak_offset_bw
    first_peak = float(np.clip(first_peak, 0.98, 1.36)) * (1.0 - 0.08 * severity)
    medial = (0.050 + 0.0035 * hka) * subject.ml_gain
    return LegGait(
        side=side,
        duty=float(np.clip(duty, *DUTY_RANGE)),
        first_peak_bw=first_peak,
        second_peak_bw=float(np.clip(1.07 + 0.10 * dv, 1.0, 1.2)) * (1.0 - 0.03 * severity),
        impact_bw=float(np.clip(0.10 + 0.15 * dv + rng.normal(0.0, 0.03), 0.02, 0.3)) * (1.0 - 0.3 * severity),
        impulse_share=0.5 - 0.012 * severity + 0.012 * other_severity,
        braking_bw=float(np.clip(0.17 + 0.15 * dv, 0.08, 0.3)) * (1.0 - 0.15 * severity),
        medial_bw=float(max(medial, 0.008)),
        lateral_bw=0.02 * subject.ml_gain,
        hka_deg=hka,
        severity=severity,
        thrust_deg=0.35 * max(hka, 0.0) * (0.5 + severity) if subject.thrust and severity > 0 else 0.0,
        knee_stance_scale=float(np.clip(0.8 + 0.5 * dv, 0.55, 1.3)) * (1.0 - 0.45 * severity),
        knee_swing_scale=float(np.clip(1.0 + 0.15 * dv, 0.85, 1.1)) * (1.0 - 0.15 * severity),
        hip_scale=float(np.clip(1.0 + 0.35 * dv, 0.75, 1.25)),
    )


def stride_timing(
    subject: VirtualSubject,
    speed_mps: float,
    start_s: float,
    stop_s: float,
    rng: np.random.Generator,
) -> StrideTiming:
    """Heel strikes of both legs covering ``[start_s, stop_s]`` with natural variability."""
    mean_stride = stride_time_s(speed_mps, subject.height_m)
    n = int(np.ceil((stop_s - start_s) / mean_stride)) + 4
    ar = np.empty(n)
    ar[0] = rng.normal()
    innovations = rng.normal(size=n) * np.sqrt(1 - STRIDE_AR**2)
    for k in range(1, n):
        ar[k] = STRIDE_AR * ar[k - 1] + innovations[k]
    strides = mean_stride * (1.0 + STRIDE_CV * ar)
    right = start_s - mean_stride * (1.0 + rng.random()) + np.concatenate([[0.0], np.cumsum(strides[:-1])])
    # An antalgic gait shortens the time spent on the painful leg: the step onto the sound leg
    # comes early when the right knee hurts, late when the left one does.
    asymmetry = 0.012 * (subject.leg_severity("l") - subject.leg_severity("r"))
    left = right + strides * (0.5 + asymmetry) + rng.normal(0.0, 0.004, n)
    return StrideTiming({"r": right, "l": left}, mean_stride)
