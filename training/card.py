"""The model card: a run explained to the physiotherapist or researcher who will use the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.contract import ModelContract
from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.card_figures import write_figures
from forcecast.training.config import TrainConfig
from forcecast.training.data import LegSequence, LoadedData
from forcecast.training.metrics import STANCE_THRESHOLD_BW

AXIS_NAMES = {"v": "vertical", "ap": "anterior-posterior", "ml": "medio-lateral (medial +)"}
PLOT_SECONDS = 4.0


def metrics_table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: one per evaluation set, samples (whole-cycle / stance-only) and axis."""
    rows = [
        "| set | samples | axis | r | RMSE (BW) | RMSE (N) | nRMSE (%) | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for which, label in (("axes", "whole-cycle"), ("stance_axes", "stance-only")):
            for axis in OUTPUT_AXES:
                m = result["pooled"].get(which, {}).get(axis)
                if m is None:
                    continue
                rows.append(
                    f"| {name.replace('_', '-')} | {label} | {axis} | {m['r']:.3f} | {m['rmse_bw']:.3f} | "
                    f"{m['rmse_n']:.1f} | {m['nrmse_pct']:.2f} | {m['n_samples']} |"
                )
    return rows


def body_mass_line(loaded: LoadedData) -> str:
    """How many subjects' body mass was measured and how many estimated from the force data.

    Read from the ``body_mass_source`` column (``measured``, ``estimated_force``, ``estimated_standing``...).
    """
    estimated = {
        sid: s.extra["body_mass_source"]
        for sid, s in loaded.subjects.items()
        if s.extra.get("body_mass_source", "").startswith("estimated")
    }
    line = f"- Body mass: measured for {len(loaded.subjects) - len(estimated)} subject(s), estimated from force for "
    line += f"{len(estimated)}" + (
        f" ({', '.join(f'{sid}: {how}' for sid, how in sorted(estimated.items()))})" if estimated else ""
    )
    return line + " (column body_mass_source of subjects.csv)"


def data_notes(metrics: dict[str, Any], contract: ModelContract) -> list[str]:
    """Lines about data left out, padded or neutralised, and how long training ran."""
    lines = []
    dropped = metrics.get("dropped", [])
    if dropped:
        lines.append(f"- Left out of training ({len(dropped)}, named in metrics.json `dropped`):")
        lines += [f"  - {d['sequence']}: {d['reason']}" for d in dropped[:20]]
        if len(dropped) > 20:
            lines.append(f"  - and {len(dropped) - 20} more")
    padded = metrics.get("padded_short_sequences", [])
    if padded:
        lines.append(
            f"- {len(padded)} leg sequence(s) shorter than the window were front-padded with their first sample "
            "(no target there)"
        )
    if metrics.get("imu_only_trials"):
        lines.append(f"- {metrics['imu_only_trials']} IMU-only trial(s) (no force) are not training data")
    for key, text in contract.notes.items():
        if key.startswith("static_"):
            lines.append(f"- Static features: {text}")
    if "gradient_steps" in metrics:
        lines.append(
            f"- Training length: {metrics['gradient_steps']} gradient steps ({metrics['steps_per_epoch']} per epoch); "
            f"augmentation {'on' if metrics.get('augment') else 'off'}"
        )
    lines.append(
        f"- Metrics count known samples only (unknown force is NaN); stance-only = known samples with measured "
        f"vertical force above {STANCE_THRESHOLD_BW:g} BW"
    )
    return lines


def write_model_card(
    out: Path,
    config: TrainConfig,
    contract: ModelContract,
    metrics: dict[str, Any],
    results: dict[str, Any],
    loaded: LoadedData,
) -> Path:
    """Write ``model_card.md`` and its plots into ``out``; returns the card's path."""
    held_out = results.get("subject_naive") or next(iter(results.values()))
    plots = plot_examples(out, held_out)
    figures = write_figures(out, held_out, contract.rate_hz, out / "history.csv")
    split = metrics["split"]
    lines = [
        f"# Model card: {metrics['model']}",
        "",
        "Predicts the 3D ground reaction force of one leg (vertical, anterior-posterior, medial) in body",
        "weights from wearable IMUs" + (" and static knee-alignment features." if contract.static_features else "."),
        "",
        "## Data",
        f"- Dataset: `{loaded.root}`; fingerprint (SHA-256 of subjects.csv and trial files): `{loaded.fingerprint}`",
        f"- Subjects: {len(loaded.subjects)}; leg sequences: {len(loaded.sequences)}",
        body_mass_line(loaded),
        f"- Split by subject (seed {config.fit.seed}): train {', '.join(split['train'])}; validation "
        f"{', '.join(split['val']) or _val_block(split)}; subject-naive test {', '.join(split['test'])}; "
        "subject-exposed "
        f"{', '.join(split['exposed']) or 'none'} (first {config.split.exposed_train_share:.0%} of each trial trained, "
        "rest tested after a one-window gap)",
        *data_notes(metrics, contract),
        "",
        "## Model contract",
        f"- Rate {contract.rate_hz:g} Hz; window {contract.window} samples "
        f"({contract.window / contract.rate_hz:.2f} s); "
        f"{contract.out_len} output samples per inference; output delay {contract.delay} samples "
        f"(latency of the oldest output {1000 * contract.latency_s:.0f} ms before compute)",
        f"- Sensors: {', '.join(contract.leg_places)} ({len(contract.channels)} channels; left-leg data mirrored)",
        f"- Static features: {', '.join(contract.static_features) or 'none'}",
        f"- Parameters: {metrics['parameters']:,}; epochs run: {metrics['epochs_run']} (early stopping on "
        f"validation loss, best weights restored); training time {metrics['seconds']:.0f} s",
        "",
        "## Accuracy (pooled over subjects)",
        "",
        *metrics_table(results),
        "",
    ]
    for name, result in results.items():
        peaks = result["pooled"]["peaks"]
        if peaks["n_steps"]:
            lines.append(
                f"- {name.replace('_', '-')}: vertical peak error per step (mean absolute) first "
                f"{peaks['first_peak_mae_bw']:.3f} BW, second {peaks['second_peak_mae_bw']:.3f} BW "
                f"over {peaks['n_steps']} steps"
            )
    lines += [
        "",
        "## Per subject (subject-naive test)",
        "",
        "| subject | v r | v nRMSE (%) | stance v r | ap r | ml r | ml RMSE (BW) |",
        "|---|---|---|---|---|---|---|",
    ]
    for subject, result in (results.get("subject_naive") or {}).get("per_subject", {}).items():
        a = result["axes"]
        lines.append(
            f"| {subject} | {a['v']['r']:.3f} | {a['v']['nrmse_pct']:.2f} | "
            f"{result.get('stance_axes', a)['v']['r']:.3f} | {a['ap']['r']:.3f} | "
            f"{a['ml']['r']:.3f} | {a['ml']['rmse_bw']:.4f} |"
        )
    held_out_name = "subject-naive test" if "subject_naive" in results else next(iter(results)).replace("_", "-")
    lines += ["", f"## Figures ({held_out_name} subjects)", ""]
    for figure in figures:
        lines += [f"![{figure.path.stem}]({figure.path.name})", "", f"*{figure.caption}*", ""]
    lines += ["## Examples (held-out subjects)", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "## Versions", "", *[f"- {k} {v}" for k, v in metrics["versions"].items()], ""]
    path = out / "model_card.md"
    path.write_text("\n".join(lines))
    return path


def _val_block(split: dict[str, Any]) -> str:
    share = float(split.get("val_block_share", 0.0))
    return f"the last {share:.0%} of each training sequence (two subjects: no one left to validate on)"


def plot_examples(out: Path, result: dict[str, Any], count: int = 2) -> list[Path]:
    """PNG plots of predicted vs measured GRF for a few seconds of walking of held-out subjects."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    walking = [(s, p) for s, p in result["predictions"] if s.trial_id != "static"] or result["predictions"]
    chosen: list[tuple[LegSequence, Any]] = []  # (sequence, its predicted GRF)
    for seq, pred in walking:
        if seq.subject_id not in {s.subject_id for s, _ in chosen}:
            chosen.append((seq, pred))
        if len(chosen) == count:
            break
    for seq, pred in chosen:
        if len(seq.time_s) < 2:
            continue
        n = max(2, int(PLOT_SECONDS * (1.0 / float(np.median(np.diff(seq.time_s))))))
        # Start half a plot after the first prediction, but never so late that the plot would be empty
        # (a trial just over one window has a handful of predicted samples).
        first = int(np.argmax(np.isfinite(pred[:, 0])))
        start = first + n // 2
        if start + n > len(seq.time_s):
            start = max(0, min(first, len(seq.time_s) - n))
        window = slice(start, min(start + n, len(seq.time_s)))
        fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
        t = seq.time_s[window] - seq.time_s[window][0]
        for j, axis in enumerate(OUTPUT_AXES):
            axes[j].plot(t, seq.targets[window, j], color="black", lw=1.6, label="measured")
            axes[j].plot(t, pred[window, j], color="tab:red", lw=1.2, ls="--", label="predicted")
            axes[j].set_ylabel(f"{AXIS_NAMES[axis]}\n(BW)")
            axes[j].grid(alpha=0.3)
        axes[0].legend(loc="upper right")
        axes[0].set_title(f"{seq.subject_id} {seq.trial_id}, {'left' if seq.side == 'l' else 'right'} leg")
        axes[-1].set_xlabel("time (s)")
        fig.tight_layout()
        path = out / f"example_{seq.subject_id}_{seq.trial_id}_{seq.side}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
