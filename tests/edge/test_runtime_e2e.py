"""The runtime with a real trained model: steps against ground truth, a damaged replay, the CLI, no TensorFlow.

The model is ``tests/data/grf_int8.fcpkg``: the default architecture trained by ``forcecast train`` on
the default synthetic dataset and quantised by ``forcecast quantize`` (see ``tests/data/README.md``).
The walkers below are subjects of another cohort (seed 5), so they are people the model never saw.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pipelines import replay_trial, source_pipeline, walker_patient
from step_matching import StepMatch, check_detection, match_events

from forcecast.cli import main
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import open_package
from forcecast.edge.runtime.feedback import StdoutCue
from forcecast.edge.runtime.pipeline import run_source
from forcecast.edge.runtime.step_metrics import step_metrics
from forcecast.edge.runtime.steps import StepDetector
from forcecast.edge.runtime.store import RecordStore
from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset.trial import Stream, Trial, write_trial
from forcecast.lab.sources.synthetic import SyntheticSource, truth_force

DATA = Path(__file__).parents[1] / "data"
PACKAGE = DATA / "grf_int8.fcpkg"
PUBKEY = DATA / "forcecast-test.pub"


@pytest.fixture(scope="module")
def model():
    package, contract = open_package(PACKAGE, [load_public_key(PUBKEY)])
    return package, contract, TFLiteModel(package.model)


@pytest.fixture(scope="module")
def walked(model):
    """Two naive walkers, both legs predicted, 20 s at each speed, with the force plate kept."""
    _, contract, tflite = model
    results = []
    for subject in (2, 4):
        source = SyntheticSource(
            subject=subject,
            seed=5,
            speed=0,
            stand_s=3.0,
            program=(("comfortable", 20.0), ("slow", 20.0), ("fast", 20.0)),
            duration_s=63.0,
            keep_truth=True,
            places=("l_shank", "r_shank", "l_thigh", "r_thigh", "pelvis"),
        )
        steps: list[dict] = []
        events: list[dict] = []

        def keep(kind: str, payload: dict, steps: list[dict] = steps, events: list[dict] = events) -> None:
            if kind == "step":
                steps.append(payload)
            elif kind == "event":
                events.append(payload)

        pipeline = source_pipeline(
            tflite,
            contract,
            source,
            patient=walker_patient(source, limit=1.1),
            cue=StdoutCue(io.StringIO()),
            listeners=[keep],
        )
        report = run_source(pipeline, source)
        results.append((source, steps, report, events))
    return results


def truth_steps(source: SyntheticSource, leg: str, after_s: float) -> list[dict]:
    t, force = truth_force(source.segments, leg)
    bw = source.walker.body_mass_kg * GRAVITY_MPS2
    return [step_metrics(s, bw) for s in StepDetector().push(t, force / bw) if s.ic_s > after_s]


IC_TOLERANCE_S = 0.15
"""Largest initial-contact time error of a detected step matched to a true one."""


def match_walked(walked: list, double: bool = False) -> tuple[StepMatch, list[tuple[dict, dict]]]:
    """Every leg's detected steps matched one-to-one to the force plate's; ``double``: each detection twice."""
    total = StepMatch((), (), ())
    matched: list[tuple[dict, dict]] = []
    for source, steps, report, _ in walked:
        assert report.calibration["calibrated"]
        start = 3.0 + 128 / 100.0  # calibration pose, then the first window
        for leg in ("l", "r"):
            truth = truth_steps(source, leg, start)
            mine = [s for s in steps if s["leg"] == leg and s["ic_s"] > start]  # the same span as the truth
            if double:
                mine = [s for s in mine for _ in range(2)]
            match = match_events([s["ic_s"] for s in truth], [s["ic_s"] for s in mine], IC_TOLERANCE_S)
            matched += [(truth[t], mine[d]) for t, d in match.pairs]
            total = total + match
    return total, matched


def test_predicted_steps_match_the_force_plate(walked):
    total, matched = match_walked(walked)
    assert len(total.pairs) + len(total.missed) > 150
    check_detection(total, min_precision=0.98, min_recall=0.98)
    ic_errors, peak_errors, stance_errors, impulse_errors, rate_errors, ml_errors = [], [], [], [], [], []
    for true_step, match in matched:
        ic_errors.append(match["ic_s"] - true_step["ic_s"])
        peak_errors.append(match["peak1_bw"] - true_step["peak1_bw"])
        stance_errors.append(match["stance_s"] - true_step["stance_s"])
        impulse_errors.append(match["impulse_v_bws"] / true_step["impulse_v_bws"] - 1)
        ml_errors.append(match["peak_ml_bw"] - true_step["peak_ml_bw"])
        if match["loading_rate_bw_s"] and true_step["loading_rate_bw_s"]:
            rate_errors.append(match["loading_rate_bw_s"] / true_step["loading_rate_bw_s"] - 1)
    assert np.median(np.abs(ic_errors)) <= 0.020
    assert np.median(np.abs(stance_errors)) <= 0.030
    assert np.median(np.abs(peak_errors)) <= 0.08
    assert np.median(np.abs(impulse_errors)) <= 0.05
    assert np.median(np.abs(rate_errors)) <= 0.15
    assert np.median(np.abs(ml_errors)) <= 0.02


def test_a_detector_reporting_every_step_twice_fails_the_accuracy_check(walked):
    total, _ = match_walked(walked, double=True)
    assert total.recall >= 0.98  # every true step is still found ...
    assert 0.45 < total.precision < 0.55  # ... but each second report is a false positive
    with pytest.raises(AssertionError, match="precision"):
        check_detection(total, min_precision=0.98, min_recall=0.98)


def test_asymmetry_and_cues_with_both_legs(walked):
    for _, steps, report, events in walked:
        assert {s["leg"] for s in steps} == {"l", "r"}
        with_asymmetry = [s for s in steps if s["asymmetry_peak1"] is not None]
        assert len(with_asymmetry) > 0.8 * len(steps)
        assert all(-1 < s["asymmetry_peak1"] < 1 for s in with_asymmetry)
        # Latency = stream time (algorithmic + chunk wait, deterministic) + measured compute: the median is bounded
        # here; the tail depends on the machine's load and is reported by `edge bench`, not asserted.
        assert report.cues > 0 and float(np.median(report.cue_latency_ms)) < 75.0
        cues = [e for e in events if e["event"] == "cue"]
        assert len(cues) == report.cues
        # every event names the patient, so the host and the clinic can count cues per patient
        assert events and all(e["patient_id"] == steps[0]["patient_id"] for e in events)


def walk_trial(folder: Path, damaged: bool) -> Path:
    """A 40 s walk; ``damaged``: with a NaN run, a 2 s dropout and the device clock leaping an hour ahead."""
    source = SyntheticSource(subject=1, seed=5, speed=0, stand_s=3.0, program=(("comfortable", 40.0),), duration_s=43)
    if not damaged:
        return replay_trial(folder, source, "S01", "walk")
    chunks = list(source.chunks())
    t = np.concatenate([c.time_s for c in chunks])
    x = np.vstack([c.values for c in chunks])
    x[(t > 12.0) & (t < 12.5)] = np.nan
    keep = ~((t > 20.0) & (t < 22.0))
    t, x = t[keep], x[keep]
    t[t > 30.0] += 3600.0
    trial = Trial("S01", "walk_damaged", Stream(t, source.columns, x), None)
    write_trial(folder, trial, file_format="csv", paired=False)
    return folder / "trials" / "S01" / "walk_damaged.csv"


def test_a_damaged_replay_runs_to_the_end_with_everything_flagged(tmp_path, capsys):
    path = walk_trial(tmp_path / "ds", damaged=True)
    store = tmp_path / "store.sqlite"
    args = ["edge", "run", "--model", str(PACKAGE), "--pubkey", str(PUBKEY), "--source", f"replay:{path}"]
    assert main([*args, "--store", str(store), "--speed", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quality"]["nan"] == 1 and report["quality"]["dropout"] == 1 and report["quality"]["clock_jump"] == 1
    assert report["steps"]["r"] > 25
    with RecordStore(store) as records:
        steps = [r.payload for r in records.records("step", limit=10_000)]
        events = [r.payload["event"] for r in records.records("event", limit=10_000)]
        summaries = records.records("summary", limit=10_000)
    assert len(steps) == report["steps"]["r"]
    assert {"nan", "dropout", "clock_jump"} <= set(events)
    assert sum(1 for s in steps if s["flags"]) >= 1 and sum(1 for s in steps if not s["flags"]) > 20
    assert steps[-1]["ic_s"] > 3600.0 and all(np.diff([s["ic_s"] for s in steps]) > 0)
    assert summaries and summaries[-1].payload["quality_events"]["dropout"] == 1


def test_run_refuses_without_trusted_keys_and_with_a_bad_source(tmp_path, capsys):
    args = ["edge", "run", "--model", str(PACKAGE), "--source", "synthetic", "--store", str(tmp_path / "s.sqlite")]
    assert main(args) == 2
    assert "no trusted public keys" in capsys.readouterr().err
    assert main([*args, "--pubkey", str(PUBKEY), "--source", "serial:/dev/ttyUSB0"]) == 2
    assert "unknown source" in capsys.readouterr().err
    assert main([*args, "--pubkey", str(PUBKEY), "--source", "replay:nowhere.csv"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_the_edge_process_never_imports_tensorflow(tmp_path):
    code = (
        "import sys; from forcecast.cli import main; "
        f"code = main(['edge', 'run', '--model', {str(PACKAGE)!r}, '--pubkey', {str(PUBKEY)!r}, "
        f"'--source', 'synthetic:2', '--speed', '0', '--duration-s', '8', '--store', {str(tmp_path / 's.sqlite')!r}, "
        "'--json']); "
        "assert code == 0; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["steps"]["r"] > 0


def test_killing_the_runtime_never_loses_a_committed_step(tmp_path):
    """SIGKILL ``forcecast edge run`` at random moments, 20 times, on one store: every step it reported is there."""
    import os
    import random
    import signal
    import time

    store = tmp_path / "store.sqlite"
    walk = walk_trial(tmp_path / "ds", damaged=False)
    rng = random.Random(11)
    reported: dict[int, float] = {}
    command = [
        sys.executable,
        "-m",
        "forcecast.cli",
        "edge",
        "run",
        "--model",
        str(PACKAGE),
        "--pubkey",
        str(PUBKEY),
        "--source",
        f"replay:{walk}",
        "--speed",
        "0",
        "--store",
        str(store),
        "--follow",
        "--json",
    ]
    for _ in range(20):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()  # wait until it is committing steps
        assert first.startswith('{"kind": "step"'), first
        lines = [first]
        deadline = time.monotonic() + rng.uniform(0.0, 0.4)
        os.set_blocking(child.stdout.fileno(), False)
        while time.monotonic() < deadline:
            chunk = child.stdout.readline()
            if chunk:
                lines.append(chunk)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        rest = child.stdout.read() or ""
        for line in [*lines, *rest.splitlines(keepends=True)]:
            if line.endswith("\n") and line.startswith('{"kind": "step"'):
                record = json.loads(line)
                reported[record["seq"]] = record["ic_s"]
        with RecordStore(store) as records:
            stored = {r.seq: r.payload["ic_s"] for r in records.records("step", limit=100_000)}
            assert records.stats()["step"]["last_seq"] == max(stored)
        assert all(stored.get(seq) == ic for seq, ic in reported.items()), "a reported step is missing"
        assert sorted(stored) == list(range(1, len(stored) + 1))
    assert len(reported) > 40


def test_bench_prints_one_json_object_with_every_figure(capsys):
    args = ["edge", "bench", "--model", str(PACKAGE), "--compare", str(DATA / "grf_float32.fcpkg")]
    assert main([*args, "--pubkey", str(PUBKEY), "--seconds", "6", "--realtime-s", "0.3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"grf_int8", "grf_float32"}
    int8 = result["models"]["grf_int8"]
    assert int8["mode"] == "int8" and int8["runtime"] == "ai_edge_litert"
    for key in ("inference_ms", "sample_to_result_ms"):
        assert 0 < int8[key]["p50"] <= int8[key]["p99"] <= int8[key]["max"]
    assert int8["real_time_factor"] > 1 and 0 < int8["cpu_share_realtime_pct"] < 100
    # the oldest output of a block is (delay + out_len - 1) samples old before compute
    assert int8["sample_to_result_ms"]["max"] >= int8["algorithmic_latency_ms"]["oldest_output"]
    assert result["tensorflow_imported"] is False and 50 < result["peak_rss_mb"] < 400
    assert result["ratios_vs_first"]["grf_int8"]["real_time_factor_ratio"] == 1.0
    # streaming: the model runs every sample (4x the blocks' rate), output at the delay, blocks measured alongside
    assert (
        int8["streaming"] == {"hop": 1, "lag": 0} and int8["inferences_per_s"] > 3 * int8["blocks"]["inferences_per_s"]
    )
    assert int8["latency_bound_ms"] <= 30 < int8["blocks"]["latency_bound_ms"]
    for scheme in ("streamed", "blocks"):
        assert {"v", "ap", "ml", "pairs"} <= set(int8["block_edge_jump"][scheme])
    scores = int8["accuracy_streamed_vs_offline"]
    assert scores["samples"] > 300 and set(scores["difference"]) == {"v", "ap", "ml"}
    assert abs(scores["difference"]["v"]["rmse_bw"]) < 0.01
