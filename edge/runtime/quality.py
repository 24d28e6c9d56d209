"""Judge the incoming stream: NaN samples, dropouts, clock jumps and saturation.

Every source goes through the same :class:`StreamGuard`, which passes on only finite samples on a
strictly increasing clock and reports what it saw as :class:`QualityEvent` objects. The runtime
keeps going through all of them: a dropout or a NaN run restarts the filters (the resampler sees a
time gap), a clock that leaps forward is kept and one that steps back is re-based so that
downstream time stays monotonic (both restart the filters), and saturated samples
are kept (clipped data still carry the gait) but flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Kind = Literal["nan", "dropout", "clock_jump", "saturation"]
KINDS: tuple[Kind, ...] = ("nan", "dropout", "clock_jump", "saturation")
SATURATION_FRACTION = 0.99
MIN_SAMPLE_STEP_S = 1e-6
"""Seconds: a smaller step between two samples is a stalled clock (no IMU samples a megahertz)."""


@dataclass(frozen=True)
class QualityEvent:
    """Something wrong with the stream.

    Attributes
    ----------
    kind
        ``nan`` (samples missing values), ``dropout`` (a gap in time), ``clock_jump`` (time went
        backwards or leapt forward), ``saturation`` (a sample at full scale).
    start_s, end_s
        Stream time span affected (after re-basing).
    samples
        Samples affected (NaN or saturated samples; for gaps the samples missing at the nominal rate).
    detail
        Human-readable specifics.
    """

    kind: Kind
    start_s: float
    end_s: float
    samples: int
    detail: str


@dataclass
class QualityCounters:
    """Running totals, written into summaries."""

    samples: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    affected_samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


class StreamGuard:
    """Clean a stream chunk by chunk.

    Parameters
    ----------
    columns
        The stream's IMU columns (to tell accelerometer from gyro for saturation).
    rate_hz
        Nominal sample rate.
    acc_range_mps2, gyr_range_rads
        Sensor full scale.
    max_gap_s
        A time step longer than this is a dropout.
    clock_jump_s
        A forward step longer than this, or any step ≤ 0, is a clock jump.
    """

    def __init__(
        self,
        columns: tuple[str, ...],
        rate_hz: float,
        acc_range_mps2: float,
        gyr_range_rads: float,
        max_gap_s: float,
        clock_jump_s: float,
    ) -> None:
        self.rate_hz = rate_hz
        self.max_gap_s = max_gap_s
        self.clock_jump_s = clock_jump_s
        limits = [acc_range_mps2 if "_acc_" in c else gyr_range_rads for c in columns]
        self._limits = SATURATION_FRACTION * np.asarray(limits)
        self._offset = 0.0
        self._last_raw: float | None = None
        self._last: float | None = None
        self._open: dict[str, QualityEvent] = {}  # a NaN/saturation run reaching the end of the last chunk
        self.counters = QualityCounters()

    def clean(self, time_s: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray, list[QualityEvent]]:
        """Return the chunk's usable samples (re-based time, finite values) and the events found."""
        events: list[QualityEvent] = []
        self.counters.samples += time_s.size
        t = np.asarray(time_s, dtype=np.float64) + self._offset
        t = self._fix_clock(time_s, t, events)
        finite = np.all(np.isfinite(values), axis=1)
        saturated = np.any(np.abs(values) >= self._limits, axis=1)  # NaN compares False
        gaps_before = len(events)
        self._find_gaps(t, events)
        broken = len(events) > gaps_before or any(e.kind == "clock_jump" for e in events)
        self._runs(~finite, t, "nan", "sample(s) with missing values", events, broken)
        self._runs(
            saturated, t, "saturation", "sample(s) at full scale", events, broken
        )  # on every timestamp: a NaN run is reported as NaN, not as a dropout
        if t.size:
            self._last = float(t[-1])
        t, values = t[finite], values[finite]
        self._count(events)
        return t, values, events

    def flush(self) -> list[QualityEvent]:
        """Close runs still open at the end of the stream; returns their events."""
        events = list(self._open.values())
        self._open.clear()
        self._count(events)
        return events

    def _count(self, events: list[QualityEvent]) -> None:
        for event in events:
            self.counters.events[event.kind] += 1
            self.counters.affected_samples[event.kind] += event.samples

    def _runs(
        self, mask: NDArray[np.bool_], t: FloatArray, kind: Kind, what: str, events: list[QualityEvent], broken: bool
    ) -> None:
        """Report runs of flagged samples, joining a run that continues from the previous chunk."""
        pending = self._open.pop(kind, None)
        if pending is not None and (broken or t.size == 0 or not mask[0]):
            events.append(pending)
            pending = None
        edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            samples = int(stop - start)
            first = float(t[start])
            if start == 0 and pending is not None:
                samples += pending.samples
                first = pending.start_s
            event = QualityEvent(kind, first, float(t[stop - 1]), samples, f"{samples} {what}")
            if stop == mask.size:
                self._open[kind] = event
            else:
                events.append(event)

    def _fix_clock(self, raw: FloatArray, t: FloatArray, events: list[QualityEvent]) -> FloatArray:
        """Re-base time after jumps so that downstream sees a monotonic clock with a reset-sized gap."""
        if raw.size == 0:
            return t
        first = self._last_raw is None
        previous = np.concatenate([[raw[0] if first else self._last_raw], raw[:-1]])
        self._last_raw = float(raw[-1])
        steps = raw - previous
        # A step under a microsecond is a stalled clock, not a sample interval: it would vanish once re-based.
        jumps = np.flatnonzero((steps < MIN_SAMPLE_STEP_S) | (steps > self.clock_jump_s))
        if first:
            jumps = jumps[jumps > 0]  # the very first sample has nothing to jump from
        if jumps.size == 0:
            return t
        t = t.copy()
        restart_gap = 2 * self.max_gap_s
        for j in jumps:
            # Forward: keep the new clock (it is usually the right one, e.g. after a time sync); the
            # gap restarts the filters. Backward or stalled: shift on so that time keeps increasing.
            shift = 0.0 if steps[j] >= MIN_SAMPLE_STEP_S else float(-steps[j] + restart_gap)
            before = float(t[j - 1]) if j > 0 else (self._last if self._last is not None else float(t[j]))
            t[j:] += shift
            self._offset += shift
            events.append(
                QualityEvent(
                    "clock_jump",
                    before,
                    float(t[j]),
                    0,
                    f"device clock stepped {steps[j]:+.3f} s between samples"
                    + ("" if shift == 0.0 else f"; later samples shifted by {shift:+.3f} s"),
                )
            )
        return t

    def _find_gaps(self, t: FloatArray, events: list[QualityEvent]) -> None:
        if t.size == 0:
            return
        all_t = np.concatenate([[self._last], t]) if self._last is not None else t
        steps = np.diff(all_t)
        for j in np.flatnonzero(steps > self.max_gap_s):
            gap = float(steps[j])
            if any(e.kind == "clock_jump" and abs(e.end_s - all_t[j + 1]) < 1e-9 for e in events):
                continue
            missing = max(round(gap * self.rate_hz) - 1, 1)
            events.append(
                QualityEvent("dropout", float(all_t[j]), float(all_t[j + 1]), missing, f"no samples for {gap:.3f} s")
            )
