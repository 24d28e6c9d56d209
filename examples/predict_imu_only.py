"""Predict GRF for an IMU-only recording with the device's streaming code, from Python.

Run after ``train_and_evaluate.py``: ``python examples/predict_imu_only.py [WORK]`` (default ``./forcecast-example``).
"""

import sys
from pathlib import Path

import pandas as pd

import forcecast

work = Path(sys.argv[1] if len(sys.argv) > 1 else "forcecast-example")
model = forcecast.load_model(work / "run")  # a run folder, its model.keras, or a .fcpkg package

# an IMU-only table: time_s and format-v1 IMU columns (any force columns would be ignored)
imu = pd.read_csv(work / "data" / "trials" / "S02" / "walk_comfortable.imu.csv")
subject = {"body_mass_kg": 72.0, "height_m": 1.75, "affected_side": "none"}

predictor = forcecast.GRFPredictor(model, subject=subject).predict(imu)
grf, steps = predictor.grf_, predictor.steps_
print(grf[["time_s", "r_v_bw", "r_v_n", "r_stance"]].describe())
print(f"{len(steps)} steps detected; {predictor.report_['inferences']} inferences")

# or in one line, straight to a DataFrame
same = model.predict(imu, subject=subject)
assert same["r_v_bw"].equals(grf["r_v_bw"])
