"""Smooth shape functions: periodic monotone splines and single-peaked lobes."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator

FloatArray = NDArray[np.float64]


def periodic_pchip(points: list[tuple[float, float]]) -> PchipInterpolator:
    """Shape-preserving interpolant through ``(phase, value)`` points on one period ``[0, 1)``.

    Points are repeated one period either side so the curve joins smoothly at 0/1. PCHIP keeps
    flat parts flat and peaks where the points put them (no spline overshoot).
    """
    phase = np.array([p for p, _ in points], dtype=np.float64)
    value = np.array([v for _, v in points], dtype=np.float64)
    if np.any(np.diff(phase) <= 0) or phase[0] < 0 or phase[-1] >= 1:
        raise ValueError("phases must increase within [0, 1)")
    tiled_p = np.concatenate([phase - 1.0, phase, phase + 1.0])
    tiled_v = np.concatenate([value, value, value])
    return PchipInterpolator(tiled_p, tiled_v)


def lobe(u: FloatArray, peak_at: float, sharpness: float = 4.0) -> FloatArray:
    """A smooth bump on ``0 <= u <= 1`` (zero outside), peaking at ``peak_at`` with height 1.

    It is ``u^a (1-u)^c`` scaled to a unit peak, with ``a = sharpness * peak_at`` and
    ``c = sharpness * (1 - peak_at)``.
    """
    a = sharpness * peak_at
    c = sharpness * (1.0 - peak_at)
    inside = (u > 0.0) & (u < 1.0)
    out = np.zeros_like(u, dtype=np.float64)
    ui = u[inside]
    out[inside] = ui**a * (1.0 - ui) ** c / (peak_at**a * (1.0 - peak_at) ** c)
    return out


def smooth_warp(phase: FloatArray, duty: float, normative_toe_off: float = 0.62) -> FloatArray:
    """Map gait phase so that this leg's toe-off (at ``duty``) lands on the normative toe-off.

    ``w(p) = p + k sin(2πp) / 2π`` is monotone, periodic in slope, and exact at 0, ``duty`` and 1, so
    joint-angle curves stay smooth across heel strike while stance lengthens or shortens with speed.
    """
    k = (normative_toe_off - duty) * 2.0 * np.pi / np.sin(2.0 * np.pi * duty)
    if not 0.5 < duty < 1.0 or abs(k) >= 0.95:
        raise ValueError(f"duty factor {duty:.3f} cannot be warped smoothly (use 0.575..0.75)")
    return phase + k * np.sin(2.0 * np.pi * phase) / (2.0 * np.pi)
