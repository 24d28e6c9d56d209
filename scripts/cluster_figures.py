"""Training beyond one machine, measured on this one: one vs two training workers, local vs Dask cross-validation.

Prints one JSON object (and writes it to ``OUT/cluster_figures.json``):

- ``multi_worker``: the same training (``forcecast train``, same config and seed) as one process and as two
  workers on loopback (``--workers``); wall time of each (from start until every process has exited) and the
  final metrics of the run written.
- ``fanout``: the same cross-validation (``forcecast cv``) with ``--jobs 2`` local processes and on a two-node
  Dask cluster on loopback (``--cluster``; scheduler and workers started before the clock starts); folds per
  minute of each.

Run with ``nice -n 10 python scripts/cluster_figures.py --out /tmp/cf`` (about 10-15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIG = """
[data]
window = 64
out_len = 4
delay = 2
train_stride = 4
[model]
conv_filters = [8, 16]
lstm_units = 16
static_units = 4
dense_units = 32
[fit]
epochs = 3
batch_size = 64
patience = 3
min_steps = 60
"""
FORCECAST = [sys.executable, "-c", "import sys; from forcecast.cli import main; sys.exit(main(sys.argv[1:]))"]
DASK = str(Path(sys.executable).with_name("dask"))


def free_ports(n: int) -> list[int]:
    """``n`` loopback ports that were free a moment ago."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_all(commands: list[list[str]]) -> tuple[float, list[str]]:
    """Start every command at once; the wall time until all have exited and their stdouts (each must succeed)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands
    ]
    outputs: list[str] = []
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, commands[len(outputs)]))} failed:\n{stderr[-3000:]}")
        outputs.append(stdout)
    return time.perf_counter() - started, outputs


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures of a run worth comparing."""
    axes = metrics["subject_naive"]["pooled"]["axes"]
    return {
        "best_val_loss": round(metrics["best_val_loss"], 4),
        "epochs_run": metrics["epochs_run"],
        "gradient_steps": metrics["gradient_steps"],
        "global_batch": metrics.get("distribution", {}).get("global_batch", None),
        "v_r": round(axes["v"]["r"], 4),
        "v_nrmse_pct": round(axes["v"]["nrmse_pct"], 2),
        "ap_r": round(axes["ap"]["r"], 4),
        "ml_r": round(axes["ml"]["r"], 4),
    }


def multi_worker(data: Path, config: Path, out: Path) -> dict[str, Any]:
    """One process vs two workers on loopback, same training."""
    base = [*FORCECAST, "train", str(data), "--config", str(config), "--json", "--seed", "0"]
    one_s, (one_out,) = run_all([[*base, "--out", str(out / "one")]])
    ports = free_ports(2)
    workers = ",".join(f"127.0.0.1:{p}" for p in ports)
    two_s, outputs = run_all(
        [[*base, "--out", str(out / "two"), "--workers", workers, "--worker-index", str(i)] for i in (0, 1)]
    )
    one = json.loads(one_out.strip().splitlines()[-1])
    two = json.loads(outputs[0].strip().splitlines()[-1])
    other = json.loads(outputs[1].strip().splitlines()[-1])
    return {
        "one_worker": {"wall_s": round(one_s, 1), **headline(one)},
        "two_workers": {
            "wall_s": round(two_s, 1),
            **headline(two),
            "steps_per_worker": [two["distribution"]["steps_this_worker"], other["distribution"]["steps_this_worker"]],
        },
        "wall_ratio_two_over_one": round(two_s / one_s, 2),
    }


def fanout(data: Path, config: Path, out: Path) -> dict[str, Any]:
    """``forcecast cv`` with two local processes vs on a two-node Dask cluster on loopback."""
    base = [*FORCECAST, "cv", str(data), "--config", str(config), "--json", "--seed", "0", "--static", "on"]
    local_s, (local_out,) = run_all([[*base, "--out", str(out / "cv_local"), "--jobs", "2"]])
    (port,) = free_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    quiet = subprocess.DEVNULL
    cluster = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=quiet,
            stderr=quiet,
        )
    ]
    time.sleep(2)
    options = ["--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
    cluster += [
        subprocess.Popen([DASK, "worker", address, *options], env=env, stdout=quiet, stderr=quiet) for _ in (0, 1)
    ]
    try:
        from distributed import Client

        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        dask_s, (dask_out,) = run_all([[*base, "--out", str(out / "cv_dask"), "--cluster", address]])
    finally:
        for process in reversed(cluster):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    local, remote = (json.loads(o.strip().splitlines()[-1]) for o in (local_out, dask_out))
    n = len(local["per_fold"])
    same = all(
        a["axes"]["v"]["r"] == b["axes"]["v"]["r"]
        for a, b in zip(
            sorted(local["per_fold"], key=lambda r: r["fold"]),
            sorted(remote["per_fold"], key=lambda r: r["fold"]),
            strict=True,
        )
    )
    return {
        "fold_runs": n,
        "local_jobs2": {"wall_s": round(local_s, 1), "folds_per_min": round(n / local_s * 60, 2)},
        "dask_two_nodes": {"wall_s": round(dask_s, 1), "folds_per_min": round(n / dask_s * 60, 2)},
        "throughput_ratio_dask_over_local": round(local_s / dask_s, 2),
        "same_fold_results": same,
    }


def main() -> int:
    """Measure both comparisons in one run and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (created)")
    parser.add_argument("--subjects", type=int, default=4, help="synthetic subjects (default 4)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "ds"
    if not data.exists():
        from forcecast.lab.synth import SynthConfig, generate_dataset

        generate_dataset(data, SynthConfig(subjects=args.subjects, seed=3, duration_s=12.0, speeds=("comfortable",)))
    config = args.out / "config.toml"
    config.write_text(CONFIG)
    figures = {
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "multi_worker": multi_worker(data, config, args.out),
        "fanout": fanout(data, config, args.out),
    }
    text = json.dumps(figures, indent=2)
    (args.out / "cluster_figures.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
