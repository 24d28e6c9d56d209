"""``forcecast edge run`` and ``forcecast edge bench``.

Only the standard library is imported at module level; handlers import the runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common


def register(commands: Any) -> Any:
    """Add the ``edge`` command group; return its verbs (other modules add verbs there, e.g. ``edge pair``)."""
    edge = commands.add_parser(
        "edge",
        help="run the device runtime, or benchmark it",
        description="The on-device runtime: sensors → GRF → steps → store, biofeedback and BLE.",
    )
    verbs = edge.add_subparsers(dest="verb", metavar="VERB", required=True)

    run = verbs.add_parser(
        "run",
        help="run the pipeline on a source until it ends or is stopped",
        description="Verify the model package, calibrate from the first seconds of quiet standing, then predict "
        "GRF, detect steps and store step records. SRC is 'i2c' (the sensors in device.toml), "
        "'synthetic[:SUBJECT]' (the live synthetic walker) or 'replay:FILE' (a format-v1 trial).",
    )
    run.add_argument(
        "--model",
        type=Path,
        help="run this signed package (no updates); default: the active model in [models] folder, taking updates",
    )
    run.add_argument("--source", required=True, metavar="SRC", help="i2c | synthetic[:SUBJECT] | replay:FILE")
    run.add_argument("--config", type=Path, help="device.toml (default: built-in defaults)")
    run.add_argument("--pubkey", type=Path, action="append", default=[], help="trusted public key (repeatable)")
    run.add_argument("--store", type=Path, help="SQLite store (default: [store] path in the config)")
    run.add_argument(
        "--speed", type=float, default=1.0, help="replay/synthetic pace: 1 real time, 0 as fast as possible"
    )
    run.add_argument("--duration-s", type=float, help="stop after this much sensor time")
    run.add_argument(
        "--follow", action="store_true", help="print each step record once it is committed (JSON lines with --json)"
    )
    run.add_argument(
        "--ble", action="store_true", help="serve the BLE GATT service on the [ble] transport (also: [ble] enabled)"
    )
    add_common(run, json="print the run report as one JSON object (the last line)")
    run.set_defaults(handler=_run)

    bench = verbs.add_parser(
        "bench",
        help="measure latency, real-time factor, memory and CPU share; prints JSON with --json",
        description="Benchmark the runtime on a replayed synthetic walk: per-inference latency, sample-to-result "
        "latency, replay real-time factor on one thread, peak RSS, CPU share at 100 Hz real time; "
        "the package's model and, when --compare-float is given, another package side by side.",
    )
    bench.add_argument("--model", type=Path, required=True, help="model package (.fcpkg)")
    bench.add_argument("--compare", type=Path, action="append", default=[], help="another package to run side by side")
    bench.add_argument("--pubkey", type=Path, action="append", default=[], help="trusted public key (optional)")
    bench.add_argument("--seconds", type=float, default=120.0, help="walking time replayed (default 120)")
    bench.add_argument("--realtime-s", type=float, default=10.0, help="paced run for the CPU share (default 10)")
    bench.add_argument(
        "--rate-hz", type=float, default=100.0, help="IMU rate of the walk (104 = the LSM6DSOX's, resampled)"
    )
    add_common(bench, json="print exactly one JSON object")
    bench.set_defaults(handler=_bench)
    return verbs


def _run(args: argparse.Namespace) -> int:
    from forcecast.edge.runtime.launch import launch

    def follow(kind: str, payload: dict[str, Any]) -> None:
        if kind != "step":
            return
        if args.json:
            line = json.dumps({"kind": "step", **{k: v for k, v in payload.items() if k != "waveform_bw"}})
        else:
            line = (
                f"step {payload['leg']} #{payload.get('seq', '-')}: contact {payload['ic_s']:.2f} s, "
                f"stance {payload['stance_s']:.2f} s, peaks {payload['peak1_bw']:.2f}/{payload['peak2_bw']:.2f} BW "
                f"({payload['peak1_n']:.0f} N){' flags ' + ','.join(payload['flags']) if payload['flags'] else ''}"
            )
        print(line, flush=True)

    report = launch(
        model_path=args.model,
        source_spec=args.source,
        config_path=args.config,
        pubkeys=args.pubkey,
        store_path=args.store,
        speed=args.speed,
        duration_s=args.duration_s,
        log=None if args.json else sys.stderr,
        listeners=[follow] if args.follow else [],
        ble=args.ble,
    )
    if args.json:
        print(json.dumps(report))
    else:
        steps = ", ".join(f"{leg}: {n}" for leg, n in report["steps"].items())
        print(
            f"ran {report['stream_s']:.1f} s of sensor data in {report['wall_s']:.1f} s; steps {steps}; "
            f"quality events {report['quality']}; cues {report['cues']}"
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from forcecast.edge.runtime.bench import run_bench

    result = run_bench(args.model, args.compare, args.pubkey, args.seconds, args.realtime_s, args.rate_hz)
    if args.json:
        print(json.dumps(result))
        return 0
    for name, r in result["models"].items():
        print(f"{name}: {r['mode']}, {r['model_bytes']:,} bytes")
        print(
            f"  inference p50 {r['inference_ms']['p50']:.3f} ms  p99 {r['inference_ms']['p99']:.3f} ms; "
            f"replay real-time factor {r['real_time_factor']:.0f}x (one thread)"
        )
        print(
            f"  sample-to-result latency p50 {r['sample_to_result_ms']['p50']:.1f} ms, "
            f"max {r['sample_to_result_ms']['max']:.1f} ms; CPU at real time {r['cpu_share_realtime_pct']:.1f} %"
        )
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB; tensorflow imported: {result['tensorflow_imported']}")
    return 0
