"""Resampling to a model rate with an anti-alias filter, offline and streaming.

Aliasing cannot be undone downstream, so every rate reduction low-passes first: an 8th-order
Butterworth at ``ANTIALIAS_FRACTION`` of the *target* Nyquist frequency, then linear interpolation
onto a grid of multiples of ``1 / rate_hz`` (so streams resampled separately share one time base).

Two flavours exist on purpose:

- **causal** (``CausalResampler``, ``resample(..., causal=True)``): what the device can run on
  a live stream. Training feeds model *inputs* through exactly this code, so the network learns
  with the same filter delay it will see on the device. The offline function is the streaming class
  fed the whole signal, so the two give identical samples.
- **zero-phase** (``resample(..., causal=False)``): forward-backward filtering for *targets*
  (force-plate data), where no delay may be introduced.

Gaps (a step in time longer than ``max_gap_s``) and NaN runs split the signal into segments that
are filtered independently; target times inside a gap come out as NaN, never invented.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal

ANTIALIAS_FRACTION = 0.8
"""Cut-off of the anti-alias low-pass as a fraction of the target Nyquist frequency."""
FILTER_ORDER = 8
DEFAULT_MAX_GAP_SAMPLES = 3.0
"""A time step longer than this many nominal sample periods is treated as a gap."""

FloatArray = NDArray[np.float64]


def antialias_sos(source_hz: float, target_hz: float) -> FloatArray | None:
    """Second-order sections of the anti-alias low-pass, or ``None`` if no rate reduction.

    Parameters
    ----------
    source_hz
        Sampling rate of the input.
    target_hz
        Sampling rate wanted.
    """
    if source_hz <= 0 or target_hz <= 0:
        raise ValueError(f"sampling rates must be positive, got {source_hz} -> {target_hz}")
    cutoff_hz = ANTIALIAS_FRACTION * target_hz / 2.0
    if cutoff_hz >= 0.45 * source_hz:
        return None
    return np.asarray(signal.butter(FILTER_ORDER, cutoff_hz, fs=source_hz, output="sos"), dtype=np.float64)


def grid_times(start_s: float, stop_s: float, rate_hz: float) -> FloatArray:
    """Multiples of ``1 / rate_hz`` that lie in ``[start_s, stop_s]``."""
    first = math.ceil(start_s * rate_hz - 1e-9)
    last = math.floor(stop_s * rate_hz + 1e-9)
    return np.arange(first, last + 1, dtype=np.float64) / rate_hz


def nominal_rate_hz(time_s: FloatArray) -> float:
    """Sampling rate of a recording, robust to dropouts, jitter and rounded timestamps.

    Without dropouts it is samples per second over the whole recording (exact even when each
    timestamp was rounded); with dropouts it falls back to the median time step.
    """
    if time_s.size < 2:
        raise ValueError("need at least two samples to estimate a sampling rate")
    steps = np.diff(time_s)
    median = float(np.median(steps))
    if not median > 0:
        raise ValueError("time must be strictly increasing")
    if float(steps.max()) < 1.5 * median:
        return (time_s.size - 1) / float(time_s[-1] - time_s[0])
    return 1.0 / median


class CausalResampler:
    """Streaming anti-alias resampler: feed chunks of samples, get target-rate samples out.

    Parameters
    ----------
    source_hz
        Nominal rate of the incoming samples.
    target_hz
        Rate of the output grid.
    n_channels
        Number of channels per sample.
    max_gap_s
        A time step longer than this restarts the filter (a dropout or a clock jump); output grid
        points that fall inside the gap are skipped. Default: 3 nominal sample periods.

    Notes
    -----
    The filter starts in steady state at the first sample of each segment, so a segment does not
    begin with a ring-up transient. Output for a grid time ``τ`` is emitted once a sample at or
    after ``τ`` has arrived (at most one source period of added latency).
    """

    def __init__(self, source_hz: float, target_hz: float, n_channels: int, max_gap_s: float | None = None) -> None:
        self.source_hz = float(source_hz)
        self.target_hz = float(target_hz)
        self.n_channels = int(n_channels)
        self.max_gap_s = DEFAULT_MAX_GAP_SAMPLES / self.source_hz if max_gap_s is None else float(max_gap_s)
        self._sos = antialias_sos(self.source_hz, self.target_hz)
        self._zi_unit = None if self._sos is None else signal.sosfilt_zi(self._sos)
        self._state: FloatArray | None = None
        self._last_t: float | None = None
        self._last_y: FloatArray | None = None
        self._next_k: int | None = None
        self.segments_started = 0

    @property
    def delay_s(self) -> float:
        """Group delay of the filter at 0 Hz (the lag the causal filter adds to slow motion)."""
        if self._sos is None:
            return 0.0
        b, a = signal.sos2tf(self._sos)
        _, gd = signal.group_delay((b, a), w=[1e-6], fs=self.source_hz)
        return float(gd[0]) / self.source_hz

    def reset(self) -> None:
        """Forget all history; the next sample starts a new segment."""
        self._state = None
        self._last_t = None
        self._last_y = None
        self._next_k = None

    def push(self, time_s: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Feed samples (time-ordered) and return the grid samples they complete.

        Parameters
        ----------
        time_s
            Shape ``(n,)``, strictly increasing and later than anything pushed before.
        values
            Shape ``(n, n_channels)``, finite.

        Returns
        -------
        time_out, values_out
            Grid times and filtered values, shapes ``(m,)`` and ``(m, n_channels)``.
        """
        t = np.asarray(time_s, dtype=np.float64)
        x = np.asarray(values, dtype=np.float64).reshape(t.size, self.n_channels)
        if t.size == 0:
            return np.empty(0), np.empty((0, self.n_channels))
        if not np.all(np.isfinite(x)):
            raise ValueError("CausalResampler.push: values contain NaN or infinity; split the stream at them")
        steps = np.diff(t)
        if np.any(steps <= 0) or (self._last_t is not None and t[0] <= self._last_t):
            raise ValueError("CausalResampler.push: time must be strictly increasing across pushes")
        breaks = np.flatnonzero(steps > self.max_gap_s) + 1
        if self._last_t is not None and t[0] - self._last_t > self.max_gap_s:
            self.reset()
        outs_t: list[FloatArray] = []
        outs_y: list[FloatArray] = []
        for part_t, part_x in zip(np.split(t, breaks), np.split(x, breaks), strict=True):
            if outs_t or outs_y:  # every split after the first is a new segment
                self.reset()
            ot, oy = self._push_segment(part_t, part_x)
            outs_t.append(ot)
            outs_y.append(oy)
        return np.concatenate(outs_t), np.concatenate(outs_y)

    def _push_segment(self, t: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        if self._sos is not None and self._zi_unit is not None:  # both set, or neither (no anti-aliasing needed)
            if self._state is None:
                self._state = self._zi_unit[:, :, None] * x[0][None, None, :]
            y, self._state = signal.sosfilt(self._sos, x, axis=0, zi=self._state)
        else:
            y = x
        if self._last_t is None or self._last_y is None:  # both None until a segment has output
            self.segments_started += 1
            self._next_k = math.ceil(t[0] * self.target_hz - 1e-9)
            prev_t, prev_y = t[:1], y[:1]
        else:
            prev_t, prev_y = np.array([self._last_t]), self._last_y[None, :]
        all_t = np.concatenate([prev_t, t])
        all_y = np.concatenate([prev_y, y])
        last_k = math.floor(t[-1] * self.target_hz + 1e-9)
        assert self._next_k is not None
        ks = np.arange(self._next_k, last_k + 1)
        grid = ks / self.target_hz
        grid = grid[grid >= all_t[0] - 1e-12]
        # linear interpolation of all channels at once (np.interp works one channel at a time)
        right = np.clip(np.searchsorted(all_t, grid, side="left"), 1, max(all_t.size - 1, 1))
        if all_t.size == 1:
            out = np.repeat(all_y[:1], grid.size, axis=0)
        else:
            left_t, right_t = all_t[right - 1], all_t[right]
            span = right_t - left_t
            safe = np.where(span > 0, span, 1.0)
            weight = np.where(span > 0, np.clip((grid - left_t) / safe, 0.0, 1.0), 1.0)[:, None]
            out = all_y[right - 1] * (1.0 - weight) + all_y[right] * weight
        self._next_k = last_k + 1
        self._last_t = float(t[-1])
        self._last_y = y[-1].copy()
        return grid, out


def resample(
    time_s: FloatArray,
    values: FloatArray,
    rate_hz: float,
    *,
    causal: bool,
    max_gap_s: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Resample a whole recording onto the ``rate_hz`` grid with anti-aliasing.

    Parameters
    ----------
    time_s
        Sample times, shape ``(n,)``, strictly increasing.
    values
        Samples, shape ``(n,)`` or ``(n, c)``. NaN marks missing samples.
    rate_hz
        Target rate.
    causal
        ``True`` for model inputs (identical to :class:`CausalResampler`), ``False`` for
        zero-phase filtering of targets.
    max_gap_s
        Time steps longer than this split the signal (default: 3 nominal sample periods).

    Returns
    -------
    time_out, values_out
        The grid from the first to the last sample time, and the resampled values with NaN
        wherever the input had a gap or NaN.
    """
    t = np.asarray(time_s, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    squeeze = x.ndim == 1
    x = x.reshape(t.size, -1)
    if t.size < 2:
        raise ValueError("resample: need at least two samples")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("resample: time must be finite and strictly increasing")
    source_hz = nominal_rate_hz(t)
    gap = DEFAULT_MAX_GAP_SAMPLES / source_hz if max_gap_s is None else max_gap_s
    grid = grid_times(t[0], t[-1], rate_hz)
    out = np.full((grid.size, x.shape[1]), np.nan)
    finite = np.isfinite(x)
    if finite.all():
        _resample_columns(t, x, grid, out, np.arange(x.shape[1]), source_hz, rate_hz, causal, gap)
    else:
        for c in range(x.shape[1]):
            _resample_columns(
                t[finite[:, c]],
                x[finite[:, c], c : c + 1],
                grid,
                out,
                np.array([c]),
                source_hz,
                rate_hz,
                causal,
                gap,
                nan_aware=True,
                full_t=t,
            )
    return grid, (out[:, 0] if squeeze else out)


def _resample_columns(
    t: FloatArray,
    x: FloatArray,
    grid: FloatArray,
    out: FloatArray,
    columns: NDArray[np.intp],
    source_hz: float,
    target_hz: float,
    causal: bool,
    max_gap_s: float,
    *,
    nan_aware: bool = False,
    full_t: FloatArray | None = None,
) -> None:
    """Fill ``out[:, columns]`` from finite samples ``(t, x)``, one segment at a time."""
    if t.size == 0:
        return
    breaks = np.flatnonzero(np.diff(t) > max_gap_s) + 1
    if nan_aware and full_t is not None:
        # Samples dropped as NaN also break the signal even when the time step stays small.
        positions = np.searchsorted(full_t, t)
        breaks = np.union1d(breaks, np.flatnonzero(np.diff(positions) > 1) + 1)
    for seg_t, seg_x in zip(np.split(t, breaks), np.split(x, breaks), strict=True):
        if seg_t.size < 2:
            continue
        inside = (grid >= seg_t[0] - 1e-12) & (grid <= seg_t[-1] + 1e-12)
        if not inside.any():
            continue
        if causal:
            resampler = CausalResampler(source_hz, target_hz, seg_x.shape[1], max_gap_s=np.inf)
            got_t, got_y = resampler.push(seg_t, seg_x)
            index = np.searchsorted(grid, got_t - 1e-12)
            out[np.ix_(index, columns)] = got_y
        else:
            filtered = _zero_phase(seg_t, seg_x, source_hz, target_hz)
            for j, c in enumerate(columns):
                out[inside, c] = np.interp(grid[inside], seg_t, filtered[:, j])


def _zero_phase(t: FloatArray, x: FloatArray, source_hz: float, target_hz: float) -> FloatArray:
    sos = antialias_sos(source_hz, target_hz)
    if sos is None:
        return x
    steps = np.diff(t)
    jitter = float(np.std(steps) / np.mean(steps)) if steps.size > 1 else 0.0
    if jitter > 0.05:
        # Irregular timing: filter on a uniform grid at the nominal rate, then map back.
        uniform = np.linspace(t[0], t[-1], max(2, round((t[-1] - t[0]) * source_hz) + 1))
        xu = np.column_stack([np.interp(uniform, t, x[:, j]) for j in range(x.shape[1])])
        fu = _filtfilt(sos, xu)
        return np.column_stack([np.interp(t, uniform, fu[:, j]) for j in range(x.shape[1])])
    return _filtfilt(sos, x)


def _filtfilt(sos: FloatArray, x: FloatArray) -> FloatArray:
    padlen = min(3 * (2 * sos.shape[0] + 1), x.shape[0] - 1)
    return signal.sosfiltfilt(sos, x, axis=0, padlen=padlen)
