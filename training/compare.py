"""The model zoo on one split, to see whether each architecture gains from the static features."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.config import Architecture, TrainConfig
from forcecast.training.data import Progress, load_sequences
from forcecast.training.fit import train

ZOO: tuple[Architecture, ...] = ("cnn_lstm", "lstm", "cnn1d")


@dataclass
class Comparison:
    """One row per (architecture, static) with subject-naive metrics."""

    rows: list[dict[str, Any]]

    def to_markdown_text(self) -> str:
        """A Markdown table."""
        header = ["model", "static"] + [f"{a} {m}" for a in OUTPUT_AXES for m in ("r", "RMSE BW", "nRMSE %")]
        header += ["params", "epochs"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [str(row["model"]), "yes" if row["static"] else "no"]
            for axis in OUTPUT_AXES:
                cells += [f"{row[f'{axis}_r']:.3f}", f"{row[f'{axis}_rmse_bw']:.4f}", f"{row[f'{axis}_nrmse_pct']:.2f}"]
            cells += [f"{row['parameters']:,}", str(row["epochs"])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare(data_dir: Path, out: Path, config: TrainConfig, progress: Progress | None = None) -> Comparison:
    """Train every architecture with and without static features; write the table and a plot."""
    import pandas as pd

    loaded = load_sequences(data_dir, config.data, progress)
    rows = []
    for architecture in ZOO:
        for use_static in (True, False):
            run_config = replace(config, model=replace(config.model, architecture=architecture, use_static=use_static))
            name = f"{architecture}{'_static' if use_static else ''}"
            print(f"\n== {name} ==", flush=True)
            result = train(data_dir, out / name, run_config, loaded=loaded)
            axes = result.metrics["subject_naive"]["pooled"]["axes"]
            row: dict[str, object] = {"model": architecture, "static": use_static}
            for axis in OUTPUT_AXES:
                for key in ("r", "rmse_bw", "nrmse_pct"):
                    row[f"{axis}_{key}"] = axes[axis][key]
            row["parameters"] = result.metrics["parameters"]
            row["epochs"] = result.epochs_run
            rows.append(row)
    comparison = Comparison(rows)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "comparison.csv", index=False)
    split = result.metrics["split"]
    (out / "comparison.md").write_text(
        "# Model comparison (subject-naive test)\n\n"
        f"Test subjects: {', '.join(split['test'])}; same split and seed ({config.fit.seed}) for every model.\n\n"
        + comparison.to_markdown_text()
        + "\n\n![comparison](comparison.png)\n"
    )
    plot(rows, out / "comparison.png")
    return comparison


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars of r per axis and ML RMSE, with and without static features, per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    x = np.arange(len(ZOO))
    panels = [(f"{a}_r", f"{a} r") for a in OUTPUT_AXES] + [("ml_rmse_bw", "ml RMSE (BW)")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, (use_static, colour) in enumerate(((True, "tab:blue"), (False, "tab:gray"))):
            values = [next(float(r[key]) for r in rows if r["model"] == m and r["static"] == use_static) for m in ZOO]
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color=colour, label="with static" if use_static else "IMU only")
        ax.set_xticks(x, ZOO)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if key.endswith("_r"):
            low = min(float(r[key]) for r in rows)
            ax.set_ylim(max(0.0, low - 0.05), 1.0)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
