"""Windows over leg sequences: which ones are valid, and batches of them for Keras.

A window ending at sample ``e`` (exclusive) holds inputs ``[e - window, e)`` and is trained to output
the GRF at ``edge.features.output_positions(e, out_len, delay)``. Windows touching a NaN input or
target are never used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.contract import ModelContract
from edge.features import output_positions
from training.data import LegSequence

Predict = Callable[[NDArray[np.float32], NDArray[np.float32] | None], NDArray[np.float32]]
"""``(x (b, window, c), static (b, s) or None) -> normalised outputs (b, out_len, 3)``."""


def valid_ends(
    inputs_ok: NDArray[np.bool_], targets_ok: NDArray[np.bool_], window: int, out_len: int, delay: int
) -> NDArray[np.int64]:
    """Window ends ``e`` (exclusive) whose inputs and target block are all finite."""
    n = inputs_ok.size
    if n < window:
        return np.empty(0, dtype=np.int64)
    bad_in = np.concatenate([[0], np.cumsum(~inputs_ok)])
    bad_out = np.concatenate([[0], np.cumsum(~targets_ok)])
    ends = np.arange(window, n + 1)
    clean_in = bad_in[ends] - bad_in[ends - window] == 0
    block_stop = ends - delay
    clean_out = bad_out[block_stop] - bad_out[block_stop - out_len] == 0
    return ends[clean_in & clean_out]


class WindowSource:
    """Normalised sequences and every valid window in them."""

    def __init__(self, sequences: list[LegSequence], contract: ModelContract, use_static: bool) -> None:
        self.contract = contract
        self.use_static = use_static
        self.x = [contract.inputs.apply(s.inputs) for s in sequences]
        self.y = [contract.targets.apply(s.targets) for s in sequences]
        self.s = [contract.static.apply(s.static) if (use_static and contract.static) else None for s in sequences]
        seq_index, ends = [], []
        for i, seq in enumerate(sequences):
            e = valid_ends(
                np.all(np.isfinite(seq.inputs), axis=1),
                np.all(np.isfinite(seq.targets), axis=1),
                contract.window,
                contract.out_len,
                contract.delay,
            )
            seq_index.append(np.full(e.size, i))
            ends.append(e)
        self.seq_index = np.concatenate(seq_index) if seq_index else np.empty(0, dtype=np.int64)
        self.ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends.size)

    def gather(self, picks: NDArray[np.int64]) -> tuple[tuple[NDArray[np.float32], ...], NDArray[np.float32]]:
        """Model inputs and targets of the windows ``picks`` (indices into the valid windows)."""
        w = self.contract.window
        xs, ys, ss = [], [], []
        for k in picks:
            i, e = int(self.seq_index[k]), int(self.ends[k])
            xs.append(self.x[i][e - w : e])
            ys.append(self.y[i][output_positions(e, self.contract.out_len, self.contract.delay)])
            if self.use_static:
                ss.append(self.s[i])
        x = np.stack(xs)
        inputs = (x, np.stack(ss).astype(np.float32)) if self.use_static else (x,)
        return inputs, np.stack(ys)


def make_batches(source: WindowSource, batch_size: int, stride: int, seed: int, shuffle: bool) -> Any:
    """A ``tf.data`` pipeline of about ``len(source) / stride`` windows per epoch.

    With ``shuffle``, each epoch draws fresh random windows from all valid ones (so the whole
    recording is used over a few epochs); without it the same evenly spaced windows are used every
    time (validation). Windows are cut inside the TensorFlow graph from one concatenated array, the
    same slices :meth:`WindowSource.gather` takes (a test checks that).
    """
    import tensorflow as tf

    c = source.contract
    lengths = [x.shape[0] for x in source.x]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    x_all = tf.constant(np.concatenate(source.x))
    y_all = tf.constant(np.concatenate(source.y))
    in_start = offsets[source.seq_index] + source.ends - c.window
    out_start = offsets[source.seq_index] + output_positions(0, c.out_len, c.delay).start + source.ends
    per_epoch = max(1, len(source) // stride)
    picks = np.arange(len(source))
    if not shuffle:
        picks = picks[::stride][:per_epoch]
    ds = tf.data.Dataset.from_tensor_slices((in_start[picks], out_start[picks], source.seq_index[picks]))
    if shuffle:
        ds = ds.shuffle(len(picks), seed=seed, reshuffle_each_iteration=True).take(per_epoch)
    in_offsets = tf.range(c.window, dtype=tf.int64)
    out_offsets = tf.range(c.out_len, dtype=tf.int64)
    s_all = tf.constant(np.stack(source.s).astype(np.float32)) if source.use_static else None

    def cut(in_s: Any, out_s: Any, seq: Any) -> Any:
        x = tf.gather(x_all, in_s[:, None] + in_offsets[None, :])
        y = tf.gather(y_all, out_s[:, None] + out_offsets[None, :])
        inputs = (x, tf.gather(s_all, seq)) if s_all is not None else (x,)
        return inputs, y

    return ds.batch(batch_size).map(cut, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def predict_sequence(
    predict: Predict, seq: LegSequence, contract: ModelContract, use_static: bool, batch_size: int = 256
) -> NDArray[np.float64]:
    """GRF in body weights over a whole sequence, as the device would produce it (blocks tiling time).

    Samples no window covers (the first ``window - delay - out_len``, the last ``delay``, and around
    NaN inputs) are NaN.
    """
    n = seq.inputs.shape[0]
    out = np.full((n, 3), np.nan)
    w, k, d = contract.window, contract.out_len, contract.delay
    finite = np.all(np.isfinite(seq.inputs), axis=1)
    ends = valid_ends(finite, np.ones(n, dtype=bool), w, k, d)
    ends = ends[(ends - w) % k == 0]
    if ends.size == 0:
        return out
    x = contract.inputs.apply(seq.inputs)
    s = contract.static.apply(seq.static)[None, :] if (use_static and contract.static) else None
    for start in range(0, ends.size, batch_size):
        chunk = ends[start : start + batch_size]
        xb = np.stack([x[e - w : e] for e in chunk])
        sb = None if s is None else np.repeat(s, chunk.size, axis=0).astype(np.float32)
        yb = contract.targets.invert(predict(xb, sb))
        for e, y in zip(chunk, yb, strict=True):
            out[output_positions(int(e), k, d)] = y
    return out
