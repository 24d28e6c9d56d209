"""``forcecast host bench``: live-stream latency and notification throughput over the in-process BLE link.

Both ends are the production code (the GATT server with its ``DeviceLink``, the host client through
bleak with the bumble backend); only the radio is virtual, so the figures are an upper bound for
the software path and say nothing about air time. What they answer: does the stack add latency to
the live trace, and how far is its throughput above what 100 Hz GRF and the step records need?

- **Live latency**: a producer plays the runtime's role for two legs at 100 Hz, handing over one
  sample every 10 ms (the streaming runtime's default hop), stamped with the device clock; the device
  gathers up to :data:`~forcecast.edge.link.LIVE_BATCH` per notification. The host measures, for every
  sample, receive time minus that sample's device time (same clock, same process): what the live trace lags.
- **Throughput**: a store holding realistic step records (101-point waveforms on three axes) is
  synced from scratch; records and bytes per second from RESUME to the last record stored.
- **Model upload**: ``forcecast flash``'s uploader sends 256 KiB to the real upload path (durable
  acknowledgements into model slots); median of three uploads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.link import LIVE_BATCH, DeviceLink
from forcecast.edge.protocol import ATT_OVERHEAD, LiveBlock, encode_live, encode_record
from forcecast.edge.records import RecordKind
from forcecast.edge.runtime.store import RecordStore
from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner
from forcecast.host_app.client import ClientConfig
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import virtual_link

RATE_HZ = 100.0
HOP = 1
"""Samples the producer hands over at a time (the runtime's default ``stream_hop``)."""
LEGS = ("l", "r")
STEPS_PER_S_PER_LEG = 1.0
BENCH_CONFIG = ClientConfig(scan_timeout_s=5.0, backoff_min_s=0.05, ack_period_s=0.2)


def step_payload(index: int, rng: np.random.Generator) -> dict[str, Any]:
    """A step record shaped like the runtime's (metrics plus 101-point waveforms on three axes)."""
    phase = np.linspace(0.0, 1.0, 101)
    vertical = 1.1 * np.sin(np.pi * phase) ** 0.6 - 0.25 * np.sin(2 * np.pi * phase) ** 2 * (phase > 0.3)
    ap = -0.2 * np.sin(2 * np.pi * phase)
    ml = 0.06 * np.sin(np.pi * phase)
    noise = rng.normal(0, 0.004, (3, 101))
    waveform = {
        axis: np.round(curve + n, 4).tolist()
        for axis, curve, n in zip(("v", "ap", "ml"), (vertical, ap, ml), noise, strict=True)
    }
    return {
        "leg": LEGS[index % 2],
        "ic_s": round(index * 0.55, 3),
        "stance_s": round(0.62 + rng.normal(0, 0.02), 3),
        "peak1_bw": round(1.1 + rng.normal(0, 0.03), 4),
        "peak2_bw": round(1.05 + rng.normal(0, 0.03), 4),
        "loading_rate_bw_s": round(9.0 + rng.normal(0, 0.5), 3),
        "impulse_bw_s": round(0.42 + rng.normal(0, 0.01), 4),
        "peak_ml_bw": round(0.06 + rng.normal(0, 0.005), 4),
        "flags": [],
        "waveform_bw": waveform,
        "patient_id": "BENCH",
    }


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan}
    array = np.asarray(values)
    return {
        "p50": round(float(np.median(array)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
    }


async def measure_live(folder: Path, seconds: float, mtu: int) -> dict[str, Any]:
    """Stream two legs of 100 Hz GRF for ``seconds`` and time each block from device stamp to host receipt."""
    latencies: list[float] = []
    received = 0

    def on_live(block: LiveBlock, received_s: float) -> None:
        nonlocal received
        for i in range(block.grf_bw.shape[0]):  # every sample's age: the stamp is ms modulo 2^32 (±0.5 ms)
            age = (received_s * 1000.0 - block.t0_ms - i * block.period_ms) % 2**32
            latencies.append(age - 2**32 if age >= 2**31 else age)
        received += block.grf_bw.shape[0]

    store = RecordStore(folder / f"live-{mtu}.sqlite", device_id="bench")
    host = HostStore(folder / f"live-host-{mtu}.sqlite")
    async with virtual_link(DeviceLink(store, {"device_id": "bench"})) as link:
        config = ClientConfig(**{**BENCH_CONFIG.__dict__, "live": True})
        logger = link.logger(host, config, on_live=on_live)
        logger.backend_kwargs = {**logger.backend_kwargs, "mtu": mtu}
        task = asyncio.create_task(logger.run())
        while not link.server.link.live:
            await asyncio.sleep(0.01)
        sent = 0
        phase = 0.0
        start = time.perf_counter()
        next_tick = start
        while time.perf_counter() - start < seconds:
            next_tick += HOP / RATE_HZ
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            now = time.time()
            times = now - (np.arange(HOP)[::-1] / RATE_HZ)
            for leg in LEGS:
                grf = np.column_stack([np.abs(np.sin(phase + np.arange(HOP) / 30.0)), np.zeros(HOP), np.zeros(HOP)])
                link.server.listener("grf", {"leg": leg, "time_s": times, "grf_bw": grf})
                sent += HOP
            phase += HOP / 30.0
        await asyncio.sleep(0.3)
        negotiated = link.server.link.mtu
        dropped = link.server.link.live_dropped
        logger.stop()
        await task
    host.close()
    store.close()
    return {
        "mtu": negotiated,
        "seconds": seconds,
        "samples_sent": sent,
        "samples_received": received,
        "dropped_on_device": dropped,
        "latency_ms": _stats(latencies),
    }


async def measure_records(folder: Path, count: int) -> dict[str, Any]:
    """Sync ``count`` realistic step records from an untouched store; records and bytes per second."""
    rng = np.random.default_rng(3)
    store = RecordStore(folder / "records.sqlite", device_id="bench")
    payloads = [step_payload(i, rng) for i in range(count)]
    store.append("step", [(float(i), p) for i, p in enumerate(payloads)])
    host = HostStore(folder / "records-host.sqlite")
    async with virtual_link(DeviceLink(store, {"device_id": "bench"})) as link:
        logger = link.logger(host, BENCH_CONFIG)
        task = asyncio.create_task(logger.run())
        while logger.state != "streaming":
            await asyncio.sleep(0.005)
        start = time.perf_counter()
        while host.resume_point("bench", "step") < count:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        mtu = link.server.link.mtu
        logger.stop()
        await task
    host.close()
    store.close()
    wire = sum(
        len(f) + ATT_OVERHEAD for i, p in enumerate(payloads) for f in encode_record(RecordKind.STEP, i + 1, p, mtu)
    )
    return {
        "mtu": mtu,
        "records": count,
        "seconds": round(elapsed, 3),
        "records_per_s": round(count / elapsed, 1),
        "bytes_per_record": round(wire / count, 1),
        "kib_per_s": round(wire / elapsed / 1024, 1),
    }


def need_bytes_per_s(mtu: int, record_bytes: float) -> dict[str, float]:
    """What two legs of 100 Hz live GRF plus about one step per second per leg take on the air (ATT payload)."""
    batch = np.zeros((LIVE_BATCH, 3))  # what the device sends per leg every LIVE_BATCH samples
    live_per_leg_per_batch = sum(len(p) + ATT_OVERHEAD for p in encode_live("r", 0, 0.0, 0.01, batch, mtu))
    live = len(LEGS) * live_per_leg_per_batch * RATE_HZ / LIVE_BATCH
    steps = len(LEGS) * STEPS_PER_S_PER_LEG * record_bytes
    return {"live_bytes_per_s": round(live, 1), "step_bytes_per_s": round(steps, 1), "total": round(live + steps, 1)}


async def measure_upload(folder: Path, size: int, runs: int = 3) -> dict[str, Any]:
    """Model upload: ``size`` random bytes uploaded ``runs`` times (the commit is refused: not a package).

    The device side is the real upload path (durable, fsynced acknowledgements every 4 KiB into model
    slots in ``folder``); what is timed is UPLOAD_BEGIN to the last acknowledgement.
    """
    from forcecast.edge.runtime.config import DeviceConfig
    from forcecast.edge.runtime.updates import ModelUpdates, sensor_columns
    from forcecast.edge.slots import ModelSlots
    from forcecast.host_app.flash import Flasher

    package = folder / "upload-bench.bin"
    package.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    config = DeviceConfig()
    results = []
    for run in range(runs):
        slots = ModelSlots(folder / f"slots-{run}", [])
        updates = ModelUpdates(slots, config, sensor_columns(config))
        store = RecordStore(folder / f"upload-{run}.sqlite", device_id="fc-bench")
        async with virtual_link(DeviceLink(store, {"device_id": "fc-bench", "updates": True}, updates=updates)) as link:
            flasher = Flasher(
                package,
                client_config=BENCH_CONFIG,
                scanner_backend=BumbleScanner,
                client_backend=BumbleClient,
                backend_kwargs=link.backend_kwargs,
            )
            result = await flasher.run()
            mtu = link.server.link.mtu
        store.close()
        results.append(result)
    seconds = [r.upload_s for r in results]
    return {
        "bytes": size,
        "runs": runs,
        "mtu": mtu,
        "seconds_median": round(float(np.median(seconds)), 3),
        "kib_per_s_median": round(size / 1024 / float(np.median(seconds)), 1),
        "commit": sorted({r.reason for r in results}),
    }


def measure_report(folder: Path, steps: int) -> dict[str, Any]:
    """The daily report for a synthetic day of ``steps`` steps with waveforms: seconds and HTML size."""
    from datetime import UTC, date

    from forcecast.host_app.report import build_report
    from forcecast.host_app.synthetic_days import write_day

    store = HostStore(folder / "report-bench.sqlite")
    day = date(2026, 11, 20)
    write_day(store, day, steps, seed=1)
    started = time.perf_counter()
    report = build_report(store, "P1", day, UTC)
    seconds = time.perf_counter() - started
    store.close()
    return {"steps": report.metrics.steps, "seconds": round(seconds, 2), "html_kib": round(len(report.html) / 1024)}


def run_link_bench(
    seconds: float = 10.0, records: int = 2000, upload_kib: int = 256, report_steps: int = 0
) -> dict[str, Any]:
    """Every figure, one JSON-ready dict."""
    logging.getLogger("bumble").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="forcecast-link-bench-") as tmp:
        folder = Path(tmp)
        live = asyncio.run(measure_live(folder, seconds, 517))
        live_min = asyncio.run(measure_live(folder, seconds / 2, 23))
        bulk = asyncio.run(measure_records(folder, records))
        upload = asyncio.run(measure_upload(folder, upload_kib * 1024)) if upload_kib > 0 else None
        report = measure_report(folder, report_steps) if report_steps > 0 else None
    need = need_bytes_per_s(bulk["mtu"], bulk["bytes_per_record"])
    return {
        "link": "bumble LocalLink (two virtual controllers, one process); host via bleak + the bumble backend",
        "live": live,
        "live_min_mtu": live_min,
        "records": bulk,
        "need_100hz_two_legs": need,
        "throughput_over_need": round(bulk["kib_per_s"] * 1024 / need["total"], 1),
        "upload": upload,
        "report": report,
    }
