"""Streaming GRF prediction for one leg: channel mapping, normalisation, a window buffer, a hop clock.

Samples arrive on the model's time grid. Every ``out_len`` samples (the hop), once a full window
of an unbroken segment is in the buffer, the model runs on the newest ``window`` samples and gives
``out_len`` GRF samples ending ``delay`` samples before the newest input. This is exactly how
:func:`forcecast.training.windows.predict_sequence` tiles time, so offline evaluation and the device agree.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ModelContract
from forcecast.edge.features import channel_sources

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Model = Any
"""A :class:`forcecast.edge.interpreter.TFLiteModel` (``inputs``, ``encode``, ``run_encoded``)."""
_SPARE = 1024


STATIC_LIMIT_SD = 5.0
"""Normalised static features are kept within this many training SDs (see :func:`bounded_static`)."""


def bounded_static(contract: ModelContract, raw: FloatArray) -> FloatArray:
    """Normalise static features, keeping each within ±:data:`STATIC_LIMIT_SD` of the training data.

    A feature that never varied in training has a floored SD (e.g. ``hka_known`` when every training
    subject had a measured HKA): an unknown value then lies a thousand SDs away, which an int8 model's
    input quantisation happens to clip but a float model takes literally. Such a value is clipped and
    logged; the fix is to give the patient's value in ``device.toml``.
    """
    assert contract.static is not None
    z = contract.static.apply(raw)
    far = np.abs(z) > STATIC_LIMIT_SD
    if far.any():
        names = [n for n, f in zip(contract.static_features, far, strict=True) if f]
        log.warning(
            "static feature(s) %s lie more than %g SD outside the model's training data; clipped "
            "(give the patient's values in device.toml [patient])",
            ", ".join(names),
            STATIC_LIMIT_SD,
        )
    return np.clip(z, -STATIC_LIMIT_SD, STATIC_LIMIT_SD)


class LegPredictor:
    """Predict one leg's GRF (body weights) from a stream of grid samples.

    Parameters
    ----------
    model
        A :class:`forcecast.edge.interpreter.TFLiteModel`; samples are encoded (quantised) once, as they arrive.
    contract
        The model's contract.
    columns
        IMU columns of the samples that will be pushed.
    side
        ``"l"`` or ``"r"``: the leg predicted (left-leg data are mirrored).
    static
        Raw static feature vector (``forcecast.edge.features.static_features``), or None if the model has none.
    """

    def __init__(
        self,
        model: Model,
        contract: ModelContract,
        columns: tuple[str, ...],
        side: str,
        static: FloatArray | None,
    ) -> None:
        self.model = model
        self.contract = contract
        self.side = side
        index = {c: i for i, c in enumerate(columns)}
        sources = channel_sources(contract.leg_places, side)
        missing = [c for c, _ in sources if c not in index]
        if missing:
            raise KeyError(f"leg {side}: the model needs {', '.join(missing)}, which the sensors do not provide")
        self._index = np.array([index[c] for c, _ in sources])
        self._scale = np.array([s for _, s in sources]) / np.asarray(contract.inputs.std)
        self._shift = np.asarray(contract.inputs.mean) / np.asarray(contract.inputs.std)
        self._static = (
            None
            if static is None or contract.static is None or "static" not in model.inputs
            else model.encode("static", bounded_static(contract, np.asarray(static, dtype=np.float64))[None, :])
        )
        self._window, self._hop, self._delay = contract.window, contract.out_len, contract.delay
        self._buf = np.empty((self._window + _SPARE, len(sources)), dtype=model.inputs["imu"].dtype)
        self._times = np.empty(self._window + _SPARE)
        self._end = 0
        self._segment = 0
        self._last_t: float | None = None
        self._period = 1.0 / contract.rate_hz
        self.inferences = 0
        self.last_push_compute_s = 0.0
        self.compute_s: deque[float] = deque(maxlen=20_000)  # recent per-inference times, for the benchmark

    def reset(self) -> None:
        """Start a new segment (after a gap): the buffer must fill again before the next output."""
        self._end = 0
        self._segment = 0
        self._last_t = None

    def push(self, time_s: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Add grid samples; return the GRF samples completed (times, ``(m, 3)`` in BW)."""
        if time_s.size == 0:
            return np.empty(0), np.empty((0, 3))
        breaks = np.flatnonzero(np.diff(time_s) > 1.5 * self._period) + 1
        if self._last_t is not None and time_s[0] - self._last_t > 1.5 * self._period:
            self.reset()
        out_t: list[FloatArray] = []
        out_y: list[FloatArray] = []
        self.last_push_compute_s = 0.0
        for k, (t, x) in enumerate(zip(np.split(time_s, breaks), np.split(values, breaks), strict=True)):
            if k:
                self.reset()
            self._push_segment(t, x, out_t, out_y)
        if not out_t:
            return np.empty(0), np.empty((0, 3))
        return np.concatenate(out_t), np.concatenate(out_y)

    def _push_segment(self, t: FloatArray, x: FloatArray, out_t: list[FloatArray], out_y: list[FloatArray]) -> None:
        normalised = self.model.encode("imu", x[:, self._index] * self._scale - self._shift)
        w, k, d = self._window, self._hop, self._delay
        done = 0
        while done < t.size:
            if self._end == self._buf.shape[0]:
                keep = w - 1
                self._buf[:keep] = self._buf[self._end - keep : self._end]
                self._times[:keep] = self._times[self._end - keep : self._end]
                self._end = keep
            take = min(t.size - done, self._buf.shape[0] - self._end)
            self._buf[self._end : self._end + take] = normalised[done : done + take]
            self._times[self._end : self._end + take] = t[done : done + take]
            first_count = self._segment + 1
            self._end += take
            self._segment += take
            done += take
            # a window ends after sample number c (1-based, in the segment) when c >= w and (c - w) % k == 0
            counts = np.arange(first_count, self._segment + 1)
            for c in counts[(counts >= w) & ((counts - w) % k == 0)]:
                e = self._end - (self._segment - int(c))
                started = time.perf_counter()
                feed = {"imu": self._buf[e - w : e][None]}
                if self._static is not None:
                    feed["static"] = self._static
                y = next(iter(self.model.run_encoded(**feed).values()))[0]
                spent = time.perf_counter() - started
                self.compute_s.append(spent)
                self.last_push_compute_s += spent
                self.inferences += 1
                out_t.append(self._times[e - d - k : e - d].copy())
                out_y.append(self.contract.targets.invert(y))
        self._last_t = float(t[-1])
