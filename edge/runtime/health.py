"""The health period of a model on trial: it must run a while, with finite and plausible outputs.

A newly installed model is confirmed (:meth:`forcecast.edge.slots.ModelSlots.confirm`) only once it has run
``[models] health_s`` seconds of sensor data and detected ``[models] health_steps`` steps, and every GRF
output in that time was finite and within :data:`PLAUSIBLE_BW` body weights. Until then a crash, a kill
or a power cut leaves the trial unconfirmed, so the next start rolls back. Outputs that are not finite
or not plausible fail the trial at once.

The monitor is a pipeline listener: it runs in the pipeline's thread and does no I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

from forcecast.edge.errors import ForcecastRuntimeError

PLAUSIBLE_BW = 10.0
"""Largest GRF magnitude (any axis, in body weights) a walking person produces, with a wide margin
(walking peaks about 1.2 BW vertical, running about 3, landing from a jump up to about 8)."""


class ModelHealthError(ForcecastRuntimeError):
    """The model on trial misbehaved and the runtime cannot go on with it (the next start rolls it back)."""

    reason = "model_unhealthy"


class Health(Enum):
    """Where a monitored model stands."""

    IDLE = "idle"
    RUNNING = "running"
    HEALTHY = "healthy"
    FAILED = "failed"


class HealthMonitor:
    """Watch the model on trial (see the module docstring).

    Parameters
    ----------
    period_s
        Seconds of model output needed (0: the first output is enough).
    steps
        Steps needed.
    plausible_bw
        Largest plausible absolute output, body weights.
    """

    def __init__(self, period_s: float, steps: int = 0, plausible_bw: float = PLAUSIBLE_BW) -> None:
        if period_s < 0 or steps < 0 or not plausible_bw > 0:
            raise ValueError(
                f"period_s ≥ 0, steps ≥ 0 and plausible_bw > 0 needed, got {period_s}, {steps}, {plausible_bw}"
            )
        self.period_s = period_s
        self.steps_needed = steps
        self.plausible_bw = plausible_bw
        self.problem: str | None = None
        self._armed = False
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._steps = 0

    def arm(self) -> None:
        """Start watching (again): the model under trial produces the outputs from now on."""
        self.problem, self._first_t, self._last_t, self._steps = None, None, None, 0
        self._armed = True

    def disarm(self) -> None:
        """Stop watching (the trial ended)."""
        self._armed = False

    def listener(self, kind: str, payload: dict[str, Any]) -> None:
        """A pipeline listener: GRF outputs and steps."""
        if not self._armed or self.problem is not None:
            return
        if kind == "step":
            self._steps += 1
            return
        if kind != "grf":
            return
        grf = np.asarray(payload["grf_bw"], dtype=np.float64)
        times = np.asarray(payload["time_s"], dtype=np.float64)
        if not np.all(np.isfinite(grf)):
            self.problem = f"{payload.get('leg', '?')} leg: output not finite near t = {float(times[0]):.2f} s"
            return
        peak = float(np.max(np.abs(grf))) if grf.size else 0.0
        if peak > self.plausible_bw:
            self.problem = (
                f"{payload.get('leg', '?')} leg: output of {peak:.1f} BW near t = {float(times[0]):.2f} s "
                f"is beyond the plausible {self.plausible_bw:g} BW"
            )
            return
        if times.size:
            self._first_t = float(times[0]) if self._first_t is None else self._first_t
            self._last_t = float(times[-1])

    @property
    def ran_s(self) -> float:
        """Seconds of output seen since :meth:`arm`."""
        return 0.0 if self._first_t is None or self._last_t is None else self._last_t - self._first_t

    @property
    def state(self) -> Health:
        """Idle, still running its period, healthy (confirm it) or failed (:attr:`problem` says why)."""
        if not self._armed:
            return Health.IDLE
        if self.problem is not None:
            return Health.FAILED
        if self._first_t is not None and self.ran_s >= self.period_s and self._steps >= self.steps_needed:
            return Health.HEALTHY
        return Health.RUNNING
