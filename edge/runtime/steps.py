"""Streaming step detection on a leg's vertical GRF: initial contact (IC) and terminal contact (TC).

A stance starts when the vertical force rises above ``confirm_bw`` and is dated back to where it
last crossed ``contact_bw`` (linear interpolation between samples), the usual force-plate
threshold definition of initial contact; it ends when the force falls below ``contact_bw`` again.
The two thresholds give hysteresis against noise in the predicted swing-phase force. Stances
shorter than ``min_stance_s`` or longer than ``max_stance_s`` (standing, shuffling) are not steps,
and a stance interrupted by missing data (NaN) is dropped rather than cut short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class StepDetectorConfig:
    """Thresholds of the step detector (body weights and seconds)."""

    contact_bw: float = 0.05
    confirm_bw: float = 0.2
    min_stance_s: float = 0.25
    max_stance_s: float = 2.0


@dataclass(frozen=True)
class Stance:
    """One detected stance: contact times and the force samples between them (inclusive bounds)."""

    ic_s: float
    tc_s: float
    time_s: FloatArray
    grf_bw: FloatArray


class StepDetector:
    """Feed GRF samples of one leg in time order; collect finished stances.

    Parameters
    ----------
    config
        Thresholds.
    """

    def __init__(self, config: StepDetectorConfig | None = None) -> None:
        self.config = config or StepDetectorConfig()
        self._in_stance = False
        self._ic: float | None = None
        self._rows_t: list[float] = []
        self._rows: list[FloatArray] = []
        self._prev_t: float | None = None
        self._prev: FloatArray | None = None
        self._rise_t: float | None = None
        self.rejected = 0
        self.interrupted = 0

    def push(self, time_s: FloatArray, grf_bw: FloatArray) -> list[Stance]:
        """Add samples (``(n,)`` times, ``(n, 3)`` force in BW); return stances that ended in them."""
        done: list[Stance] = []
        c = self.config
        for t, row in zip(time_s, grf_bw, strict=True):
            v = row[0]
            if not np.isfinite(v):
                if self._in_stance:
                    self.interrupted += 1
                self._restart()
                continue
            prev = None if self._prev_t is None or self._prev is None else (self._prev_t, float(self._prev[0]))
            if not self._in_stance:
                if prev is not None and prev[1] <= c.contact_bw < v:
                    self._rise_t = _crossing(*prev, t, v, c.contact_bw)
                    self._rows_t, self._rows = [float(t)], [row]
                elif v <= c.contact_bw:
                    self._rise_t = None
                elif self._rise_t is not None:
                    self._rows_t.append(float(t))
                    self._rows.append(row)
                if self._rise_t is not None and v > c.confirm_bw:
                    self._in_stance, self._ic = True, self._rise_t
            else:
                if v < c.contact_bw:
                    assert prev is not None  # a stance is confirmed on a sample after its rise: one is always kept
                    tc = _crossing(*prev, t, v, c.contact_bw)
                    stance = self._finish(tc)
                    if stance is not None:
                        done.append(stance)
                    self._in_stance, self._rise_t = False, None
                else:
                    self._rows_t.append(float(t))
                    self._rows.append(row)
                    if self._ic is not None and t - self._ic > c.max_stance_s:
                        self.rejected += 1
                        self._restart()
                        continue
            self._prev_t, self._prev = float(t), row
        return done

    def _finish(self, tc: float) -> Stance | None:
        assert self._ic is not None
        duration = tc - self._ic
        if not self.config.min_stance_s <= duration <= self.config.max_stance_s:
            self.rejected += 1
            return None
        times = np.array([self._ic, *self._rows_t, tc])
        rows = np.vstack([np.zeros(3), *self._rows, np.zeros(3)])
        rows[0, 0] = rows[-1, 0] = self.config.contact_bw
        rows[0, 1:] = self._rows[0][1:]
        rows[-1, 1:] = self._rows[-1][1:]
        return Stance(self._ic, tc, times, rows)

    def _restart(self) -> None:
        self._in_stance = False
        self._ic = None
        self._rise_t = None
        self._rows_t, self._rows = [], []
        self._prev_t, self._prev = None, None


def _crossing(t0: float, v0: float, t1: float, v1: float, level: float) -> float:
    """Time at which the line from (t0, v0) to (t1, v1) crosses ``level``."""
    if v1 == v0:
        return float(t1)
    return float(t0 + (level - v0) / (v1 - v0) * (t1 - t0))
