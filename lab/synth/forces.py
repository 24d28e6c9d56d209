"""Ground reaction force of one foot on an instrumented treadmill, in body weights.

Shapes follow the textbook walking GRF (Winter 2009; Nilsson & Thorstensson 1989; Keller et al. 1996):
a double-hump vertical force whose first peak grows with speed (≈1.0 BW slow to ≈1.3 BW fast) and
whose valley is *not* drawn but solved so the two feet together carry exactly one body weight on
average (Newton: the body neither sinks nor rises over a stride); a braking-then-propulsive AP force
whose propulsion balances braking at steady speed; a small medio-lateral force, directed laterally
for an instant after heel strike and medially for the rest of stance. Varus alignment raises the
medial force (≈ +0.0035 BW per degree), in line with the higher medial load of varus knees
(Hurwitz et al. 2002; Sharma et al. 2001).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator

from forcecast.lab.synth.curves import lobe
from forcecast.lab.synth.gait import LegGait

FloatArray = NDArray[np.float64]

TEMPLATE_POINTS = 2001
_S = np.linspace(0.0, 1.0, TEMPLATE_POINTS)


def vertical_template(gait: LegGait) -> FloatArray:
    """Vertical force over stance (``s`` = 0..1 on ``TEMPLATE_POINTS``) in BW.

    The valley between the peaks is solved so that mean stance force times duty equals this leg's
    share of body weight (impulse balance over a stride).
    """
    target_mean = gait.impulse_share / gait.duty
    p1, p2 = gait.first_peak_bw, gait.second_peak_bw

    def curve(valley: float) -> FloatArray:
        points = [
            (0.0, 0.0),
            (0.04, 0.35 * p1),
            (0.09, 0.65 * p1),
            (0.15, 0.92 * p1),
            (0.25, p1),
            (0.50, valley),
            (0.76, p2),
            (0.84, 0.80 * p2),
            (0.90, 0.55 * p2),
            (0.95, 0.25 * p2),
            (0.985, 0.06 * p2),
            (1.0, 0.0),
        ]
        return PchipInterpolator([p for p, _ in points], [v for _, v in points])(_S)

    lo, hi = 0.45, min(p1, p2) - 0.02
    mean_lo, mean_hi = float(np.mean(curve(lo))), float(np.mean(curve(hi)))
    if target_mean <= mean_lo or target_mean >= mean_hi:
        # The peaks cannot carry this impulse with a valley in range: scale the whole curve.
        valley = lo if target_mean <= mean_lo else hi
        shape = curve(valley)
        return shape * (target_mean / float(np.mean(shape)))
    for _ in range(30):  # bisection: mean force is monotone in the valley height
        mid = 0.5 * (lo + hi)
        if float(np.mean(curve(mid))) < target_mean:
            lo = mid
        else:
            hi = mid
    return curve(0.5 * (lo + hi))


def anterior_posterior_template(gait: LegGait) -> FloatArray:
    """AP force over stance in BW: braking (negative) then propulsion (positive), balanced."""
    crossover = 0.50 + 0.04 * (gait.duty - 0.615) / 0.05
    braking = -gait.braking_bw * lobe(_S / crossover, 0.36)
    push = lobe((_S - crossover) / (1.0 - crossover), 0.70)
    propulsion = -float(np.sum(braking)) / float(np.sum(push))
    return braking + propulsion * push


def medio_lateral_template(gait: LegGait) -> FloatArray:
    """ML force over stance in BW, medial positive."""
    lateral = -gait.lateral_bw * lobe(_S / 0.12, 0.35)
    medial = gait.medial_bw * (lobe((_S - 0.03) / 0.57, 0.40) + 0.8 * lobe((_S - 0.40) / 0.60, 0.55))
    return lateral + medial


def stance_force(
    gait: LegGait,
    phase: FloatArray,
    stride: NDArray[np.int64],
    rng: np.random.Generator,
) -> FloatArray:
    """Force (v, ap, ml) in BW at each sample, zero in swing.

    Parameters
    ----------
    gait
        The leg's pattern.
    phase
        Phase in the stride (0 = heel strike) per sample.
    stride
        Stride index per sample (for stride-to-stride amplitude variation).
    rng
        Random generator.
    """
    n_strides = int(stride.max() - stride.min()) + 1
    amplitude = 1.0 + rng.normal(0.0, [[0.025], [0.06], [0.10]], (3, n_strides))
    k = stride - stride.min()
    s = phase / gait.duty
    stance = s < 1.0
    out = np.zeros((phase.size, 3))
    for axis, template in enumerate(
        (vertical_template(gait), anterior_posterior_template(gait), medio_lateral_template(gait))
    ):
        out[stance, axis] = np.interp(s[stance], _S, template) * amplitude[axis, k[stance]]
    return out


def impact_kernel(rate_hz: float, delay_s: float = 0.016, width_s: float = 0.006) -> FloatArray:
    """Shape of the heel-strike impact transient on vertical force (unit peak)."""
    t = np.arange(0.0, delay_s + 4 * width_s, 1.0 / rate_hz)
    return np.exp(-0.5 * ((t - delay_s) / width_s) ** 2)


def impulse_train(time_s: FloatArray, events_s: FloatArray, amplitudes: FloatArray) -> FloatArray:
    """Put each event's amplitude on the sample at or just after it (for convolving with a kernel)."""
    out = np.zeros_like(time_s)
    index = np.searchsorted(time_s, events_s)
    keep = (index >= 0) & (index < time_s.size)
    np.add.at(out, index[keep], amplitudes[keep])
    return out
