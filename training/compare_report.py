"""The model comparison's summary: one row per architecture × static variant × delay, the Pareto front, files.

Accuracy is subject-naive, from the cross-validation folds (:func:`forcecast.training.cv_report.summarise_cv`):
per axis, pooled over all folds' test predictions (``v_r``...) and mean ± SD over folds (``v_r_mean``,
``v_r_sd``...). The int8 figures come from each row's first fold (:mod:`forcecast.training.int8_bench`).
The latency of a row is its algorithmic delay (the device's oldest-output latency) plus the p99 int8
inference time on this CPU, in the invoking thread's CPU time (the interpreter runs on that one thread), so
that other processes on a shared machine do not decide the front; wall-clock p50/p99 are reported beside it.
Its error is the pooled vertical nRMSE. The rows that no other row beats on
both are the Pareto front.

Files: ``comparison.json`` (what ``compare --json`` prints), ``comparison.csv`` (the rows),
``comparison.md`` (tables and figures), ``comparison.png`` (accuracy per axis with and without the static
features, per architecture) and ``pareto.png`` (error against latency, the front as a step line).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.architectures import REGISTRY
from forcecast.training.compare import Group
from forcecast.training.cv import Task, write_atomic
from forcecast.training.cv_report import summarise_cv
from forcecast.training.pareto import pareto_front

METRICS = ("r", "rmse_bw", "nrmse_pct")
ERROR_KEY = "v_nrmse_pct"
"""The Pareto front's error axis: vertical nRMSE %, pooled over folds."""
LATENCY_KEY = "latency_ms"
OUTPUT_FILES = ("comparison.json", "comparison.csv", "comparison.md", "comparison.png", "pareto.png")
ROW_KEYS = (
    "model",
    "static",
    "delay",
    "parameters",
    "epochs_run_mean",
    "folds",
    *(f"{a}_{m}{s}" for a in OUTPUT_AXES for m in METRICS for s in ("", "_mean", "_sd")),
    "mean_r",
    "deployable",
    "not_deployable_reason",
    "int8_bytes",
    "int8_from_run",
    "inference_p50_ms",
    "inference_p99_ms",
    "inference_cpu_p50_ms",
    "inference_cpu_p99_ms",
    "algorithmic_delay_ms",
    "newest_output_delay_ms",
    LATENCY_KEY,
    "int8_v_r",
    "int8_v_nrmse_pct",
    "float_ops",
    "on_pareto_front",
)


def row(group: Group, members: list[Task], results: dict[str, dict[str, Any]], int8: dict[str, Any]) -> dict[str, Any]:
    """One row of the comparison (keys :data:`ROW_KEYS`; ``None`` where a figure does not exist)."""
    accuracy = summarise_cv(members, results, {})
    pooled = accuracy["pooled"][group.variant]["axes"]
    spread = accuracy["mean_sd"][group.variant]["axes"]
    metrics = json.loads((Path(members[0].folder) / "run" / "metrics.json").read_text())
    out: dict[str, Any] = {
        "model": group.model,
        "static": group.use_static,
        "delay": group.delay,
        "parameters": int(metrics["parameters"]),
        "epochs_run_mean": round(sum(results[t.name]["epochs_run"] for t in members) / len(members), 2),
        "folds": len(members),
    }
    for axis in OUTPUT_AXES:
        for metric in METRICS:
            out[f"{axis}_{metric}"] = pooled[axis][metric]
            out[f"{axis}_{metric}_mean"] = spread[axis][metric]["mean"]
            out[f"{axis}_{metric}_sd"] = spread[axis][metric]["sd"]
    out["mean_r"] = round(sum(float(pooled[a]["r"]) for a in OUTPUT_AXES) / len(OUTPUT_AXES), 4)
    deployable = bool(int8["deployable"])
    inference = int8.get("inference_ms", {})
    cpu = int8.get("inference_cpu_ms", {})
    delay_ms = int8.get("algorithmic_delay_ms", {})
    out.update(
        deployable=deployable,
        not_deployable_reason=int8.get("reason") or None,
        int8_bytes=int8.get("int8_bytes"),
        int8_from_run=int8["from_run"],
        inference_p50_ms=inference.get("p50"),
        inference_p99_ms=inference.get("p99"),
        inference_cpu_p50_ms=cpu.get("p50"),
        inference_cpu_p99_ms=cpu.get("p99"),
        algorithmic_delay_ms=delay_ms.get("oldest_output"),
        newest_output_delay_ms=delay_ms.get("newest_output"),
        latency_ms=round(delay_ms["oldest_output"] + cpu["p99"], 3) if deployable else None,
        int8_v_r=int8["int8_axes"]["v"]["r"] if deployable else None,
        int8_v_nrmse_pct=int8["int8_axes"]["v"]["nrmse_pct"] if deployable else None,
        float_ops=" ".join(int8.get("float_ops", [])) if deployable else None,
        on_pareto_front=False,
    )
    return out


def _number(value: Any) -> float:
    """A row's figure as a float, NaN where it is missing."""
    return float(value) if value is not None else math.nan


def summarise(
    groups: dict[Group, list[Task]],
    results: dict[str, dict[str, Any]],
    int8: dict[Group, dict[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The whole summary (what ``comparison.json`` holds): ``meta``, the rows, the Pareto front, the registry."""
    rows = [row(group, members, results, int8[group]) for group, members in groups.items()]
    front = pareto_front([(_number(r[LATENCY_KEY]), _number(r[ERROR_KEY])) for r in rows])
    for i in front:
        rows[i]["on_pareto_front"] = True
    models = list(dict.fromkeys(r["model"] for r in rows))
    return {
        "complete": True,
        **meta,
        "architectures": {
            name: {
                "description": REGISTRY[name].description,
                "reference": REGISTRY[name].reference,
                "deployable": REGISTRY[name].deployable,
                "not_deployable_reason": REGISTRY[name].not_deployable_reason or None,
            }
            for name in models
        },
        "rows": rows,
        "pareto_axes": {
            "x": f"{LATENCY_KEY}: algorithmic delay (oldest output of a block) + int8 inference p99 on this CPU "
            "(thread CPU time, one interpreter thread), ms",
            "y": f"{ERROR_KEY}: vertical nRMSE %, subject-naive, pooled over folds",
        },
        "pareto_front": [
            {k: rows[i][k] for k in ("model", "static", "delay", LATENCY_KEY, ERROR_KEY, "v_r", "int8_bytes")}
            for i in front
        ],
    }


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV, columns :data:`ROW_KEYS` (missing figures blank)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ROW_KEYS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r[k] is None else r[k] for k in ROW_KEYS})
    return buffer.getvalue()


def _cell(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """The comparison as Markdown: setup, the table, the Pareto front, what is not deployable, the figures."""
    rows = summary["rows"]
    lines = [
        f"# Model comparison ({summary['folds_spec']}, {summary['n_subjects']} subjects)",
        "",
        f"Data `{summary['data']}` (fingerprint `{summary['data_fingerprint_sha256'][:16]}...`), seed "
        f"{summary['seed']}. Accuracy is subject-naive: pooled over all folds' test predictions, r also as mean ± SD "
        "over folds. int8 figures from each row's first fold, timed with the device's interpreter (one thread, "
        f"{summary['machine']['invocations']} calls) on this CPU ({summary['machine']['cpus']} cores); p50/p99 in "
        "wall-clock time, CPU p99 in the thread's CPU time. Latency = algorithmic delay (oldest output of a "
        "block) + CPU p99.",
        "",
        "| model | static | delay | params | v r | ap r | ml r | v nRMSE % | ap nRMSE % | ml nRMSE % | int8 KB "
        "| p50 ms | p99 ms | CPU p99 ms | alg. delay ms | latency ms | front |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rs = " | ".join(f"{r[f'{a}_r']:.3f} ± {r[f'{a}_r_sd']:.3f}" for a in OUTPUT_AXES)
        nrmse = " | ".join(f"{r[f'{a}_nrmse_pct']:.1f}" for a in OUTPUT_AXES)
        size = "–" if r["int8_bytes"] is None else f"{r['int8_bytes'] / 1024:.0f}"
        lines.append(
            f"| {r['model']} | {'yes' if r['static'] else 'no'} | {r['delay']} | {r['parameters']:,} | {rs} | {nrmse} "
            f"| {size} | {_cell(r['inference_p50_ms'], 3)} | {_cell(r['inference_p99_ms'], 3)} "
            f"| {_cell(r['inference_cpu_p99_ms'], 3)} "
            f"| {_cell(r['algorithmic_delay_ms'], 0)} | {_cell(r[LATENCY_KEY], 1)} "
            f"| {'★' if r['on_pareto_front'] else ''} |"
        )
    lines += ["", "Pareto front (no other row has both lower latency and lower vertical nRMSE):", ""]
    lines += [
        f"- {p['model']} {'with' if p['static'] else 'without'} static, delay {p['delay']}: "
        f"{p[LATENCY_KEY]:.1f} ms, vertical nRMSE {p[ERROR_KEY]:.2f} %"
        for p in summary["pareto_front"]
    ]
    blocked = [r for r in rows if not r["deployable"]]
    if blocked:
        lines += ["", "Not deployable (no int8 figures):", ""]
        lines += [f"- {r['model']} (delay {r['delay']}): {r['not_deployable_reason']}" for r in blocked]
    lines += ["", "![accuracy per axis](comparison.png)", "", "![accuracy against latency](pareto.png)", ""]
    return "\n".join(lines)


def plot_accuracy(rows: list[dict[str, Any]], path: Path, delay: int) -> None:
    """Bars of pooled r per axis and vertical nRMSE, with and without static features, per architecture.

    The rows of output delay ``delay``; error bars are the SD over folds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mine = [r for r in rows if r["delay"] == delay]
    models = list(dict.fromkeys(r["model"] for r in mine))
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.0))
    x = np.arange(len(models))
    panels = [(f"{a}_r", f"{a} r (pooled; bars ± SD over folds)") for a in OUTPUT_AXES]
    panels.append((ERROR_KEY, "v nRMSE % (lower is better)"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, (use_static, colour, label) in enumerate(
            ((True, "tab:blue", "with static"), (False, "tab:gray", "IMU only"))
        ):
            by_model = {r["model"]: r for r in mine if r["static"] == use_static}
            if not by_model:
                continue
            values = [by_model[m][key] if m in by_model else np.nan for m in models]
            errors = [by_model[m][f"{key}_sd"] if m in by_model else 0.0 for m in models]
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, yerr=errors, capsize=2, color=colour, label=label)
        ax.set_xticks(x, models, rotation=45, ha="right")
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if key.endswith("_r"):
            low = min(float(r[key]) - float(r[f"{key}_sd"]) for r in mine)
            ax.set_ylim(max(-1.0, low - 0.05) if low < 0.05 else low - 0.05, 1.0)
            ax.axhline(0.0, color="black", linewidth=0.6)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Subject-naive accuracy by architecture (output delay {delay} samples)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pareto(summary: dict[str, Any], path: Path) -> None:
    """Vertical nRMSE against latency, one point per row; the Pareto front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["rows"] if r[LATENCY_KEY] is not None]
    models = list(dict.fromkeys(r["model"] for r in summary["rows"]))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for r in rows:
        ax.scatter(
            r[LATENCY_KEY],
            r[ERROR_KEY],
            s=46,
            marker="o" if r["static"] else "s",
            facecolors=colours[r["model"]] if r["static"] else "none",
            edgecolors=colours[r["model"]],
            linewidths=1.4,
            zorder=3,
        )
        ax.annotate(
            f"d{r['delay']}", (r[LATENCY_KEY], r[ERROR_KEY]), textcoords="offset points", xytext=(4, 3), fontsize=7
        )
    front = summary["pareto_front"]
    if front:
        xs = [p[LATENCY_KEY] for p in front]
        ys = [p[ERROR_KEY] for p in front]
        ax.step(xs, ys, where="post", color="black", linewidth=1.2, zorder=2, label="Pareto front")
        ax.scatter(xs, ys, s=140, facecolors="none", edgecolors="black", linewidths=1.0, zorder=4)
    for m in models:
        ax.scatter([], [], color=colours[m], marker="o", label=m)
    ax.scatter([], [], color="black", marker="o", label="with static (filled circle)")
    ax.scatter([], [], facecolors="none", edgecolors="black", marker="s", label="IMU only (open square)")
    ax.set_xlabel("latency: algorithmic delay + int8 inference p99 on this CPU (thread CPU time, ms)")
    ax.set_ylabel("vertical nRMSE % (subject-naive, pooled over folds)")
    ax.set_title("Accuracy–latency trade-off across architectures and output delays (d = delay in samples)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    """Every file of :data:`OUTPUT_FILES` in ``out`` (text files atomically); ``summary['files']`` names them."""
    summary["files"] = [str(out / name) for name in OUTPUT_FILES]
    delays = summary["delays"]
    base = summary["config"]["data"]["delay"]
    plot_accuracy(summary["rows"], out / "comparison.png", base if base in delays else delays[0])
    plot_pareto(summary, out / "pareto.png")
    write_atomic(out / "comparison.csv", csv_text(summary["rows"]))
    write_atomic(out / "comparison.md", markdown(summary))
    write_atomic(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
