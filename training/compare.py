"""The model zoo on one split, to see whether each architecture gains from the static features."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from forcecast.edge.config import ConfigError
from forcecast.edge.features import OUTPUT_AXES
from forcecast.training.config import Architecture, TrainConfig
from forcecast.training.data import Progress, load_sequences
from forcecast.training.fit import train

ZOO: tuple[Architecture, ...] = ("cnn_lstm", "lstm", "cnn1d")
OUTPUT_FILES = ("comparison.md", "comparison.csv", "comparison.png")


def parse_models(text: str) -> tuple[Architecture, ...]:
    """The ``--models`` value: comma-separated architectures of :data:`ZOO`, or ``all``; in zoo order.

    Raises
    ------
    ConfigError
        An unknown architecture or an empty list, named with the choices.
    """
    if text.strip() == "all":
        return ZOO
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown or not names:
        what = f"unknown architecture(s) {', '.join(unknown)}" if unknown else "no architecture named"
        raise ConfigError(f"--models {text!r}: {what}; choose from {', '.join(ZOO)} (comma-separated) or 'all'")
    return tuple(m for m in ZOO if m in names)


@dataclass
class Comparison:
    """One row per (architecture, static) with subject-naive metrics, and the split they share."""

    rows: list[dict[str, Any]]
    test_subjects: list[str]
    seed: int

    def to_json(self, out: Path) -> dict[str, Any]:
        """The one object ``compare --json`` prints: rows, test subjects, seed, and the files written."""
        return {
            "rows": self.rows,
            "test_subjects": self.test_subjects,
            "seed": self.seed,
            "files": [str(out / name) for name in OUTPUT_FILES],
            "runs": [str(out / run_name(str(r["model"]), bool(r["static"]))) for r in self.rows],
        }

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


def run_name(architecture: str, use_static: bool) -> str:
    """The run folder of one (architecture, static) pair under the comparison folder."""
    return f"{architecture}{'_static' if use_static else ''}"


def compare(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    progress: Progress | None = None,
    models: tuple[Architecture, ...] = ZOO,
    quiet: bool = False,
) -> Comparison:
    """Train each architecture of ``models`` with and without static features; write the table and a plot.

    Parameters
    ----------
    data_dir, out, config
        Dataset, comparison folder (one run folder per model inside) and base configuration.
    progress
        Progress wrapper for loading; ``None``: none.
    models
        Architectures to train, in order (see :func:`parse_models`).
    quiet
        Print nothing on stdout (``--json``): no run headers, no Keras progress.
    """
    import pandas as pd

    if not models:
        raise ConfigError("compare: no architecture to train (models is empty)")
    loaded = load_sequences(data_dir, config.data, progress)
    rows = []
    for architecture in models:
        for use_static in (True, False):
            run_config = replace(config, model=replace(config.model, architecture=architecture, use_static=use_static))
            name = run_name(architecture, use_static)
            if not quiet:
                print(f"\n== {name} ==", flush=True)
            result = train(data_dir, out / name, run_config, loaded=loaded, verbose=0 if quiet else None)
            axes = result.metrics["subject_naive"]["pooled"]["axes"]
            row: dict[str, object] = {"model": architecture, "static": use_static}
            for axis in OUTPUT_AXES:
                for key in ("r", "rmse_bw", "nrmse_pct"):
                    row[f"{axis}_{key}"] = axes[axis][key]
            row["parameters"] = result.metrics["parameters"]
            row["epochs"] = result.epochs_run
            rows.append(row)
    split = result.metrics["split"]
    comparison = Comparison(rows, list(split["test"]), config.fit.seed)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(
        "# Model comparison (subject-naive test)\n\n"
        f"Test subjects: {', '.join(split['test'])}; same split and seed ({config.fit.seed}) for every model.\n\n"
        + comparison.to_markdown_text()
        + "\n\n![comparison](comparison.png)\n"
    )
    plot(rows, out / "comparison.png", models)
    return comparison


def plot(rows: list[dict[str, Any]], path: Path, models: tuple[Architecture, ...] = ZOO) -> None:
    """Bars of r per axis and ML RMSE, with and without static features, per architecture of ``models``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    x = np.arange(len(models))
    panels = [(f"{a}_r", f"{a} r") for a in OUTPUT_AXES] + [("ml_rmse_bw", "ml RMSE (BW)")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, (use_static, colour) in enumerate(((True, "tab:blue"), (False, "tab:gray"))):
            values = [
                next(float(r[key]) for r in rows if r["model"] == m and r["static"] == use_static) for m in models
            ]
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color=colour, label="with static" if use_static else "IMU only")
        ax.set_xticks(x, models)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if key.endswith("_r"):
            low = min(float(r[key]) for r in rows)
            ax.set_ylim(max(0.0, low - 0.05), 1.0)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
