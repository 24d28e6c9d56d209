"""Load test of the clinic server: simulated home hosts push a day of step records each, concurrently.

Every scenario gets a fresh database (a throw-away PostgreSQL database on the given server, dropped afterwards,
or a temporary SQLite file), a clinic with one patient and one enrolled device per host, and a real
``forcecast clinic serve`` subprocess on a loopback port. Then N hosts push M step records each (realistic
payloads: the briefs and float32 waveforms the host store keeps, one day from 07:00 to 21:00) in batches,
all at once, retrying with backoff whenever a request fails. Afterwards the database is counted:

- ``lost``: records a host had acknowledged (or sent) that are not stored (expected − distinct keys);
- ``duplicates``: rows beyond one per ``(device, store id, kind, seq)`` (rows − distinct keys);
- ``resent``: records the server answered as already held (sent again after a lost answer; stored once).

Scenarios: ``1`` and ``2`` server processes (``reuse_port``), and ``restart``: the server's process group is
killed with SIGKILL once ``restart_at`` of the records are acknowledged, and started again ``restart_down_s``
later; the hosts retry. Figures: records/s over the push, request latency p50/p99 (successful requests).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from forcecast.clinic.db.accounts import add_clinic
from forcecast.clinic.db.devices import enroll_device
from forcecast.clinic.db.engine import backend_of, create_engine
from forcecast.clinic.db.migrate import upgrade
from forcecast.clinic.db.patients import add_patient
from forcecast.clinic.db.schema import records
from forcecast.edge.errors import ForcecastRuntimeError, UsageError
from forcecast.edge.records import StepRecord
from forcecast.host_app.synthetic_days import waveform

POSTGRES_ENV = "FORCECAST_TEST_POSTGRES_URL"
TEMPLATES = 64
DAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()


class LoadTestError(ForcecastRuntimeError):
    """The load test could not run (no database server, a server that did not start, a refused batch)."""

    reason = "loadtest_failed"


@dataclass(frozen=True)
class LoadTestConfig:
    """The load test's size and behaviour.

    Attributes
    ----------
    hosts, records, batch
        Simulated hosts, step records per host (6,000 ≈ a day), records per request.
    concurrency
        Hosts pushing at the same moment (all by default).
    scenarios
        ``"1"``, ``"2"`` (server processes), ``"restart"`` (1 process, killed and restarted mid-run).
    restart_at, restart_down_s
        When to kill the server (fraction of records acknowledged) and for how long it stays down.
    retry_min_s, retry_max_s
        A host's backoff between failed attempts (doubling, jittered).
    request_timeout_s
        One request's limit (a request over it is retried).
    """

    hosts: int = 500
    records: int = 6000
    batch: int = 500
    concurrency: int = 500
    scenarios: tuple[str, ...] = ("1", "2", "restart")
    restart_at: float = 0.3
    restart_down_s: float = 2.0
    retry_min_s: float = 0.2
    retry_max_s: float = 5.0
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if min(self.hosts, self.records, self.batch, self.concurrency) < 1:
            raise UsageError("hosts, records, batch and concurrency must be at least 1")
        unknown = sorted(set(self.scenarios) - {"1", "2", "restart"})
        if unknown or not self.scenarios:
            raise UsageError(f"scenarios: {', '.join(unknown) or 'none'}; choose from 1, 2, restart")


@dataclass
class PushFigures:
    """What the hosts saw."""

    acknowledged: int = 0
    accepted: int = 0
    resent: int = 0
    requests: int = 0
    failed_requests: int = 0
    latencies_s: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- payloads


class DayPayloads:
    """Request bodies of a host's day, built from a few encoded step templates (cheap for the client)."""

    def __init__(self, records: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.records = records
        self.templates: list[tuple[str, str]] = []
        for k in range(TEMPLATES):
            peak1, peak2 = 1.1 + rng.normal(0, 0.05), 1.05 + rng.normal(0, 0.05)
            curves = waveform(peak1, peak2, rng)
            step = StepRecord(
                patient_id="P", leg="r" if k % 2 else "l", stance_s=round(0.62 + rng.normal(0, 0.02), 3),
                peak1_bw=round(peak1, 4), peak2_bw=round(peak2, 4), peak1_n=round(peak1 * 700, 2),
                peak2_n=round(peak2 * 700, 2), loading_rate_bw_s=round(9 + rng.normal(0, 0.6), 3),
                impulse_v_bws=round(0.55 + rng.normal(0, 0.02), 4), peak_ml_bw=0.06, peak_ml_n=42.0,
                flags=(), calibrated=True, model_version="cnn_lstm_static-int8",
            )  # fmt: skip
            brief = {key: value for key, value in step.to_payload().items() if key not in ("waveform_bw", "t_unix")}
            wave = np.asarray(curves, dtype="<f4").tobytes()
            self.templates.append((json.dumps(brief, separators=(",", ":"))[1:], base64.b64encode(wave).decode()))

    def body(self, device_id: str, start: int, end: int) -> bytes:
        """The JSON body of records ``start+1 .. end`` (seqs) of the day."""
        spacing = 14 * 3600 / self.records
        parts = []
        for seq in range(start + 1, end + 1):
            rest, wave = self.templates[seq % TEMPLATES]
            t = DAY + 7 * 3600 + seq * spacing
            parts.append(
                f'{{"kind":"step","seq":{seq},"t_host":{t + 0.8:.3f},"payload":{{"t_unix":{t:.3f},{rest},'
                f'"waveform_b64":"{wave}"}}'
            )
        return f'{{"device_id":"{device_id}","store_id":"day-1","records":[{",".join(parts)}]}}'.encode()


# ---------------------------------------------------------------------------------------------- databases


async def _admin(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str, attempts: int = 20) -> None:
    """Drop a throw-away database, waiting out a session the admin role may not end.

    ``WITH (FORCE)`` ends this role's connections, but PostgreSQL refuses when a session of another role is on the
    database (an autovacuum worker that started on the freshly written tables); it is gone within moments.
    """
    import asyncpg

    for attempt in range(attempts):
        try:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)


def new_database(target: str, folder: Path) -> tuple[str, Callable[[], None]]:
    """A fresh database for one scenario and a function that removes it."""
    if target == "sqlite":
        path = folder / f"clinic-{random.getrandbits(32):08x}.db"

        def remove_file() -> None:
            for leftover in folder.glob(f"{path.name}*"):
                leftover.unlink(missing_ok=True)

        return f"sqlite:///{path}", remove_file
    name = f"forcecast_load_{random.getrandbits(32):08x}"
    asyncio.run(_admin(target, f'CREATE DATABASE "{name}"'))
    url = make_url(target).set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(drop_database(target, name))


async def seed_hosts(url: str, hosts: int) -> list[tuple[str, str]]:
    """Migrate, then a clinic with one patient and one enrolled device per host: ``(device_id, token)``."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        enrolled = []
        async with engine.begin() as connection:
            clinic_id = await add_clinic(connection, "Load test clinic")
            for k in range(hosts):
                patient_id = await add_patient(
                    connection, clinic_id, f"L{k:04d}", "", affected_side="left", body_mass_kg=70.0, height_m=1.7
                )
                device, token = await enroll_device(connection, clinic_id, patient_id, f"load-{k:04d}")
                enrolled.append((device.device_id, token))
        return enrolled
    finally:
        await engine.dispose()


async def count_stored(url: str) -> dict[str, int]:
    """Rows, distinct keys, and the fewest and most records of one device."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = int(await connection.scalar(select(func.count()).select_from(records)) or 0)
            keys = select(records.c.device_pk, records.c.store_id, records.c.kind, records.c.seq).distinct()
            distinct = int(await connection.scalar(select(func.count()).select_from(keys.subquery())) or 0)
            per_device = select(func.count().label("n")).select_from(records).group_by(records.c.device_pk).subquery()
            low, high = (await connection.execute(select(func.min(per_device.c.n), func.max(per_device.c.n)))).one()
        return {"rows": rows, "distinct_keys": distinct, "fewest_per_device": int(low or 0), "most": int(high or 0)}
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------- the server


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``forcecast clinic serve`` in its own process group (so that a kill -9 takes every worker)."""

    def __init__(self, url: str, port: int, processes: int, log: Path) -> None:
        self.command = [
            sys.executable, "-m", "forcecast.cli", "clinic", "serve", "--database", url, "--port", str(port),
            "--processes", str(processes),
        ]  # fmt: skip
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (its output goes to the log file)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=out, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the whole process group (the supervisor and its workers)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it has not ended within 30 s."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    async def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Return once ``/healthz`` answers 200 (LoadTestError if the server exits or stays silent)."""
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise LoadTestError(f"the server exited ({self.process.returncode}); see {self.log}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise LoadTestError(f"the server did not answer within {timeout_s:.0f} s; see {self.log}")


# ---------------------------------------------------------------------------------------------- the hosts


async def push_all(
    config: LoadTestConfig,
    port: int,
    enrolled: list[tuple[str, str]],
    figures: PushFigures,
    on_progress: Callable[[int], None],
) -> None:
    """Every host pushes its day, ``config.concurrency`` at a time, retrying failed requests."""
    payloads = DayPayloads(config.records)
    url = f"http://127.0.0.1:{port}/api/v1/sync/records"
    gate = asyncio.Semaphore(config.concurrency)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=config.request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def host(device_id: str, token: str) -> None:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            async with gate:
                for start in range(0, config.records, config.batch):
                    end = min(start + config.batch, config.records)
                    body = payloads.body(device_id, start, end)
                    delay = config.retry_min_s
                    while True:
                        figures.requests += 1
                        began = time.perf_counter()
                        try:
                            async with session.post(url, data=body, headers=headers) as answer:
                                if answer.status == 200:
                                    data = await answer.json()
                                    figures.latencies_s.append(time.perf_counter() - began)
                                    break
                                text = await answer.text()
                                if answer.status < 500:
                                    raise LoadTestError(f"{device_id}: batch refused ({answer.status}): {text[:300]}")
                        except (aiohttp.ClientError, TimeoutError, OSError):
                            pass
                        figures.failed_requests += 1
                        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                        delay = min(delay * 2, config.retry_max_s)
                    figures.acknowledged += end - start
                    figures.accepted += int(data["accepted"])
                    figures.resent += int(data["duplicates"])
                    on_progress(end - start)

        await asyncio.gather(*(host(device_id, token) for device_id, token in enrolled))


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def run_scenario(config: LoadTestConfig, target: str, scenario: str, folder: Path, progress: bool) -> dict[str, Any]:
    """One scenario on a fresh database; returns its figures (see the module's description)."""
    processes = 2 if scenario == "2" else 1
    url, remove = new_database(target, folder)
    server: ServerProcess | None = None
    try:
        enrolled = asyncio.run(seed_hosts(url, config.hosts))
        server = ServerProcess(url, free_port(), processes, folder / f"serve-{scenario}.log")
        figures = PushFigures()
        expected = config.hosts * config.records
        restart: dict[str, Any] = {}
        bar = _bar(expected, f"scenario {scenario}") if progress else None

        async def main() -> float:
            assert server is not None
            server.start()
            await server.wait_healthy()
            killed = asyncio.Event()

            def on_progress(n: int) -> None:
                if bar is not None:
                    bar.update(n)
                if (
                    scenario == "restart"
                    and not killed.is_set()
                    and figures.acknowledged >= config.restart_at * expected
                ):
                    killed.set()

            async def restarter() -> None:
                await killed.wait()
                restart["killed_at_acknowledged"] = figures.acknowledged
                began = time.perf_counter()
                server.kill()
                await asyncio.sleep(config.restart_down_s)
                server.start()
                await server.wait_healthy()
                restart["down_s"] = round(time.perf_counter() - began, 2)

            helper = asyncio.create_task(restarter()) if scenario == "restart" else None
            began = time.perf_counter()
            await push_all(config, server.port, enrolled, figures, on_progress)
            wall = time.perf_counter() - began
            if helper is not None:
                if not helper.done():
                    helper.cancel()
                    raise LoadTestError("the run ended before the restart happened (use more records)")
                await helper
            return wall

        wall = asyncio.run(main())
        if bar is not None:
            bar.close()
        server.stop()
        counts = asyncio.run(count_stored(url))
        return {
            "scenario": {"1": "1 process", "2": "2 processes", "restart": "restart"}[scenario],
            "processes": processes,
            "hosts": config.hosts,
            "records_per_host": config.records,
            "records_expected": expected,
            "records_stored": counts["rows"],
            "distinct_keys": counts["distinct_keys"],
            "per_device": [counts["fewest_per_device"], counts["most"]],
            "lost": expected - counts["distinct_keys"],
            "duplicates": counts["rows"] - counts["distinct_keys"],
            "resent": figures.resent,
            "requests": figures.requests,
            "failed_requests": figures.failed_requests,
            "wall_s": round(wall, 2),
            "records_per_s": round(expected / wall, 1),
            "latency_ms": {
                "p50": round(_percentile(figures.latencies_s, 50), 1),
                "p99": round(_percentile(figures.latencies_s, 99), 1),
                "max": round(_percentile(figures.latencies_s, 100), 1),
            },
            **({"restart": restart} if restart else {}),
        }
    finally:
        if server is not None:
            server.stop()
        remove()


def _bar(total: int, label: str) -> Any:
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(total=total, desc=label, unit="rec", unit_scale=True, file=sys.stderr)


def run_load_test(config: LoadTestConfig, database: str | None, progress: bool = False) -> dict[str, Any]:
    """Every scenario of ``config`` against ``database``; returns the JSON-ready figures.

    Parameters
    ----------
    database
        Admin URL of a PostgreSQL server that lets the role create databases, ``"sqlite"``, or None for
        ``$FORCECAST_TEST_POSTGRES_URL``.
    progress
        Show a progress bar per scenario on stderr.

    Raises
    ------
    UsageError
        If no database is given and the variable is not set.
    LoadTestError
        If a server does not start or a batch is refused.
    """
    target = database or os.environ.get(POSTGRES_ENV, "")
    if not target:
        raise UsageError(f"give --database postgresql://USER:PW@HOST/postgres (or 'sqlite'), or set {POSTGRES_ENV}")
    if target != "sqlite" and backend_of(target) != "postgresql":
        raise UsageError("--database: a PostgreSQL server's URL, or 'sqlite'")
    with tempfile.TemporaryDirectory(prefix="forcecast-loadtest-") as tmp:
        runs = [run_scenario(config, target, scenario, Path(tmp), progress) for scenario in config.scenarios]
    return {
        "config": asdict(config),
        "database": "sqlite" if target == "sqlite" else "postgresql",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": runs,
    }
