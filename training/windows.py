"""Windows over leg sequences: which ones are valid, and batches of them for Keras.

A window ending at sample ``e`` (exclusive) holds inputs ``[e - window, e)`` and is trained to output
the GRF at ``forcecast.edge.features.output_positions(e, out_len, delay)``. A window is usable when all its
inputs are finite and at least one sample of its target block is known; unknown target values stay
NaN in the batch and get no gradient (see :func:`forcecast.training.models.masked_mse`).

Static features are normalised and kept within ±5 training SDs by the device's own function
(:func:`forcecast.edge.runtime.inference.bounded_static`), so training, evaluation and the device feed a model
the same numbers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ModelContract
from forcecast.edge.features import output_positions
from forcecast.edge.runtime.inference import (
    STATIC_LIMIT_SD,
    Streaming,
    blend_windows,
    bounded_static,
    default_streaming,
    device_window_ends,
)
from forcecast.training.config import AugmentConfig
from forcecast.training.data import LegSequence, TrainingDataWarning

Predict = Callable[[NDArray[np.float32], NDArray[np.float32] | None], NDArray[np.float32]]
"""``(x (b, window, c), static (b, s) or None) -> normalised outputs (b, out_len, 3)``."""


def valid_ends(
    inputs_ok: NDArray[np.bool_], targets_ok: NDArray[np.bool_], window: int, out_len: int, delay: int
) -> NDArray[np.int64]:
    """Window ends ``e`` (exclusive) whose inputs are all finite and whose target block has a known sample.

    Parameters
    ----------
    inputs_ok
        Per sample: every input channel finite.
    targets_ok
        Per sample: the target is known (on at least one axis).
    """
    n = inputs_ok.size
    if n < window:
        return np.empty(0, dtype=np.int64)
    bad_in = np.concatenate([[0], np.cumsum(~inputs_ok)])
    bad_out = np.concatenate([[0], np.cumsum(~targets_ok)])
    ends = np.arange(window, n + 1)
    clean_in = bad_in[ends] - bad_in[ends - window] == 0
    block_stop = ends - delay
    some_known = bad_out[block_stop] - bad_out[block_stop - out_len] < out_len
    return ends[clean_in & some_known]


def static_inputs(contract: ModelContract, raw: NDArray[np.floating], who: str = "") -> NDArray[np.float32]:
    """Normalised static features exactly as the device computes them (clipped to ±5 training SDs).

    The device's own function does the work; its log line (written for a patient's ``device.toml``)
    is replaced here by one :class:`~forcecast.training.data.TrainingDataWarning` naming the features and ``who``.
    """
    values = np.asarray(raw, dtype=np.float64)
    device_log = logging.getLogger(bounded_static.__module__)
    was_disabled, device_log.disabled = device_log.disabled, True
    try:
        z = bounded_static(contract, values)
    finally:
        device_log.disabled = was_disabled
    assert contract.static is not None
    far = np.abs(contract.static.apply(values)) > STATIC_LIMIT_SD
    if far.any():
        names = ", ".join(n for n, f in zip(contract.static_features, far, strict=True) if f)
        warnings.warn(
            f"static feature(s) {names}{' of ' + who if who else ''} lie beyond ±{STATIC_LIMIT_SD:g} training SDs; "
            "clipped there, as the device does",
            TrainingDataWarning,
            2,
        )
    return z.astype(np.float32)


class WindowSource:
    """Normalised sequences and every valid window in them."""

    def __init__(self, sequences: list[LegSequence], contract: ModelContract, use_static: bool) -> None:
        self.contract = contract
        self.use_static = use_static
        self.x = [contract.inputs.apply(s.inputs) for s in sequences]
        self.y = [contract.targets.apply(s.targets) for s in sequences]
        self.s = [
            static_inputs(contract, s.static, f"subject {s.subject_id}") if (use_static and contract.static) else None
            for s in sequences
        ]
        seq_index, ends = [], []
        for i, seq in enumerate(sequences):
            e = valid_ends(
                np.all(np.isfinite(seq.inputs), axis=1),
                np.any(np.isfinite(seq.targets), axis=1),
                contract.window,
                contract.out_len,
                contract.delay,
            )
            seq_index.append(np.full(e.size, i))
            ends.append(e)
        self.seq_index = np.concatenate(seq_index) if seq_index else np.empty(0, dtype=np.int64)
        self.ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
        self.unused = [seq.key for seq, e in zip(sequences, ends, strict=True) if e.size == 0]
        """Keys of sequences with no usable window (too short, NaN inputs, or no known target)."""

    def statics(self) -> list[NDArray[np.float32]]:
        """Each sequence's normalised static features (only when the windows use them)."""
        present = [s for s in self.s if s is not None]
        if len(present) != len(self.s):
            raise ValueError("static features were asked for, but the contract has none (use_static without static)")
        return present

    def __len__(self) -> int:
        return int(self.ends.size)

    def gather(self, picks: NDArray[np.int64]) -> tuple[tuple[NDArray[np.float32], ...], NDArray[np.float32]]:
        """Model inputs and targets of the windows ``picks`` (indices into the valid windows)."""
        w = self.contract.window
        statics = self.statics() if self.use_static else []
        xs, ys, ss = [], [], []
        for k in picks:
            i, e = int(self.seq_index[k]), int(self.ends[k])
            xs.append(self.x[i][e - w : e])
            ys.append(self.y[i][output_positions(e, self.contract.out_len, self.contract.delay)])
            if self.use_static:
                ss.append(statics[i])
        x = np.stack(xs)
        inputs = (x, np.stack(ss).astype(np.float32)) if self.use_static else (x,)
        return inputs, np.stack(ys)


def steps_per_epoch(n_windows: int, batch_size: int, stride: int, epochs: int, min_steps: int) -> int:
    """Gradient steps per epoch.

    One pass over ``n_windows / stride`` windows, raised so that ``epochs`` epochs make at least
    ``min_steps`` steps (small datasets still get enough updates).
    """
    natural = -(-max(1, n_windows // stride) // batch_size)
    return max(1, natural, -(-min_steps // epochs))


def make_batches(
    source: WindowSource,
    batch_size: int,
    stride: int,
    seed: int,
    shuffle: bool,
    steps: int | None = None,
    augment: AugmentConfig | None = None,
) -> Any:
    """A ``tf.data`` pipeline of windows.

    With ``shuffle``, windows are drawn at random from all valid ones: ``steps`` batches per epoch
    from an endless reshuffled stream when ``steps`` is given (pass it to ``fit`` as
    ``steps_per_epoch``), else about ``len(source) / stride`` windows per epoch. Without ``shuffle``
    the same evenly spaced windows are used every time (validation). Windows are cut inside the
    TensorFlow graph from one concatenated array, the same slices :meth:`WindowSource.gather` takes
    (a test checks that). ``augment`` (training batches only) is applied in the graph, seeded.
    """
    import tensorflow as tf

    c = source.contract
    lengths = [x.shape[0] for x in source.x]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    x_all = tf.constant(np.concatenate(source.x))
    y_all = tf.constant(np.concatenate(source.y))
    in_start = offsets[source.seq_index] + source.ends - c.window
    out_start = offsets[source.seq_index] + output_positions(0, c.out_len, c.delay).start + source.ends
    seq_start = offsets[source.seq_index]
    per_epoch = max(1, len(source) // stride)
    picks = np.arange(len(source))
    if not shuffle:
        picks = picks[::stride][:per_epoch]
    ds = tf.data.Dataset.from_tensor_slices(
        (in_start[picks], out_start[picks], source.seq_index[picks], seq_start[picks])
    )
    if shuffle:
        ds = ds.shuffle(len(picks), seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if steps is not None else ds.take(per_epoch)
    in_offsets = tf.range(c.window, dtype=tf.int64)
    out_offsets = tf.range(c.out_len, dtype=tf.int64)
    s_all = tf.constant(np.stack(source.statics()).astype(np.float32)) if source.use_static else None
    augmenter = _Augmenter(augment, c, seed) if (shuffle and augment is not None and augment.enabled) else None

    def cut(batch: Any, in_s: Any, out_s: Any, seq: Any, first: Any) -> Any:
        if augmenter is None:
            x = tf.gather(x_all, in_s[:, None] + in_offsets[None, :])
            y = tf.gather(y_all, out_s[:, None] + out_offsets[None, :])
        else:
            x, y = augmenter(batch, x_all, y_all, in_s, out_s, first)
        inputs = (x, tf.gather(s_all, seq)) if s_all is not None else (x,)
        return inputs, y

    ds = ds.batch(batch_size).enumerate()
    return ds.map(lambda i, t: cut(i, *t), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )


class _Augmenter:
    """Seeded, in-graph augmentation of a batch of windows (see :class:`forcecast.training.config.AugmentConfig`)."""

    def __init__(self, config: AugmentConfig, contract: ModelContract, seed: int) -> None:
        import tensorflow as tf

        self.config = config
        self.window, self.out_len, self.delay = contract.window, contract.out_len, contract.delay
        self.places = len(contract.leg_places)
        self.mean = tf.constant(np.asarray(contract.inputs.mean, dtype=np.float32))
        self.std = tf.constant(np.asarray(contract.inputs.std, dtype=np.float32))
        self.seed = seed

    def _seed(self, batch: Any, salt: int) -> Any:
        import tensorflow as tf

        return tf.stack([tf.constant(self.seed * 1009 + salt, tf.int64), tf.cast(batch, tf.int64)])

    def __call__(self, batch: Any, x_all: Any, y_all: Any, in_s: Any, out_s: Any, first: Any) -> Any:
        import tensorflow as tf

        cfg = self.config
        b = tf.shape(in_s)[0]
        # Positions in float64: exact for any realistic dataset length (float32 is not past 2**24 samples).
        newest = tf.cast(in_s + self.window - 1, tf.float64)
        if cfg.time_warp > 0:
            factor = tf.random.stateless_uniform(
                [b, 1], self._seed(batch, 1), 1 - cfg.time_warp, 1 + cfg.time_warp, dtype=tf.float64
            )
        else:
            factor = tf.ones([b, 1], dtype=tf.float64)
        back_in = tf.range(self.window - 1, -1, -1, dtype=tf.float64)[None, :]
        back_out = tf.range(self.delay + self.out_len - 1, self.delay - 1, -1, dtype=tf.float64)[None, :]
        lowest = tf.cast(first, tf.float64)[:, None]
        x = _interpolate(x_all, tf.maximum(newest[:, None] - factor * back_in, lowest))
        y = _interpolate(y_all, tf.maximum(newest[:, None] - factor * back_out, lowest))
        if cfg.rotation_deg > 0 or cfg.magnitude_sd > 0:
            physical = x * self.std + self.mean
            shaped = tf.reshape(physical, [b, self.window, self.places, 2, 3])
            if cfg.rotation_deg > 0:
                shaped = tf.einsum("bpij,bwpkj->bwpki", self._rotations(batch, b), shaped)
            if cfg.magnitude_sd > 0:
                shaped *= 1.0 + tf.random.stateless_normal(
                    [b, 1, self.places, 2, 1], self._seed(batch, 3), stddev=cfg.magnitude_sd
                )
            x = (tf.reshape(shaped, [b, self.window, self.places * 6]) - self.mean) / self.std
        if cfg.noise_sd > 0:
            x += tf.random.stateless_normal(tf.shape(x), self._seed(batch, 4), stddev=cfg.noise_sd)
        return x, y

    def _rotations(self, batch: Any, b: Any) -> Any:
        """One random rotation per window and sensor (Rodrigues), shape ``(b, places, 3, 3)``."""
        import tensorflow as tf

        axis = tf.random.stateless_normal([b, self.places, 3], self._seed(batch, 2))
        axis /= tf.maximum(tf.norm(axis, axis=-1, keepdims=True), 1e-6)
        limit = float(np.deg2rad(self.config.rotation_deg))
        angle = tf.random.stateless_uniform([b, self.places, 1, 1], self._seed(batch, 5), -limit, limit)
        zero = tf.zeros_like(axis[..., 0])
        ax, ay, az = axis[..., 0], axis[..., 1], axis[..., 2]
        k = tf.stack([tf.stack([zero, -az, ay], -1), tf.stack([az, zero, -ax], -1), tf.stack([-ay, ax, zero], -1)], -2)
        eye = tf.eye(3, batch_shape=[b, self.places])
        return eye + tf.sin(angle) * k + (1.0 - tf.cos(angle)) * tf.matmul(k, k)


def _interpolate(values: Any, positions: Any) -> Any:
    """Rows of ``values`` at fractional ``positions`` (linear; an exact position takes that row as is)."""
    import tensorflow as tf

    low = tf.floor(positions)
    frac = tf.cast(positions - low, values.dtype)[..., None]
    i0 = tf.cast(low, tf.int64)
    i1 = tf.minimum(i0 + 1, tf.cast(tf.shape(values)[0] - 1, tf.int64))
    v0, v1 = tf.gather(values, i0), tf.gather(values, i1)
    return tf.where(frac > 0, v0 * (1.0 - frac) + v1 * frac, v0)


def predict_sequence(
    predict: Predict,
    seq: LegSequence,
    contract: ModelContract,
    use_static: bool,
    batch_size: int = 256,
    streaming: Streaming | None = None,
) -> NDArray[np.float64]:
    """GRF in body weights over a whole sequence, as the device would produce it.

    The device's windows (every ``streaming.hop`` samples of each unbroken run) are blended as the device
    blends them (:func:`forcecast.edge.runtime.inference.blend_windows`); ``streaming`` defaults to the
    device's default settings; ``Streaming.blocks(contract)`` gives non-overlapping blocks tiling time.
    Samples no window covers (the first ``window - delay - out_len``, the last ``delay``, and around
    NaN inputs) are NaN.
    """
    n = seq.inputs.shape[0]
    out = np.full((n, 3), np.nan)
    w, k, d = contract.window, contract.out_len, contract.delay
    finite = np.all(np.isfinite(seq.inputs), axis=1)
    ends = valid_ends(finite, np.ones(n, dtype=bool), w, k, d)
    streaming = streaming or default_streaming(contract)
    ends = device_window_ends(ends, streaming.hop)
    if ends.size == 0:
        return out
    x = contract.inputs.apply(seq.inputs)
    s = (
        static_inputs(contract, seq.static, f"subject {seq.subject_id}")[None, :]
        if (use_static and contract.static)
        else None
    )
    outputs = np.empty((ends.size, k, 3))
    for start in range(0, ends.size, batch_size):
        chunk = ends[start : start + batch_size]
        xb = np.stack([x[e - w : e] for e in chunk])
        sb = None if s is None else np.repeat(s, chunk.size, axis=0).astype(np.float32)
        outputs[start : start + chunk.size] = contract.targets.invert(predict(xb, sb))
    blended = blend_windows(ends, outputs, contract, streaming)
    out[: blended.shape[0]] = blended
    return out
