"""``forcecast edge bench``: the runtime's speed and memory, measured in one run, printed as JSON.

A synthetic walker (standing for calibration, then walking at its comfortable speed) is generated
once into memory, so the figures measure the runtime and not the gait lab. For each package:

- ``inference_ms``: per-inference interpreter time, p50/p99/max (one thread);
- ``real_time_factor``: sensor seconds processed per wall second, whole pipeline, as fast as possible
  (1 s chunks, as a replay of a file is fed; ``real_time_factor_device_chunks`` with the device's polls);
- ``inferences_per_s``: inferences per second of sensor data (one leg per default device; the hop sets it);
- ``sample_to_result_ms``: for every GRF sample, how far the newest sensor sample lay ahead of it when
  it was produced (the model's delay, the streaming lag, the device's polls) plus that chunk's compute time;
  ``latency_bound_ms`` is the same worst case computed from the settings (compute excluded);
- ``cpu_share_realtime_pct``: process CPU time over wall time while paced at real time;
- ``block_edge_jump``: per axis, the mean |Δ| between consecutive GRF samples across the block boundaries of
  the block scheme of earlier releases (``edge``) and within its blocks (``within``), and their ratio, for
  the streamed output (default ``runtime.stream_*`` settings) and for the blocks themselves;
- ``accuracy_streamed_vs_offline``: r and RMSE (BW) per axis against the walker's true force, for the
  streamed output and for non-overlapping windows (``offline``: the block scheme that offline evaluation
  tiles time with), on the samples both give, and streamed minus offline.

Each package is measured in a fresh process that holds only the runtime and the recorded walk, so
``peak_rss_mb`` is the runtime's peak resident memory; ``tensorflow_imported`` proves the runtime
never loads TensorFlow.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig
from forcecast.edge.runtime.inference import Streaming, latency_bound_s
from forcecast.edge.runtime.lifecycle import LoadedModel, ModelFit, load_model
from forcecast.edge.runtime.pipeline import Pipeline
from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.edge.sources.base import Chunk

REPLAY_CHUNK_S = 1.0
"""Chunk length when replaying as fast as possible (batch processing of a recorded file)."""
DEVICE_CHUNK_S = RuntimeConfig().poll_s
"""Chunk length of a live device: the I²C source reads its FIFOs every ``runtime.poll_s`` (default 10 ms)."""
AXES = ("v", "ap", "ml")


@dataclass(frozen=True)
class Walk:
    """A recorded synthetic walk in memory (what a replay would feed the runtime), with its true force."""

    time_s: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    rate_hz: float
    acc_range_mps2: float
    gyr_range_rads: float
    subject: dict[str, Any]
    truth_time_s: np.ndarray
    truth_n: np.ndarray
    """The measured leg's force plate (``v``, ``ap``, ``ml`` in N) at its own times."""
    truth_leg: str = "r"

    def chunks(self, chunk_s: float) -> list[Chunk]:
        """The walk cut into chunks of ``chunk_s``."""
        step = max(1, round(chunk_s * self.rate_hz))
        return [
            Chunk(self.time_s[a : a + step], self.values[a : a + step], self.columns)
            for a in range(0, self.time_s.size, step)
        ]

    def save(self, path: Path) -> None:
        """Write to ``.npz`` (for the measuring child process)."""
        arrays = ("time_s", "values", "truth_time_s", "truth_n")
        meta = json.dumps({k: v for k, v in asdict(self).items() if k not in arrays})
        np.savez(path, **{a: getattr(self, a) for a in arrays}, meta=np.array(meta))

    @classmethod
    def load(cls, path: Path) -> Walk:
        """Read what :meth:`save` wrote."""
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            columns = tuple(meta.pop("columns"))
            return cls(
                data["time_s"],
                data["values"],
                columns,
                truth_time_s=data["truth_time_s"],
                truth_n=data["truth_n"],
                **meta,
            )

    def truth_bw(self, time_s: np.ndarray) -> np.ndarray:
        """True force (body weights) at ``time_s``, linearly interpolated from the force plate."""
        weight = float(self.subject["body_mass_kg"]) * GRAVITY_MPS2
        return np.column_stack([np.interp(time_s, self.truth_time_s, self.truth_n[:, a]) for a in range(3)]) / weight


def record_walk(seconds: float, rate_hz: float = 100.0) -> Walk:
    """Stand 3 s, then walk ``seconds`` at the comfortable speed (synthetic subject S01), IMUs at ``rate_hz``."""
    from forcecast.edge.sources.plugins import source_class  # the lab's walker, kept out of the measured process

    source = source_class("synthetic")(
        subject=1,
        speed=0,
        stand_s=3.0,
        rate_hz=rate_hz,
        program=(("comfortable", seconds),),
        duration_s=3.0 + seconds,
        keep_truth=True,
    )
    chunks = list(source.chunks())
    s = source.subject
    leg = DeviceConfig().runtime.legs[0]
    plates = [segment.force for segment in source.segments if segment.force is not None]
    force_columns = tuple(f"{leg}_grf_{a}" for a in AXES)
    return Walk(
        np.concatenate([c.time_s for c in chunks]),
        np.vstack([c.values for c in chunks]),
        source.columns,
        source.rate_hz,
        source.acc_range_mps2,
        source.gyr_range_rads,
        {
            "patient_id": s.subject_id,
            "body_mass_kg": s.body_mass_kg,
            "height_m": s.height_m,
            "hka_deg": s.hka_deg,
            "affected_side": s.affected_side,
        },
        np.concatenate([p.time_s for p in plates]),
        np.vstack([p.select(force_columns).values for p in plates]),
        leg,
    )


def load_benched(path: Path, pubkeys: list[Path], columns: tuple[str, ...]) -> LoadedModel:
    """A package as the runtime loads it (:func:`forcecast.edge.runtime.lifecycle.load_model`), one thread.

    Without ``pubkeys`` the signature is not checked (the package may come from someone else's key);
    everything else is, with the same refusal reasons as on the device.

    Raises
    ------
    forcecast.edge.package.PackageError
        If the package is refused.
    """
    trusted = [load_public_key(k) for k in pubkeys] if pubkeys else None
    return load_model(path, trusted, ModelFit(columns, DeviceConfig().runtime.legs, threads=1))


GrfRuns = dict[str, list[tuple[np.ndarray, np.ndarray]]]
"""Leg -> the GRF payloads (times, ``(m, 3)`` BW) a pipeline gave, in order."""


def _pipeline(
    model: TFLiteModel,
    contract: Any,
    walk: Walk,
    latencies: list[float] | None,
    runtime: RuntimeConfig | None = None,
    grf: GrfRuns | None = None,
) -> Pipeline:
    patient = PatientConfig(**walk.subject)
    pipeline: Pipeline

    def on_record(kind: str, payload: dict[str, Any]) -> None:
        if kind != "grf":
            return
        if latencies is not None:
            compute = pipeline.predictors[payload["leg"]].last_push_compute_s
            latencies.extend((pipeline.newest_input_s - payload["time_s"] + compute) * 1000.0)
        if grf is not None:
            grf.setdefault(payload["leg"], []).append((payload["time_s"], payload["grf_bw"]))

    pipeline = Pipeline(
        model,
        contract,
        DeviceConfig(runtime=runtime or RuntimeConfig()),
        walk.columns,
        walk.rate_hz,
        walk.acc_range_mps2,
        walk.gyr_range_rads,
        patient=patient,
        listeners=[on_record],
    )
    return pipeline


def _stats(values: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.median(a)), 4),
        "p99": round(float(np.percentile(a, 99)), 4),
        "max": round(float(a.max()), 4),
        "n": int(a.size),
    }


def _series(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not runs:
        return np.empty(0), np.empty((0, 3))
    return np.concatenate([t for t, _ in runs]), np.vstack([y for _, y in runs])


def block_starts(block_runs: list[tuple[np.ndarray, np.ndarray]], out_len: int) -> np.ndarray:
    """Times of the first sample of every block of the block scheme (each payload holds whole blocks)."""
    return np.concatenate([t[::out_len] for t, _ in block_runs]) if block_runs else np.empty(0)


def edge_jump(time_s: np.ndarray, grf: np.ndarray, starts: np.ndarray, period_s: float) -> dict[str, Any]:
    """Mean |Δ| per axis between consecutive samples across block starts (``edge``) and inside blocks (``within``).

    Only neighbours one sample period apart count; a pair is an edge when its later sample starts a block.
    """
    step = np.diff(time_s)
    adjacent = np.abs(step - period_s) < 0.25 * period_s
    at_start = np.isin(np.round(time_s[1:], 6), np.round(starts, 6))
    jumps = np.abs(np.diff(grf, axis=0))
    result: dict[str, Any] = {}
    for a, axis in enumerate(AXES):
        edge = jumps[adjacent & at_start, a]
        within = jumps[adjacent & ~at_start, a]
        if edge.size == 0 or within.size == 0:
            result[axis] = None
            continue
        e, w = float(edge.mean()), float(within.mean())
        result[axis] = {"edge": round(e, 5), "within": round(w, 5), "ratio": round(e / w, 3) if w > 0 else None}
    result["pairs"] = {"edge": int((adjacent & at_start).sum()), "within": int((adjacent & ~at_start).sum())}
    return result


def _scores(predicted: NDArray[np.float64], truth: NDArray[np.float64]) -> dict[str, dict[str, float]]:
    return {
        axis: {
            "r": round(float(np.corrcoef(predicted[:, a], truth[:, a])[0, 1]), 4),
            "rmse_bw": round(float(np.sqrt(np.mean((predicted[:, a] - truth[:, a]) ** 2))), 4),
        }
        for a, axis in enumerate(AXES)
    }


def accuracy(
    walk: Walk, streamed: tuple[np.ndarray, np.ndarray], offline: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """Pearson r and RMSE per axis of both outputs against the walk's true force, on the samples both give."""
    common, i, j = np.intersect1d(np.round(streamed[0], 6), np.round(offline[0], 6), return_indices=True)
    if common.size < 10:
        return {"samples": int(common.size)}
    truth = walk.truth_bw(streamed[0][i])
    s, o = _scores(streamed[1][i], truth), _scores(offline[1][j], truth)
    return {
        "leg": walk.truth_leg,
        "samples": int(common.size),
        "streamed": s,
        "offline": o,
        "difference": {axis: {k: round(s[axis][k] - o[axis][k], 4) for k in ("r", "rmse_bw")} for axis in AXES},
    }


def bench_model(path: Path, pubkeys: list[Path], walk: Walk, realtime_s: float) -> dict[str, Any]:
    """All figures for one package (see the module docstring); run it in a fresh process for the RSS."""
    loaded = load_benched(path, pubkeys, walk.columns)
    package, contract, model = loaded.package, loaded.contract, loaded.model
    runtime = RuntimeConfig()
    streaming = Streaming.for_model(contract, runtime.stream_hop, runtime.stream_lag)
    blocks = Streaming.blocks(contract)
    block_runtime = RuntimeConfig(stream_hop=blocks.hop, stream_lag=blocks.lag)
    latencies: list[float] = []
    block_latencies: list[float] = []
    streamed: GrfRuns = {}
    offline: GrfRuns = {}
    figures: dict[str, Any] = {}
    passes = (
        ("", REPLAY_CHUNK_S, None, runtime, None),
        ("_device_chunks", DEVICE_CHUNK_S, latencies, runtime, streamed),
        ("_blocks_device_chunks", DEVICE_CHUNK_S, block_latencies, block_runtime, offline),
    )
    for label, chunk_s, latency_list, settings, grf in passes:
        chunks = walk.chunks(chunk_s)
        pipeline = _pipeline(model, contract, walk, latency_list, settings, grf)
        started = time.perf_counter()
        for chunk in chunks:
            pipeline.push(chunk.time_s, chunk.values)
        wall = time.perf_counter() - started
        report = pipeline.finish()
        if label == "_blocks_device_chunks":
            figures["blocks"] = {"inferences_per_s": round(report.inferences / report.stream_s, 1)}
            continue
        figures[f"real_time_factor{label}"] = round(report.stream_s / wall, 1)
        if not label:
            figures.update(
                inference_ms=_stats(report.compute_ms),
                inferences=report.inferences,
                inferences_per_s=round(report.inferences / report.stream_s, 1),
                stream_s=round(report.stream_s, 2),
                wall_s=round(wall, 3),
            )
            figures["steps"] = report.steps

    paced = _pipeline(model, contract, walk, None, runtime)
    chunks = walk.chunks(DEVICE_CHUNK_S)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k, chunk in enumerate(chunks[: max(1, int(realtime_s / DEVICE_CHUNK_S))]):
        pause = wall0 + (k + 1) * DEVICE_CHUNK_S - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        paced.push(chunk.time_s, chunk.values)
    cpu_share = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    leg = walk.truth_leg
    period = 1.0 / contract.rate_hz
    starts = block_starts(offline.get(leg, []), contract.out_len)
    figures["blocks"].update(
        sample_to_result_ms=_stats(block_latencies),
        latency_bound_ms=round(1000 * latency_bound_s(contract, blocks, DEVICE_CHUNK_S), 1),
    )
    return {
        "package": str(path),
        "mode": package.manifest["quantisation"].get("mode"),
        "model_bytes": len(package.model),
        "runtime": model.runtime,
        "window": contract.window,
        "out_len": contract.out_len,
        "delay": contract.delay,
        "rate_hz": contract.rate_hz,
        "streaming": {"hop": streaming.hop, "lag": streaming.lag},
        **figures,
        "sample_to_result_ms": _stats(latencies),
        "latency_bound_ms": round(1000 * latency_bound_s(contract, streaming, DEVICE_CHUNK_S), 1),
        "algorithmic_latency_ms": {
            "newest_output": round(1000 * contract.delay / contract.rate_hz, 1),
            "emitted": round(1000 * streaming.latency_s(contract), 1),
            "oldest_output": round(1000 * contract.latency_s, 1),
        },
        "block_edge_jump": {
            "streamed": edge_jump(*_series(streamed.get(leg, [])), starts, period),
            "blocks": edge_jump(*_series(offline.get(leg, [])), starts, period),
        },
        "accuracy_streamed_vs_offline": accuracy(walk, _series(streamed.get(leg, [])), _series(offline.get(leg, []))),
        "cpu_share_realtime_pct": round(cpu_share, 2),
        "peak_rss_mb": peak_rss_mb(),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of the calling process, in MB.

    Linux's ``VmHWM`` belongs to the process image, so it starts afresh at ``exec``; ``ru_maxrss``
    (used where there is no ``/proc``) carries the parent's peak across a fork and exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _child(walk_path: str, package: str, pubkeys: list[str], realtime_s: float) -> None:
    """Entry point of the measuring process: print one JSON object."""
    result = bench_model(Path(package), [Path(k) for k in pubkeys], Walk.load(Path(walk_path)), realtime_s)
    print(json.dumps(result))


def run_bench(
    model: Path,
    compare: list[Path],
    pubkeys: list[Path],
    seconds: float = 120.0,
    realtime_s: float = 10.0,
    rate_hz: float = 100.0,
) -> dict[str, Any]:
    """Benchmark ``model`` (and each package in ``compare``) on the same walk, each in a fresh process.

    Raises
    ------
    forcecast.edge.package.PackageError
        If a package is refused (checked here first, so a refusal names its reason before anything runs).
    """
    generated = time.perf_counter()
    walk = record_walk(seconds, rate_hz)
    generated = time.perf_counter() - generated
    for path in [model, *compare]:
        load_benched(path, pubkeys, walk.columns)
    models: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="forcecast-bench-") as folder:
        walk_path = Path(folder) / "walk.npz"
        walk.save(walk_path)
        for path in [model, *compare]:
            code = (
                "import sys, json; from forcecast.edge.runtime.bench import _child; "
                "_child(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]))"
            )
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    code,
                    str(walk_path),
                    str(path),
                    json.dumps([str(k) for k in pubkeys]),
                    str(realtime_s),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            if done.returncode != 0:
                raise RuntimeError(f"benchmark of {path} failed: {done.stderr.strip()[-2000:]}")
            name = path.stem if path.stem not in models else str(path)
            models[name] = json.loads(done.stdout.strip().splitlines()[-1])
    first = next(iter(models.values()))
    ratios = {
        name: {
            "inference_p50_ratio": round(r["inference_ms"]["p50"] / first["inference_ms"]["p50"], 3),
            "real_time_factor_ratio": round(r["real_time_factor"] / first["real_time_factor"], 3),
        }
        for name, r in models.items()
    }
    return {
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "interpreter_threads": 1},
        "walk_s": seconds,
        "imu_rate_hz": rate_hz,
        "generation_s": round(generated, 2),
        "replay_chunk_s": REPLAY_CHUNK_S,
        "device_chunk_s": DEVICE_CHUNK_S,
        "models": models,
        "ratios_vs_first": ratios,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in models.values()),
        "tensorflow_imported": any(r["tensorflow_imported"] for r in models.values()),
    }
