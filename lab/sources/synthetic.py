"""``synthetic``: a live virtual walker from the synthetic gait lab, for demos, tests and bench work.

The walker stands still first (the calibration pose), then walks bouts at its comfortable, slow and
fast speeds with short standing pauses between them, for ever or for ``duration_s``. Each bout is a
fresh stretch of the lab's gait model (new stride-to-stride variability), sampled by the same IMU
error model as the training data. With ``keep_truth`` the force-plate signal is kept alongside, so
tests can score steps against ground truth.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from forcecast.edge.schema import PLACES
from forcecast.edge.sources.base import Chunk, SourceError
from forcecast.lab.dataset.subjects import Subject
from forcecast.lab.dataset.trial import Stream
from forcecast.lab.synth.config import SPEED_FACTORS, SynthConfig
from forcecast.lab.synth.lab import static_trial, walking_trial
from forcecast.lab.synth.population import VirtualSubject, make_subject
from forcecast.lab.synth.sensors import ACC_RANGE, GYR_RANGE

DEFAULT_PROGRAM: tuple[tuple[str, float], ...] = (
    ("comfortable", 60.0),
    ("static", 5.0),
    ("slow", 30.0),
    ("static", 5.0),
    ("fast", 30.0),
    ("static", 5.0),
)


@dataclass
class Segment:
    """One generated stretch: its condition, and (with ``keep_truth``) its force-plate stream."""

    condition: str
    start_s: float
    end_s: float
    force: Stream | None


class SyntheticSource:
    """The synthetic walker as a :class:`forcecast.edge.sources.base.Source`.

    Parameters
    ----------
    subject
        Which virtual subject (1 = ``S01`` of the lab's cohort for ``seed``).
    seed
        Cohort seed (as ``forcecast data synth --seed``).
    rate_hz
        IMU sample rate.
    speed
        1 = real time, 0 = as fast as possible.
    stand_s
        Quiet standing before the first bout (the calibration pose).
    program
        ``(condition, seconds)`` bouts repeated in order: ``comfortable``, ``slow``, ``fast`` or ``static``.
    duration_s
        Stop after this much walker time (None = never).
    places
        Sensor places to emit.
    keep_truth
        Keep each segment's force-plate data in :attr:`segments`.
    chunk_s
        Chunk duration.
    """

    def __init__(
        self,
        subject: int = 1,
        seed: int = 0,
        rate_hz: float = 100.0,
        speed: float = 1.0,
        stand_s: float = 3.0,
        program: tuple[tuple[str, float], ...] = DEFAULT_PROGRAM,
        duration_s: float | None = None,
        places: tuple[str, ...] = PLACES,
        keep_truth: bool = False,
        chunk_s: float = 0.04,
    ) -> None:
        unknown = [c for c, _ in program if c != "static" and c not in SPEED_FACTORS]
        if unknown or not program:
            raise SourceError(f"synthetic: unknown condition(s) {unknown}; use static or {', '.join(SPEED_FACTORS)}")
        if any(seconds < 2.0 for _, seconds in program) or stand_s < 0:
            raise SourceError("synthetic: every bout must last at least 2 s and stand_s must be ≥ 0")
        self.config = SynthConfig(subjects=max(subject, 1), seed=seed, imu_rates_hz=(rate_hz,), places=places)
        self.walker: VirtualSubject = make_subject(self.config, subject)
        self.columns = tuple(f"{p}_{k}_{a}" for p in places for k in ("acc", "gyr") for a in "xyz")
        self.rate_hz = float(rate_hz)
        self.acc_range_mps2 = float(ACC_RANGE)
        self.gyr_range_rads = float(GYR_RANGE)
        self.speed = speed
        self.stand_s = stand_s
        self.program = program
        self.duration_s = duration_s
        self.keep_truth = keep_truth
        self.chunk_s = chunk_s
        self.segments: list[Segment] = []
        self._closed = False

    @property
    def subject(self) -> Subject:
        """What ``subjects.csv`` would say about the walker (for the static features)."""
        return self.walker.as_subject()

    def chunks(self) -> Iterator[Chunk]:
        """Generate and yield the walker's samples, paced when ``speed > 0``."""
        started = time.monotonic()
        clock = 0.0
        bout = 0
        plan = ([("static", self.stand_s)] if self.stand_s >= 2.0 else []) + list(self.program)
        index = 0
        while not self._closed and (self.duration_s is None or clock < self.duration_s - 0.5 / self.rate_hz):
            condition, seconds = plan[index]
            index = index + 1 if index + 1 < len(plan) else (1 if self.stand_s >= 2.0 else 0)
            bout += 1
            stream, force = self._segment(condition, seconds, bout)
            t = stream.time_s - stream.time_s[0] + clock
            if self.keep_truth and force is not None:
                force = Stream(force.time_s - stream.time_s[0] + clock, force.columns, force.values, force.source)
            self.segments.append(Segment(condition, float(t[0]), float(t[-1]), force if self.keep_truth else None))
            step = max(1, round(self.chunk_s * self.rate_hz))
            for a in range(0, t.size, step):
                if self._closed or (self.duration_s is not None and t[a] >= self.duration_s):
                    self._trim_truth(float(t[a - 1]) if a else float(t[0]))
                    return
                b = min(a + step, t.size)
                if self.speed > 0:
                    pause = started + t[b - 1] / self.speed - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                yield Chunk(t[a:b], stream.values[a:b], self.columns)
            clock = float(t[-1]) + 1.0 / self.rate_hz

    def close(self) -> None:
        """Stop after the current chunk."""
        self._closed = True

    def _trim_truth(self, last_s: float) -> None:
        """Cut the last segment's ground truth where the emitted samples ended."""
        segment = self.segments[-1]
        segment.end_s = last_s
        if segment.force is not None:
            keep = segment.force.time_s <= last_s
            f = segment.force
            segment.force = Stream(f.time_s[keep], f.columns, f.values[keep], f.source)

    def _segment(self, condition: str, seconds: float, bout: int) -> tuple[Stream, Stream | None]:
        walker = dataclasses.replace(self.walker, seed=int(self.walker.seed) * 7919 + bout)
        if condition == "static":
            trial = static_trial(walker, dataclasses.replace(self.config, static_s=seconds))
        else:
            trial = walking_trial(walker, condition, dataclasses.replace(self.config, duration_s=seconds))
        return trial.imu.select(self.columns), trial.force


def truth_force(segments: list[Segment], side: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated force-plate time and force of one side (``l``/``r``) in newtons, from kept segments."""
    parts = [s.force for s in segments if s.force is not None]
    if not parts:
        raise ValueError("no ground truth kept (create the source with keep_truth=True)")
    columns = tuple(f"{side}_grf_{a}" for a in ("v", "ap", "ml"))
    return np.concatenate([p.time_s for p in parts]), np.vstack([p.select(columns).values for p in parts])
