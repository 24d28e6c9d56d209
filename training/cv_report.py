"""Cross-validation summary: per-fold, pooled and mean ± SD metrics, with vs without static features.

- *Per fold*: each fold's subject-naive metrics as its training run reported them.
- *Pooled*: the metrics over all folds' test predictions concatenated (every subject once per variant).
- *Mean ± SD*: over folds, per axis and metric; SD is the sample SD (n − 1), NaN folds left out (the
  count says how many folds entered).
- *Static effect*: per fold, the with-static minus without-static difference, then its mean ± SD.

Whole-cycle (``axes``) and, where the metrics have them, stance-only (``stance_axes``) figures.
Written as ``OUT/cv.json``, ``OUT/cv.csv`` (one row per fold × variant) and ``OUT/cv.md``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.cv import PREDICTIONS_FILE, Task, write_atomic
from forcecast.training.metrics import summarise

BLOCKS = ("axes", "stance_axes")
"""Whole-cycle and stance-only metric blocks (stance-only only where :mod:`forcecast.training.metrics` has it)."""
SUMMARY_METRICS = ("r", "nrmse_pct", "rmse_bw", "rmse_n")
BLOCK_PREFIX = {"axes": "", "stance_axes": "stance_"}


def mean_sd(values: list[float]) -> dict[str, float | int]:
    """Mean and sample SD (n − 1) of the finite values; ``n`` is how many there were."""
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    sd = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    return {"mean": round(float(np.mean(finite)), 5), "sd": round(sd, 5), "n": int(finite.size)}


def fold_blocks(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """A fold result's pooled subject-naive metric blocks that exist (``axes``, maybe ``stance_axes``)."""
    pooled = result["subject_naive"]["pooled"]
    return {b: pooled[b] for b in BLOCKS if b in pooled}


def load_predictions(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Per-sequence predicted and measured force (BW) and body weights of one fold's test set."""
    with np.load(folder / PREDICTIONS_FILE) as data:
        cuts = np.cumsum(data["lengths"])[:-1]
        predicted = np.split(data["predicted"], cuts)
        measured = np.split(data["measured"], cuts)
        weights = [float(w) for w in data["body_weight_n"]]
    return predicted, measured, weights


def summarise_cv(tasks: list[Task], results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole summary (what ``cv.json`` holds) from every task's result and predictions."""
    variants = list(dict.fromkeys(t.variant for t in tasks))
    rate_hz = tasks[0].config.data.rate_hz
    per_fold = []
    pooled: dict[str, Any] = {}
    folds_mean_sd: dict[str, Any] = {}
    for variant in variants:
        mine = [t for t in tasks if t.variant == variant]
        predicted: list[np.ndarray] = []
        measured: list[np.ndarray] = []
        weights: list[float] = []
        for task in mine:
            result = results[task.name]
            per_fold.append(
                {
                    "fold": task.fold.name,
                    "variant": variant,
                    "test_subjects": list(task.fold.test),
                    "epochs_run": result["epochs_run"],
                    "seconds": result["seconds"],
                    **fold_blocks(result),
                }
            )
            p, m, w = load_predictions(Path(task.folder))
            predicted += p
            measured += m
            weights += w
        summary = summarise(predicted, measured, weights, rate_hz)
        pooled[variant] = {k: v for k, v in summary.items() if k in (*BLOCKS, "peaks")}
        blocks = [b for b in BLOCKS if all(b in row for row in per_fold if row["variant"] == variant)]
        folds_mean_sd[variant] = {
            block: {
                axis: {
                    metric: mean_sd([row[block][axis][metric] for row in per_fold if row["variant"] == variant])
                    for metric in SUMMARY_METRICS
                }
                for axis in OUTPUT_AXES
            }
            for block in blocks
        }
    return {
        **meta,
        "variants": variants,
        "folds": [{"name": t.fold.name, "test": list(t.fold.test)} for t in tasks if t.variant == variants[0]],
        "mean_sd": folds_mean_sd,
        "pooled": pooled,
        "static_effect": static_effect(per_fold) if set(variants) == {"static", "imu"} else None,
        "per_fold": per_fold,
    }


def static_effect(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Per axis and block: mean ± SD over folds of (with static − without static) for r and nRMSE."""
    by_fold: dict[str, dict[str, Any]] = {}
    for row in per_fold:
        by_fold.setdefault(row["fold"], {})[row["variant"]] = row
    pairs = [(v["static"], v["imu"]) for v in by_fold.values() if {"static", "imu"} <= set(v)]
    out: dict[str, Any] = {}
    for block in BLOCKS:
        if not all(block in a and block in b for a, b in pairs):
            continue
        out[block] = {
            axis: {
                f"delta_{metric}": mean_sd([a[block][axis][metric] - b[block][axis][metric] for a, b in pairs])
                for metric in ("r", "nrmse_pct")
            }
            for axis in OUTPUT_AXES
        }
    return out


def csv_text(per_fold: list[dict[str, Any]]) -> str:
    """One row per fold × variant: fold, variant, test subjects, epochs, seconds, metrics per block and axis."""
    columns = ["fold", "variant", "test_subjects", "epochs_run", "seconds"]
    for block in BLOCKS:
        if any(block in row for row in per_fold):
            columns += [f"{BLOCK_PREFIX[block]}{a}_{m}" for a in OUTPUT_AXES for m in SUMMARY_METRICS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in per_fold:
        flat: dict[str, Any] = {k: row[k] for k in ("fold", "variant", "epochs_run", "seconds")}
        flat["test_subjects"] = " ".join(row["test_subjects"])
        for block in BLOCKS:
            for axis in OUTPUT_AXES:
                for metric in SUMMARY_METRICS:
                    if block in row:
                        flat[f"{BLOCK_PREFIX[block]}{axis}_{metric}"] = row[block][axis][metric]
        writer.writerow(flat)
    return buffer.getvalue()


def markdown(summary: dict[str, Any]) -> str:
    """A short Markdown report: mean ± SD over folds and pooled, per variant, block and axis."""
    lines = [
        f"# Cross-validation by subject ({summary['folds_spec']}, {len(summary['folds'])} folds)",
        "",
        f"Data `{summary['data']}` (fingerprint `{summary['data_fingerprint_sha256'][:16]}...`); "
        f"{summary['n_subjects']} subjects; subject-naive test in every fold. Mean ± SD over folds "
        "(sample SD); pooled = all folds' test predictions together.",
        "",
        "| variant | samples | axis | r mean ± SD | nRMSE % mean ± SD | RMSE BW mean ± SD | pooled r "
        "| pooled nRMSE % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in summary["variants"]:
        for block, stats in summary["mean_sd"][variant].items():
            label = "whole cycle" if block == "axes" else "stance only"
            for axis in OUTPUT_AXES:
                s, p = stats[axis], summary["pooled"][variant][block][axis]
                lines.append(
                    f"| {variant} | {label} | {axis} | {_pm(s['r'], 3)} | {_pm(s['nrmse_pct'], 1)} | "
                    f"{_pm(s['rmse_bw'], 3)} | {p['r']:.3f} | {p['nrmse_pct']:.1f} |"
                )
    effect = summary.get("static_effect")
    if effect and "axes" in effect:
        lines += ["", "Static features, with minus without (mean ± SD over folds, whole cycle): "]
        lines[-1] += "; ".join(
            f"{a} Δr {_pm(effect['axes'][a]['delta_r'], 3)}, ΔnRMSE {_pm(effect['axes'][a]['delta_nrmse_pct'], 1)} pp"
            for a in OUTPUT_AXES
        )
    lines += [
        "",
        "| fold | test | variant | v r | ap r | ml r | v nRMSE % | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["per_fold"]:
        axes = row["axes"]
        lines.append(
            f"| {row['fold']} | {' '.join(row['test_subjects'])} | {row['variant']} | {axes['v']['r']:.3f} | "
            f"{axes['ap']['r']:.3f} | {axes['ml']['r']:.3f} | {axes['v']['nrmse_pct']:.1f} | {row['epochs_run']} |"
        )
    return "\n".join(lines) + "\n"


def _pm(stat: dict[str, float], digits: int) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``cv.json``, ``cv.csv`` and ``cv.md`` in ``out`` (each written atomically)."""
    write_atomic(out / "cv.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "cv.csv", csv_text(summary["per_fold"]))
    write_atomic(out / "cv.md", markdown(summary))
