"""Make a small synthetic dataset, check it, train a tiny model and evaluate it: all from Python.

Run: ``python examples/train_and_evaluate.py [WORK]`` (default ``./forcecast-example``); writes WORK/data and WORK/run.
"""

import sys
from pathlib import Path

import forcecast
from forcecast.lab.synth import SynthConfig, generate_dataset

TINY = """
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
min_steps = 6
[split]
test_subjects = ["S02"]
"""

work = Path(sys.argv[1] if len(sys.argv) > 1 else "forcecast-example")
data = work / "data"
if not data.exists():
    generate_dataset(data, SynthConfig(subjects=3, seed=7, duration_s=6.0, speeds=("comfortable",), static_s=2.0))

report = forcecast.check_dataset(data)
print(f"dataset ok: {report.ok} ({len(report.errors)} errors, {len(report.warnings)} warnings)")
dataset = forcecast.open_dataset(data)
print(f"{len(dataset.subjects)} subjects, {len(dataset.trials)} trials")

config = work / "tiny.toml"
config.write_text(TINY)
metrics = forcecast.train(dataset, work / "run", config)  # an opened dataset or its folder
print(metrics)

scores = forcecast.evaluate(work / "run", dataset)
print(scores[["axis", "r", "rmse_bw", "nrmse_pct"]])
