"""The model card's figures: loss curves, measured vs predicted, Bland–Altman of peaks, per-subject errors, stances.

Every figure counts known samples only: overground data holds NaN where the force is unknown, and a
prediction is NaN before the first full window.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.data import LegSequence
from forcecast.training.metrics import stances

FloatArray = NDArray[np.float64]
AXIS_LABELS = {"v": "vertical", "ap": "anterior-posterior", "ml": "medio-lateral (medial +)"}
LEG_NAMES = {"l": "left leg (mirrored)", "r": "right leg"}
STANCE_POINTS = 101
MAX_SCATTER_POINTS = 20_000
DPI = 90

LOSS_FILE = "loss_curves.png"
SCATTER_FILE = "measured_vs_predicted.png"
BLAND_ALTMAN_FILE = "bland_altman_first_peak.png"
PER_SUBJECT_FILE = "per_subject_errors.png"
STANCE_FILE = "stance_curves.png"

Predictions = list[tuple[LegSequence, NDArray[np.floating[Any]]]]


@dataclass(frozen=True)
class Figure:
    """One written figure: its file and the caption the card puts under it."""

    path: Path
    caption: str


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def read_history(path: Path) -> dict[str, list[float]]:
    """Columns of a Keras ``history.csv`` (``epoch``, ``loss``, ``val_loss``...) as lists of floats.

    Raises
    ------
    ValueError
        When the file has no ``loss`` column or a cell is not a number (named with its row and column).
    """
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "loss" not in rows[0]:
        raise ValueError(f"{path}: no 'loss' column (a history.csv written by training has epoch, loss, val_loss)")
    columns: dict[str, list[float]] = {name: [] for name in rows[0]}
    for number, row in enumerate(rows, start=2):
        for name, cell in row.items():
            try:
                columns[name].append(float(cell))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {number}, column {name!r}: {cell!r} is not a number") from None
    return columns


def plot_loss(history: dict[str, list[float]], path: Path) -> Path:
    """Training and validation loss (masked MSE, BW²) per epoch, with the best validation epoch marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], "o-", color="tab:blue", label="training")
    if "val_loss" in history:
        val = np.asarray(history["val_loss"])
        ax.plot(epochs, val, "s-", color="tab:orange", label="validation")
        best = int(np.nanargmin(val))
        ax.axvline(epochs[best], color="grey", ls=":", lw=1, label=f"best validation (epoch {epochs[best]})")
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss: masked MSE (BW²)")
    ax.set_title("Loss curves")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def known_pairs(predictions: Predictions) -> tuple[FloatArray, FloatArray]:
    """Measured and predicted samples ``(n, 3)`` (BW) where every axis of both is known."""
    if not predictions:
        return np.empty((0, 3)), np.empty((0, 3))
    measured = np.concatenate([s.targets.astype(np.float64) for s, _ in predictions])
    predicted = np.concatenate([np.asarray(p, np.float64) for _, p in predictions])
    known = np.isfinite(measured).all(axis=1) & np.isfinite(predicted).all(axis=1)
    return measured[known], predicted[known]


def plot_scatter(predictions: Predictions, path: Path, seed: int = 0) -> Path:
    """Measured vs predicted force per axis (known samples, at most 20 000 drawn), identity line and r."""
    plt = _pyplot()
    measured, predicted = known_pairs(predictions)
    if len(measured) > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(measured), MAX_SCATTER_POINTS, replace=False))
        measured, predicted = measured[keep], predicted[keep]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for j, (ax, axis) in enumerate(zip(axes, OUTPUT_AXES, strict=True)):
        m, p = measured[:, j], predicted[:, j]
        if m.size:
            ax.scatter(m, p, s=3, alpha=0.25, color="tab:blue", rasterized=True)
            low, high = float(min(m.min(), p.min())), float(max(m.max(), p.max()))
            ax.plot([low, high], [low, high], color="black", lw=1, label="identity")
            r = float(np.corrcoef(m, p)[0, 1]) if m.size > 1 and m.std() > 0 and p.std() > 0 else float("nan")
            ax.legend(loc="upper left", title=f"r = {r:.3f}, n = {m.size:,}", fontsize=8, title_fontsize=8)
        else:
            ax.text(0.5, 0.5, "no known samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(AXIS_LABELS[axis])
        ax.set_xlabel("measured (BW)")
        ax.set_ylabel("predicted (BW)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def first_peaks(predicted_v: FloatArray, measured_v: FloatArray, rate_hz: float) -> tuple[FloatArray, FloatArray]:
    """Measured and predicted first vertical peak (BW) of each complete stance with a full prediction.

    The first peak is the maximum over the first half of the stance, as in
    :func:`forcecast.training.metrics.peak_errors`.
    """
    measured, predicted = [], []
    for a, b in stances(measured_v, rate_hz):
        p, m = predicted_v[a:b], measured_v[a:b]
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(m))):
            continue
        mid = (b - a) // 2
        measured.append(float(m[:mid].max()))
        predicted.append(float(p[:mid].max()))
    return np.array(measured), np.array(predicted)


def plot_bland_altman(predictions: Predictions, rate_hz: float, path: Path) -> Path:
    """Bland–Altman of the per-step first vertical peak: difference vs mean, bias and 95 % limits of agreement."""
    plt = _pyplot()
    pairs = [
        first_peaks(np.asarray(p[:, 0], np.float64), s.targets[:, 0].astype(np.float64), rate_hz)
        for s, p in predictions
    ]
    measured = np.concatenate([m for m, _ in pairs]) if pairs else np.empty(0)
    predicted = np.concatenate([p for _, p in pairs]) if pairs else np.empty(0)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if measured.size:
        mean, diff = (measured + predicted) / 2, predicted - measured
        bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        ax.axhline(0.0, color="black", lw=0.8)
        ax.scatter(mean, diff, s=12, alpha=0.6, color="tab:blue", label=f"steps (n = {diff.size})")
        ax.axhline(bias, color="tab:red", lw=1.4, label=f"bias {bias:+.3f} BW")
        for sign in (-1, 1):
            ax.axhline(
                bias + sign * 1.96 * sd,
                color="tab:red",
                ls="--",
                lw=1,
                label=f"95% limits ±{1.96 * sd:.3f} BW" if sign > 0 else None,
            )
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no complete stance with a full prediction", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("mean of measured and predicted first peak (BW)")
    ax.set_ylabel("predicted − measured (BW)")
    ax.set_title("Bland–Altman: first vertical peak per step")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_per_subject(per_subject: dict[str, Any], path: Path) -> Path:
    """RMSE (BW) per subject and axis: whole-cycle bars, stance-only as hatched bars beside them."""
    plt = _pyplot()
    subjects = sorted(per_subject)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    x = np.arange(len(subjects))
    for ax, axis in zip(axes, OUTPUT_AXES, strict=True):
        for k, (which, label, style) in enumerate(
            (("axes", "whole-cycle", {}), ("stance_axes", "stance-only", {"hatch": "//", "alpha": 0.6}))
        ):
            values = [float(per_subject[s].get(which, {}).get(axis, {}).get("rmse_bw", np.nan)) for s in subjects]
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color="tab:blue", label=label, **style)
        ax.set_xticks(x, subjects, rotation=45 if len(subjects) > 8 else 0, fontsize=8)
        pad = max(0.0, (3 - len(subjects)) / 2)  # one or two subjects: bars of a readable width, centred
        ax.set_xlim(-0.5 - pad, len(subjects) - 0.5 + pad)
        ax.set_title(AXIS_LABELS[axis])
        ax.set_xlabel("subject")
        ax.set_ylabel("RMSE (BW)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def stance_curves(predictions: Predictions, rate_hz: float, side: str) -> tuple[FloatArray, FloatArray]:
    """Measured and predicted stances of one leg, each resampled to 0–100 % of stance: ``(steps, 101, 3)``."""
    grid = np.linspace(0.0, 1.0, STANCE_POINTS)
    measured, predicted = [], []
    for seq, pred in predictions:
        if seq.side != side:
            continue
        for a, b in stances(seq.targets[:, 0].astype(np.float64), rate_hz):
            m, p = seq.targets[a:b].astype(np.float64), np.asarray(pred[a:b], np.float64)
            if not (np.isfinite(m).all() and np.isfinite(p).all()):
                continue
            t = np.linspace(0.0, 1.0, b - a)
            measured.append(np.stack([np.interp(grid, t, m[:, j]) for j in range(3)], axis=1))
            predicted.append(np.stack([np.interp(grid, t, p[:, j]) for j in range(3)], axis=1))
    empty = np.empty((0, STANCE_POINTS, 3))
    return (np.array(measured) if measured else empty), (np.array(predicted) if predicted else empty)


def plot_stances(predictions: Predictions, rate_hz: float, path: Path) -> Path:
    """Mean ± SD stance curves, measured vs predicted, one panel per axis (rows) and leg (columns)."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(10, 8), sharex=True, squeeze=False)
    percent = np.linspace(0.0, 100.0, STANCE_POINTS)
    for col, side in enumerate(("l", "r")):
        measured, predicted = stance_curves(predictions, rate_hz, side)
        for row, axis in enumerate(OUTPUT_AXES):
            ax = axes[row][col]
            if len(measured):
                for curves, label, colour, ls in (
                    (measured, "measured", "black", "-"),
                    (predicted, "predicted", "tab:red", "--"),
                ):
                    mean, sd = curves[:, :, row].mean(axis=0), curves[:, :, row].std(axis=0)
                    ax.plot(percent, mean, color=colour, ls=ls, lw=1.5, label=f"{label} mean ± SD")
                    ax.fill_between(percent, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
            else:
                ax.text(0.5, 0.5, "no complete stance", ha="center", va="center", transform=ax.transAxes)
            ax.set_ylabel(f"{AXIS_LABELS[axis]}\n(BW)", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{LEG_NAMES[side]}: {len(measured)} stance(s)")
        axes[2][col].set_xlabel("stance (%)")
    axes[0][0].legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def write_figures(out: Path, result: dict[str, Any], rate_hz: float, history: Path | None) -> list[Figure]:
    """Write every card figure for one evaluation ``result`` (held-out subjects) into ``out``.

    Parameters
    ----------
    out
        The run folder.
    result
        An :func:`forcecast.training.evaluate.evaluate_sequences` result (``predictions``, ``per_subject``).
    rate_hz
        Sample rate of the sequences (stance durations and peaks).
    history
        The run's ``history.csv``; ``None`` or a missing file: no loss curves.

    Returns
    -------
    list of Figure
        The files written, each with its caption, in card order.
    """
    predictions: Predictions = result["predictions"]
    figures = []
    if history is not None and history.is_file():
        figures.append(
            Figure(
                plot_loss(read_history(history), out / LOSS_FILE),
                "Training and validation loss per epoch (masked MSE, BW², log scale).",
            )
        )
    figures += [
        Figure(
            plot_scatter(predictions, out / SCATTER_FILE),
            "Measured vs predicted force per axis, known samples of the held-out subjects (BW).",
        ),
        Figure(
            plot_bland_altman(predictions, rate_hz, out / BLAND_ALTMAN_FILE),
            "Bland–Altman of the first vertical peak of each step: bias and 95 % limits of agreement (BW).",
        ),
        Figure(
            plot_per_subject(result["per_subject"], out / PER_SUBJECT_FILE),
            "RMSE per held-out subject and axis, whole-cycle and stance-only (BW).",
        ),
        Figure(
            plot_stances(predictions, rate_hz, out / STANCE_FILE),
            "Mean ± SD over steps of stance, 0–100 %, measured vs predicted, per axis and leg (BW; left mirrored).",
        ),
    ]
    return figures
