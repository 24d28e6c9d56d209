"""The tiny training configuration and CLI call shared by the training tests (a few seconds of CPU a run)."""

from __future__ import annotations

from pathlib import Path

from forcecast.cli import main

_TINY_BASE = """
[data]
window = 32
out_len = 4
delay = 2
train_stride = 4
[model]
conv_filters = [4, 8]
lstm_units = 8
static_units = 4
dense_units = 16
[fit]
epochs = 2
batch_size = 64
patience = 2
"""


def tiny_toml(min_steps: int) -> str:
    """The tiny model's training TOML with a step floor of ``min_steps`` (the ``[fit]`` table comes last).

    Parameters
    ----------
    min_steps
        Smallest number of updates over a run; keeps the runs tiny where training has a step floor.

    Returns
    -------
    str
        TOML text; tests vary it with ``str.replace`` (e.g. ``"epochs = 2"`` → ``"epochs = 1"``).
    """
    if min_steps < 0:
        raise ValueError(f"min_steps must be >= 0, got {min_steps}")
    return f"{_TINY_BASE}min_steps = {min_steps}\n"


def write_config(path: Path, text: str) -> Path:
    """Write a training TOML ``text`` to ``path`` (parents created) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def train(data: Path, out: Path, config: Path, *extra: str) -> int:
    """Run ``forcecast train`` on ``data`` into ``out`` with ``config`` and ``extra`` options; the exit status."""
    return main(["train", "--data", str(data), "--out", str(out), "--config", str(config), *extra])
