"""Biofeedback: tell the patient at once when a step loads the knee beyond their limit.

A cue fires the first time within a stance that the predicted vertical force exceeds the patient's
``peak_limit_bw`` — during the step, not after it. Its latency is measured as the time from the
force sample that crossed the limit to the moment the cue is issued: the model's algorithmic delay
(how far the newest input lies ahead of that sample) plus the compute time of that hop.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


@dataclass(frozen=True)
class CueEvent:
    """One cue: which leg, when (device time of the crossing sample), how hard, how late."""

    leg: str
    time_s: float
    force_bw: float
    limit_bw: float
    latency_ms: float


class Cue(Protocol):
    """Something that can alert the patient."""

    def fire(self, event: CueEvent) -> None:
        """Deliver the cue (must return quickly)."""
        ...

    def close(self) -> None:
        """Release the output."""
        ...


class StdoutCue:
    """Print one JSON line per cue (for a wrapper process, a phone, or a test)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def fire(self, event: CueEvent) -> None:
        """Write ``{"event": "cue", ...}``."""
        self.stream.write(json.dumps({"event": "cue", **event.__dict__}) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to release."""


class GpioCue:
    """Pulse a GPIO line (buzzer or vibration motor driver) through libgpiod's Python binding.

    Parameters
    ----------
    chip
        GPIO character device, e.g. ``/dev/gpiochip0``.
    pin
        Line offset (BCM number on a Raspberry Pi).
    pulse_s
        How long the line stays high.
    """

    def __init__(self, chip: str, pin: int, pulse_s: float) -> None:
        try:
            import gpiod
            from gpiod.line import Direction, Value
        except ImportError:
            raise RuntimeError(
                "feedback output 'gpio' needs libgpiod's Python binding: pip install gpiod "
                '(or set [feedback] output = "stdout")'
            ) from None
        try:
            self._request = gpiod.request_lines(
                chip, consumer="forcecast-cue", config={pin: gpiod.LineSettings(direction=Direction.OUTPUT)}
            )
        except OSError as exc:
            raise RuntimeError(f"cannot drive GPIO {pin} on {chip}: {exc} (is the user in group gpio?)") from None
        self._pin, self._on, self._off = pin, Value.ACTIVE, Value.INACTIVE
        self.pulse_s = pulse_s

    def fire(self, event: CueEvent) -> None:
        """Set the line high and drop it after ``pulse_s`` on a timer thread (never blocks the pipeline)."""
        self._request.set_value(self._pin, self._on)
        threading.Timer(self.pulse_s, self._request.set_value, (self._pin, self._off)).start()

    def close(self) -> None:
        """Leave the line low and release it."""
        self._request.set_value(self._pin, self._off)
        self._request.release()


class FeedbackGate:
    """Decide when to cue: once per stance per leg, when the force first exceeds the limit.

    Parameters
    ----------
    limit_bw
        Threshold in body weights (0 disables), or a function giving the threshold now: the gate asks it at
        every block, so a limit changed while running (a patient profile,
        :meth:`forcecast.edge.runtime.patient_state.PatientState.feedback_limit_bw`) holds from the next block.
    cue
        Where cues go.
    contact_bw
        Below this the leg is in swing, which re-arms the gate.
    """

    def __init__(self, limit_bw: float | Callable[[], float], cue: Cue | None, contact_bw: float = 0.05) -> None:
        self._limit: Callable[[], float] = limit_bw if callable(limit_bw) else lambda: limit_bw
        self.cue = cue
        self.contact_bw = contact_bw
        self._armed: dict[str, bool] = {}
        self.events: list[CueEvent] = []

    @property
    def limit_bw(self) -> float:
        """The threshold now (BW; 0 = no cue)."""
        return self._limit()

    def check(self, leg: str, time_s: Any, vertical_bw: Any, newest_input_s: float, compute_s: float) -> None:
        """Look at a block of new GRF samples of ``leg``; fire at most once per stance (against the limit now)."""
        limit_bw = self._limit()
        if limit_bw <= 0 or self.cue is None:
            return
        armed = self._armed.get(leg, True)
        for t, v in zip(time_s, vertical_bw, strict=True):
            if v < self.contact_bw:
                armed = True
            elif armed and v > limit_bw:
                armed = False
                started = time.perf_counter()
                latency = (newest_input_s - float(t)) + compute_s
                event = CueEvent(leg, float(t), round(float(v), 4), limit_bw, round(1000 * latency, 2))
                self.cue.fire(event)
                event = CueEvent(
                    leg,
                    event.time_s,
                    event.force_bw,
                    event.limit_bw,
                    round(1000 * (latency + time.perf_counter() - started), 2),
                )
                self.events.append(event)
        self._armed[leg] = armed
