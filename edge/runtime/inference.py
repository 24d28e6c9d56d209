"""Streaming GRF prediction for one leg: channel mapping, normalisation, a window buffer, a hop clock, blending.

Samples arrive on the model's time grid. Every ``hop`` samples, once a full window of an unbroken segment
is in the buffer, the model runs on the newest ``window`` samples and predicts ``out_len`` GRF samples
ending ``delay`` samples before the newest input (:func:`forcecast.edge.features.output_positions`).
Windows overlap when the hop is shorter than ``out_len``: each GRF sample is then the weighted mean of
the predictions made for it while it was at most ``delay + lag`` samples old (:class:`Streaming`), and
it is emitted once, in order, as soon as no later window may add to it. The first window of a segment
also gives its older outputs (nothing else predicts them).

``Streaming.blocks`` (hop = ``out_len``, every output used once) is the scheme of earlier releases and
of :func:`forcecast.training.windows.predict_sequence`: blocks of ``out_len`` samples tiling time.
:func:`blend_windows` applies any scheme to whole-sequence window outputs, so offline evaluation and
the device agree whatever the scheme.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.features import channel_sources
from forcecast.edge.runtime.config import RuntimeConfig

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
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


def slot_weights(out_len: int) -> FloatArray:
    """Blending weight of each output slot of a window: a sine taper, lowest at the window-output edges.

    Slot 0 is the oldest output sample, slot ``out_len - 1`` the newest (``delay`` behind the input).
    No slot has weight 0, so a sample predicted by one window only keeps that window's value.
    """
    return np.sin(np.pi * (np.arange(out_len) + 0.5) / out_len)


@dataclass(frozen=True)
class Streaming:
    """How a leg's GRF samples are made from (possibly overlapping) windows.

    Attributes
    ----------
    hop
        Samples between two inferences (1 = every sample).
    lag
        Samples, beyond the model's ``delay``, that a GRF sample waits for later windows before it is
        emitted; the predictions made while it waited are blended (:func:`slot_weights`). Its steady-state
        algorithmic latency is ``delay + lag`` samples. At most ``out_len - 1``.
    """

    hop: int
    lag: int

    @classmethod
    def for_model(cls, contract: ModelContract, hop: int, lag: int) -> Streaming:
        """The runtime's ``stream_hop`` and ``stream_lag`` for a model (``lag`` capped at ``out_len - 1``).

        Raises
        ------
        ContractError
            If samples would get no prediction: a hop longer than ``lag + 1`` (or ``out_len``) skips samples.
        """
        k = contract.out_len
        used = min(lag, k - 1)
        if not 1 <= hop <= used + 1:
            raise ContractError(
                f"runtime.stream_hop = {hop} would leave GRF samples without a prediction: the model gives "
                f"out_len = {k} samples per inference, so with stream_lag = {lag} the hop must be 1..{used + 1}"
            )
        return cls(hop, used)

    @classmethod
    def blocks(cls, contract: ModelContract) -> Streaming:
        """Non-overlapping windows, ``out_len`` samples per inference (earlier releases; offline evaluation)."""
        return cls(contract.out_len, contract.out_len - 1)

    def latency_samples(self, contract: ModelContract, chunk_samples: int = 1) -> int:
        """Worst steady-state age of a GRF sample when emitted, counted from the newest input sample.

        ``delay + lag`` samples behind the input whose inference finalised it, plus up to
        ``chunk_samples - 1`` newer samples that arrived in the same chunk (processed together).
        """
        return contract.delay + self.lag + max(chunk_samples, 1) - 1

    def latency_s(self, contract: ModelContract, chunk_samples: int = 1) -> float:
        """:meth:`latency_samples` in seconds at the model's rate."""
        return self.latency_samples(contract, chunk_samples) / contract.rate_hz

    def first_slot(self, out_len: int) -> int:
        """Oldest output slot of a window (other than a segment's first) that still feeds a sample."""
        return out_len - 1 - self.lag


def device_window_ends(valid_ends: IntArray, hop: int) -> IntArray:
    """The window ends the device runs, out of every valid one: each unbroken run's first, then every ``hop``.

    ``valid_ends`` are the ends (exclusive, increasing) of the windows whose inputs are all finite; a run
    of consecutive ends is one segment of the stream, and the device's hop clock restarts with each.
    """
    if valid_ends.size == 0:
        return valid_ends
    starts = np.concatenate([[True], np.diff(valid_ends) != 1])
    first_of_run = valid_ends[starts][np.cumsum(starts) - 1]
    kept: IntArray = valid_ends[(valid_ends - first_of_run) % hop == 0]
    return kept


def default_streaming(contract: ModelContract) -> Streaming:
    """The scheme a device with the default ``runtime.stream_hop`` and ``stream_lag`` runs ``contract`` with."""
    runtime = RuntimeConfig()
    return Streaming.for_model(contract, runtime.stream_hop, runtime.stream_lag)


def blend_windows(ends: IntArray, outputs: FloatArray, contract: ModelContract, streaming: Streaming) -> FloatArray:
    """GRF per sample from whole-sequence window outputs, exactly as :class:`LegPredictor` streams them.

    Parameters
    ----------
    ends
        Window ends (exclusive sample indices, increasing) of every inference the device would run: on
        the ``streaming.hop`` grid of each unbroken segment. A window whose end is not ``hop`` after the
        previous one starts a new segment.
    outputs
        ``(len(ends), out_len, 3)`` predictions (body weights) of those windows.
    contract, streaming
        The model's contract and the scheme.

    Returns
    -------
    numpy.ndarray
        ``(ends[-1], 3)``: the blended GRF, NaN where no window gives a value.
    """
    k, d = contract.out_len, contract.delay
    n = int(ends[-1]) if ends.size else 0
    acc = np.zeros((n, 3))
    weight = np.zeros(n)
    slots = slot_weights(k)
    first_slot = streaming.first_slot(k)
    previous = None
    for e, y in zip(ends.tolist(), outputs, strict=True):
        j0 = 0 if previous is None or e - previous != streaming.hop else first_slot
        start = e - d - k
        acc[start + j0 : start + k] += slots[j0:, None] * y[j0:]
        weight[start + j0 : start + k] += slots[j0:]
        previous = e
    out = np.full((n, 3), np.nan)
    known = weight > 0
    out[known] = acc[known] / weight[known, None]
    return out


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
    streaming
        Hop and blending (default :meth:`Streaming.blocks`, one inference per ``out_len`` samples).
    """

    def __init__(
        self,
        model: Model,
        contract: ModelContract,
        columns: tuple[str, ...],
        side: str,
        static: FloatArray | None,
        streaming: Streaming | None = None,
    ) -> None:
        self.model = model
        self.contract = contract
        self.side = side
        self.streaming = streaming or Streaming.blocks(contract)
        index = {c: i for i, c in enumerate(columns)}
        sources = channel_sources(contract.leg_places, side)
        missing = [c for c, _ in sources if c not in index]
        if missing:
            raise KeyError(f"leg {side}: the model needs {', '.join(missing)}, which the sensors do not provide")
        self._index = np.array([index[c] for c, _ in sources])
        self._scale = np.array([s for _, s in sources]) / np.asarray(contract.inputs.std)
        self._shift = np.asarray(contract.inputs.mean) / np.asarray(contract.inputs.std)
        self._static: Any = None
        self.set_static(static)
        self._window, self._out_len, self._delay = contract.window, contract.out_len, contract.delay
        self._buf = np.empty((self._window + _SPARE, len(sources)), dtype=model.inputs["imu"].dtype)
        self._times = np.empty(self._window + _SPARE)
        self._end = 0
        self._segment = 0
        self._last_t: float | None = None
        self._period = 1.0 / contract.rate_hz
        self._weights = slot_weights(self._out_len)
        self._target_std = np.asarray(contract.targets.std, dtype=np.float64)
        self._target_mean = np.asarray(contract.targets.mean, dtype=np.float64)
        # Samples still open to later windows, aligned with the last window's output slots.
        self._acc = np.zeros((self._out_len, 3))
        self._acc_w = np.zeros(self._out_len)
        self._acc_t = np.zeros(self._out_len)
        self._last_newest: int | None = None  # segment index of the newest input of the last inference
        self._emitted_through = -1  # segment index of the last GRF sample emitted
        self.inferences = 0
        self.last_push_compute_s = 0.0
        self.compute_s: deque[float] = deque(maxlen=20_000)  # recent per-inference times, for the benchmark

    def set_static(self, static: FloatArray | None) -> None:
        """Feed these raw static features from the next inference on (a patient profile applied while running).

        Ignored (None kept) for a model without a static input.
        """
        contract, model = self.contract, self.model
        self._static = (
            None
            if static is None or contract.static is None or "static" not in model.inputs
            else model.encode("static", bounded_static(contract, np.asarray(static, dtype=np.float64))[None, :])
        )

    def reset(self) -> None:
        """Start a new segment (after a gap): the buffer must fill again before the next output.

        Samples still waiting for later windows are dropped; :meth:`push` emits them before it resets.
        """
        self._end = 0
        self._segment = 0
        self._last_t = None
        self._last_newest = None
        self._emitted_through = -1
        self._acc[:] = 0.0
        self._acc_w[:] = 0.0

    def push(self, time_s: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Add grid samples; return the GRF samples completed (times, ``(m, 3)`` in BW), each once and in order."""
        if time_s.size == 0:
            return np.empty(0), np.empty((0, 3))
        out_t: list[FloatArray] = []
        out_y: list[FloatArray] = []
        if self._last_t is not None and time_s[0] - self._last_t > 1.5 * self._period:
            self._flush(out_t, out_y)
            self.reset()
        self.last_push_compute_s = 0.0
        breaks = np.flatnonzero(np.diff(time_s) > 1.5 * self._period) + 1 if time_s.size > 1 else ()
        if len(breaks) == 0:  # the usual chunk: one piece of one segment
            self._push_segment(time_s, values, out_t, out_y)
        else:
            for k, (t, x) in enumerate(zip(np.split(time_s, breaks), np.split(values, breaks), strict=True)):
                if k:
                    self._flush(out_t, out_y)
                    self.reset()
                self._push_segment(t, x, out_t, out_y)
        if not out_t:
            return np.empty(0), np.empty((0, 3))
        return np.concatenate(out_t), np.concatenate(out_y)

    def _push_segment(self, t: FloatArray, x: FloatArray, out_t: list[FloatArray], out_y: list[FloatArray]) -> None:
        normalised = self.model.encode("imu", x[:, self._index] * self._scale - self._shift)
        w, h = self._window, self.streaming.hop
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
            # a window ends after sample number c (1-based, in the segment) when c >= w and (c - w) % hop == 0
            first_end = max(first_count, w)
            first_end += -(first_end - w) % h
            for c in range(first_end, self._segment + 1, h):
                e = self._end - (self._segment - c)
                started = time.perf_counter()
                feed = {"imu": self._buf[e - w : e][None]}
                if self._static is not None:
                    feed["static"] = self._static
                y = next(iter(self.model.run_encoded(**feed).values()))[0]
                spent = time.perf_counter() - started
                self.compute_s.append(spent)
                self.last_push_compute_s += spent
                self.inferences += 1
                self._blend(c - 1, e, y * self._target_std + self._target_mean, out_t, out_y)
        self._last_t = float(t[-1])

    def _blend(self, newest: int, e: int, y: FloatArray, out_t: list[FloatArray], out_y: list[FloatArray]) -> None:
        """Add one window's outputs (newest input: segment sample ``newest``, buffer end ``e``); emit what is final."""
        k, d = self._out_len, self._delay
        if self.streaming.lag == 0 and self._last_newest is not None:  # every sample from one window's newest output
            self._last_newest = newest
            self._emitted_through = newest - d
            out_t.append(self._times[e - d - 1 : e - d].copy())
            out_y.append(y[k - 1 :])
            return
        if self._last_newest is None:
            j0 = 0  # a segment's first window: its older outputs have no other prediction
            self._acc_t[:] = self._times[e - d - k : e - d]
        else:
            shift = newest - self._last_newest
            for array in (self._acc, self._acc_w, self._acc_t):
                array[: k - shift] = array[shift:]
                array[k - shift :] = 0.0
            self._acc_t[k - shift :] = self._times[e - d - shift : e - d]
            j0 = self.streaming.first_slot(k)
        self._last_newest = newest
        self._acc[j0:] += self._weights[j0:, None] * y[j0:]
        self._acc_w[j0:] += self._weights[j0:]
        # samples no later window will reach within the lag: up to newest + hop - (delay + lag) - 1
        oldest = newest - d - k + 1
        last = min(k - 1, k - 2 + self.streaming.hop - self.streaming.lag)
        first = max(self._emitted_through + 1 - oldest, 0)
        if last >= first:
            out_t.append(self._acc_t[first : last + 1].copy())
            out_y.append(self._acc[first : last + 1] / self._acc_w[first : last + 1, None])
            self._emitted_through = oldest + last

    def flush(self) -> tuple[FloatArray, FloatArray]:
        """Emit the samples still waiting for later windows (end of the stream), as :meth:`push` returns them."""
        out_t: list[FloatArray] = []
        out_y: list[FloatArray] = []
        self._flush(out_t, out_y)
        if not out_t:
            return np.empty(0), np.empty((0, 3))
        return np.concatenate(out_t), np.concatenate(out_y)

    def _flush(self, out_t: list[FloatArray], out_y: list[FloatArray]) -> None:
        """Emit the samples still waiting for windows that will not come (a gap ends the segment)."""
        if self._last_newest is None:
            return
        oldest = self._last_newest - self._delay - self._out_len + 1
        first = max(self._emitted_through + 1 - oldest, 0)
        waiting = np.flatnonzero(self._acc_w[first:] > 0) + first
        if waiting.size:
            out_t.append(self._acc_t[waiting].copy())
            out_y.append(self._acc[waiting] / self._acc_w[waiting, None])
            self._emitted_through = oldest + int(waiting[-1])


def latency_bound_s(contract: ModelContract, streaming: Streaming, chunk_s: float) -> float:
    """Worst steady-state sample-to-result latency from the scheme and the chunk period (compute excluded).

    A chunk of ``chunk_s`` holds ``ceil(chunk_s * rate)`` grid samples, processed together.
    """
    return streaming.latency_s(contract, max(1, math.ceil(round(chunk_s * contract.rate_hz, 6))))
