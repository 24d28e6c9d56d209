"""Figure: what adding each record's share to the dashboard's quarter-hour sums costs at ingest.

Stores the load test's request bodies (a day of 6,000 step records per host with waveforms, batches of 500)
through the sync API's parser and :func:`forcecast.clinic.db.records.store_records`, alternating batches with the
sums (the real path) and without them (``add_to_buckets`` replaced by a no-op), each batch for a fresh patient so
that both modes insert into the same growing tables. Prints one JSON object: median milliseconds per batch of
each mode and their ratio.

Usage::

    python scripts/clinic_ingest_bench.py [--database postgresql://USER:PW@HOST/postgres | sqlite] [--batches 30]

The database defaults to ``$FORCECAST_TEST_POSTGRES_URL``; a throw-away database is made there and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import forcecast.clinic.db.records as stored
from forcecast.clinic.db.devices import device_by_id
from forcecast.clinic.db.engine import create_engine
from forcecast.clinic.loadtest import DayPayloads, new_database, seed_hosts
from forcecast.clinic.sync_wire import parse_batch

BATCH = 500


async def _bench(url: str, batches: int) -> dict[str, Any]:
    hosts = await seed_hosts(url, 2 * batches)
    payloads = DayPayloads(BATCH)
    real = stored.add_to_buckets

    async def no_sums(*_: Any) -> int:
        return 0

    seconds: dict[str, list[float]] = {"with_sums": [], "without_sums": []}
    engine = create_engine(url)
    try:
        for k, (device_id, _) in enumerate(hosts):
            mode = "with_sums" if k % 2 == 0 else "without_sums"
            batch = parse_batch(json.loads(payloads.body(device_id, 0, BATCH)), BATCH)
            stored.add_to_buckets = real if mode == "with_sums" else no_sums  # type: ignore[assignment]
            async with engine.begin() as connection:
                device = await device_by_id(connection, device_id)
                assert device is not None
                start = time.perf_counter()
                outcome = await stored.store_records(connection, device, batch.store_id, batch.records)
                seconds[mode].append(time.perf_counter() - start)
            assert outcome.accepted == BATCH
    finally:
        stored.add_to_buckets = real
        await engine.dispose()
    with_sums, without = (statistics.median(seconds[m]) for m in ("with_sums", "without_sums"))
    return {
        "backend": url.split(":", 1)[0],
        "batches_each": batches,
        "records_per_batch": BATCH,
        "median_ms_with_sums": round(with_sums * 1000, 1),
        "median_ms_without_sums": round(without * 1000, 1),
        "ratio": round(with_sums / without, 3),
    }


def main() -> None:
    """Parse the arguments, run the figure on a throw-away database, print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("FORCECAST_TEST_POSTGRES_URL", "sqlite"))
    parser.add_argument("--batches", type=int, default=30, help="batches per mode (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, remove = new_database(args.database, Path(folder))
        try:
            print(json.dumps(asyncio.run(_bench(url, args.batches))))
        finally:
            remove()


if __name__ == "__main__":
    main()
