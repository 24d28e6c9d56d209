"""``forcecast demo``: the whole system end to end on synthetic data, from nothing, in a few minutes.

1. synthesise a small dataset (six virtual subjects, format v1) and check it;
2. train a quick model, subject-wise;
3. make a signing key, quantise to int8 and sign the package;
4. run the edge runtime (verified package, golden self-test) on a synthetic walker of another cohort,
   both legs, over simulated days: several walking bouts a day, each dated at its time of day. Between
   bouts the walker sits, still wearing the device: the demo stores the step-free GRF summaries a worn,
   idle device writes (:func:`idle_summaries`) instead of running the model over hours of sitting, so the
   report's recorded time is the day's wear (about 13 h), not only the minutes of walking;
5. stream every record over the in-process BLE link (bumble GATT server ↔ bleak host client) into
   the host store;
6. write the physiotherapist's report for the last day;
7. build the clinic's database with the demo patient, synced through the sync API, and print the command that
   serves the dashboard (:mod:`forcecast.clinic.demo_clinic`).

This module may import every part (it is the dispatcher's); each import happens when it is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forcecast.edge.cli_options import add_common, refuse_non_empty
from forcecast.edge.errors import ForcecastRuntimeError, UsageError

if TYPE_CHECKING:
    from forcecast.edge.runtime.config import DeviceConfig
    from forcecast.edge.runtime.lifecycle import LoadedModel

DAYS = 7
BOUTS_LAST_DAY = (
    ("comfortable", 60.0),
    ("fast", 40.0),
    ("slow", 50.0),
    ("comfortable", 60.0),
    ("fast", 30.0),
    ("comfortable", 45.0),
    ("slow", 40.0),
    ("comfortable", 60.0),
)
BOUTS_EARLIER_DAY = (("comfortable", 40.0), ("slow", 30.0), ("comfortable", 40.0))
FIRST_BOUT_HOUR = 8.0
LAST_BOUT_HOUR = 20.0
WORN_BEFORE_S = 30 * 60.0
"""The device goes on this long before the first bout and comes off this long after the last one."""
IDLE_SUMMARY_S = 60.0
WALKER = 3
WALKER_SEED = 5
"""The walker: subject 3 of another cohort than the training data, so the model has never seen them."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes."""

    root: Path

    @property
    def data(self) -> Path:
        """The synthetic dataset."""
        return self.root / "data"

    @property
    def run(self) -> Path:
        """The training run."""
        return self.root / "run"

    @property
    def keys(self) -> Path:
        """The signing key pair."""
        return self.root / "keys"

    @property
    def package(self) -> Path:
        """The signed int8 package."""
        return self.root / "model-int8.fcpkg"

    @property
    def device_store(self) -> Path:
        """The device's record store."""
        return self.root / "device.sqlite"

    @property
    def host_store(self) -> Path:
        """The host app's store."""
        return self.root / "host.sqlite"


def register(commands: Any) -> None:
    """Add ``forcecast demo``."""
    demo = commands.add_parser(
        "demo",
        help="the whole system end to end on synthetic data (a few minutes)",
        description="Synthesise a small dataset, train a quick model, quantise and sign it, run the edge runtime "
        "on a synthetic walker over simulated days, stream over the in-process BLE link to the host app, "
        "and write the daily report of the last day.",
    )
    demo.add_argument("--out", type=Path, default=Path("forcecast-demo"), help="folder (default ./forcecast-demo)")
    demo.add_argument("--days", type=int, default=DAYS, help=f"simulated days (default {DAYS})")
    demo.add_argument("--seed", type=int, default=1, help="dataset and training seed")
    add_common(
        demo,
        json="also print the result as one JSON object (last line)",
        force="run again into a non-empty --out folder (its files are replaced)",
    )
    demo.set_defaults(handler=_handle)


def _handle(args: Any) -> int:
    import json

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    refuse_non_empty(args.out, args.force)
    result = run_demo(args.out, args.days, args.seed, force=args.force)
    if args.json:
        print(json.dumps(result))
    return 0


def _step(number: int, text: str) -> None:
    print(f"\n[{number}/6] {text}", flush=True)


class DemoStageError(ForcecastRuntimeError):
    """A stage of the demo failed; the stage's own command has said why. Exits with that command's status."""

    reason = "demo_stage_failed"

    def __init__(self, argv: list[str], status: int) -> None:
        self.exit_code = status
        super().__init__(f"stopped: 'forcecast {' '.join(argv)}' ended with exit status {status} (its error above)")


def _cli(argv: list[str]) -> None:
    from forcecast.cli import main

    status = main(argv)
    if status != 0:
        raise DemoStageError(argv, status)


def run_demo(out: Path, days: int = DAYS, seed: int = 1, force: bool = False) -> dict[str, Any]:
    """Run every stage; returns where everything is and the figures of the last day.

    ``force`` lets each stage write over what a previous demo left in ``out``.
    """
    again = ["--force"] if force else []
    started = time.perf_counter()
    paths = DemoPaths(out)
    out.mkdir(parents=True, exist_ok=True)
    _step(1, f"synthetic dataset → {paths.data}")
    _cli(["data", "synth", "--out", str(paths.data), "--subjects", "6", "--seed", str(seed), *again])
    _cli(["data", "check", str(paths.data)])
    _step(2, f"quick training, subject-wise → {paths.run}")
    _cli(["train", str(paths.data), "--out", str(paths.run), "--quick", "--seed", str(seed), *again])
    _step(3, f"signing key and int8 package → {paths.package}")
    if not (paths.keys / "forcecast_ed25519.key").exists():
        _cli(["keys", "new", "--out", str(paths.keys)])
    _cli(
        [
            "quantize",
            "--run",
            str(paths.run),
            "--out",
            str(paths.package),
            "--key",
            str(paths.keys / "forcecast_ed25519.key"),
            "--mode",
            "int8",
            "--allow-degradation",
            *again,
        ]
    )
    last_day = date.today() - timedelta(days=1)
    _step(4, f"edge runtime on a synthetic walker, {days} simulated days, streamed over the in-process BLE link")
    simulated = asyncio.run(simulate(paths, last_day, days))
    _step(
        5,
        f"host store {paths.host_store}: {simulated['host_steps']} of {simulated['device_steps']} step records "
        f"(lost {simulated['lost']}; {simulated['resent_ignored']} re-sent ones ignored)",
    )
    _step(6, "daily report")
    from forcecast.host_app.analytics import zone
    from forcecast.host_app.report import build_report, write_report
    from forcecast.host_app.store import HostStore

    store = HostStore(paths.host_store)
    try:
        report = build_report(store, simulated["patient_id"], last_day, zone(None), source=str(paths.host_store))
    finally:
        store.close()
    html = write_report(report, out / f"report-{simulated['patient_id']}-{last_day.isoformat()}.html")
    _step(7, "clinic server database with the demo patient, synced through the sync API")
    from forcecast.clinic.demo_clinic import prepare_demo_clinic

    clinic = asyncio.run(
        prepare_demo_clinic(paths.host_store, out / "clinic", simulated["device_id"], simulated["profile"])
    )
    seconds = time.perf_counter() - started
    m = report.metrics
    print(
        f"\nreport: {html.resolve()}\n  {m.steps} steps, {m.walking_min:.0f} min walking, mean peak "
        f"{m.peak_bw_mean} BW, asymmetry {m.asymmetry}, {sum(f.level == 'alert' for f in m.flags)} alert(s)\n"
        f"  recorded time {m.wear_min / 60:.1f} h (the device was worn from before the first bout to after the last)\n"
        f"open it in a browser; the whole demo took {seconds:.0f} s\n"
        f"the patient's live view with a simulated device: forcecast host live --virtual --package {paths.package} "
        f"--pubkey {paths.keys / 'forcecast_ed25519.pub'}\n"
        f"the clinic's dashboard ({clinic.records} records of the demo patient): {clinic.command}\n"
        f"  then open http://127.0.0.1:8750 and log in as {clinic.email} with the password in {clinic.login_file}",
        flush=True,
    )
    return {
        "report": str(html.resolve()),
        "seconds": round(seconds, 1),
        **simulated,
        "day": last_day.isoformat(),
        "recorded_h": round(m.wear_min / 60, 2),
        "clinic": clinic.as_dict(),
    }


def _bout_times(day: date, count: int) -> list[float]:
    """Unix start times of ``count`` bouts spread over the day (local time)."""
    spacing = (LAST_BOUT_HOUR - FIRST_BOUT_HOUR) / max(count - 1, 1)
    midnight = datetime.combine(day, datetime.min.time()).astimezone()
    return [(midnight + timedelta(hours=FIRST_BOUT_HOUR + k * spacing)).timestamp() for k in range(count)]


def idle_summaries(start: float, end: float, patient_id: str, legs: tuple[str, ...]) -> list[tuple[float, Any]]:
    """GRF summaries of a worn device while its wearer sits, ``start`` to ``end`` (Unix s), ``IDLE_SUMMARY_S`` each.

    No steps, no cues; ``(device time, record)`` pairs dated by ``t_unix`` as the runtime dates its summaries.
    """
    from forcecast.edge.records import SummaryRecord

    out: list[tuple[float, Any]] = []
    t = start
    while end - t >= 1.0:
        span = min(IDLE_SUMMARY_S, end - t)
        record = SummaryRecord(
            t_unix=round(t, 3),
            patient_id=patient_id,
            start_s=0.0,
            end_s=round(span, 3),
            steps=dict.fromkeys(legs, 0),
            cues=0,
        )
        out.append((t, record))
        t += span
    return out


def device_model(package: Path, pubkey: Path, config: DeviceConfig, columns: tuple[str, ...]) -> LoadedModel:
    """The demo device's model, loaded as every device entry point loads one (verified, fitted, self-tested).

    Raises
    ------
    forcecast.edge.package.PackageError
        If the package is refused (the reasons of :func:`forcecast.edge.runtime.lifecycle.load_model`).
    """
    from forcecast.edge.runtime.lifecycle import ModelFit, load_model_file

    return load_model_file(package, [pubkey], ModelFit.of(config, columns))


async def simulate(paths: DemoPaths, last_day: date, days: int) -> dict[str, Any]:
    """The device side and the host side over the virtual link, for ``days`` simulated days."""
    from tqdm import tqdm

    from forcecast.edge.link import DeviceLink
    from forcecast.edge.runtime.config import DeviceConfig, FeedbackConfig, PatientConfig, RuntimeConfig
    from forcecast.edge.runtime.device_info import device_info
    from forcecast.edge.runtime.pipeline import Pipeline, run_source
    from forcecast.edge.runtime.store import RecordStore
    from forcecast.host_app.client import ClientConfig
    from forcecast.host_app.store import HostStore
    from forcecast.host_app.virtual_link import virtual_link
    from forcecast.lab.sources.synthetic import SyntheticSource

    logging.getLogger("bumble").setLevel(logging.ERROR)
    walking = SyntheticSource(subject=WALKER, seed=WALKER_SEED)
    walker = walking.subject
    patient = PatientConfig(
        patient_id="DEMO-01",
        body_mass_kg=walker.body_mass_kg,
        height_m=walker.height_m,
        hka_deg=walker.hka_deg,
        affected_side=walking.walker.affected_side,  # the walker's own field is typed (left, right or none)
        peak_limit_bw=1.25,
    )
    config = DeviceConfig(
        device_id="fc-demo",
        patient=patient,
        runtime=RuntimeConfig(legs=("l", "r")),
        feedback=FeedbackConfig(output="none"),
    )
    loaded = device_model(paths.package, paths.keys / "forcecast_ed25519.pub", config, walking.columns)
    package, contract, model = loaded.package, loaded.contract, loaded.model
    for stale in (paths.device_store, paths.host_store):
        for suffix in ("", "-wal", "-shm"):
            Path(str(stale) + suffix).unlink(missing_ok=True)
    store = RecordStore(paths.device_store, device_id=config.device_id)
    info = device_info(config, package, contract)
    plan = []
    for back in range(days - 1, -1, -1):
        day = last_day - timedelta(days=back)
        bouts = BOUTS_LAST_DAY if back == 0 else BOUTS_EARLIER_DAY
        plan += list(zip(_bout_times(day, len(bouts)), bouts, strict=True))
    host = HostStore(paths.host_store)
    async with virtual_link(DeviceLink(store, info), output_rate_hz=contract.rate_hz) as link:
        logger = link.logger(host, ClientConfig(ack_period_s=0.2))
        client = asyncio.create_task(logger.run())
        worn_from = plan[0][0] - WORN_BEFORE_S
        for number, (start, (condition, seconds)) in enumerate(tqdm(plan, desc="walking bouts", unit="bout")):
            if datetime.fromtimestamp(start).date() != datetime.fromtimestamp(worn_from).date():
                worn_from = start - WORN_BEFORE_S  # a new day: the device went on before its first bout
            store.append("summary", idle_summaries(worn_from, start, patient.patient_id, config.runtime.legs))
            worn_from = start + 3.0 + seconds
            last_of_day = number + 1 == len(plan) or (
                datetime.fromtimestamp(plan[number + 1][0]).date() != datetime.fromtimestamp(start).date()
            )
            if last_of_day:
                end = worn_from + WORN_BEFORE_S
                store.append("summary", idle_summaries(worn_from, end, patient.patient_id, config.runtime.legs))
                worn_from = end
            source = SyntheticSource(
                subject=WALKER,
                seed=WALKER_SEED + number,
                speed=0,
                stand_s=3.0,
                program=((condition, seconds),),
                duration_s=3.0 + seconds,
            )
            pipeline = Pipeline(
                model,
                contract,
                config,
                source.columns,
                source.rate_hz,
                source.acc_range_mps2,
                source.gyr_range_rads,
                sink=store,
                model_version=str(package.manifest["model_version"]),
                patient=patient,
                listeners=[link.server.listener],
                time_origin_unix=start,
            )
            await asyncio.to_thread(run_source, pipeline, source)
        last = store.last_seq("step")
        for _ in range(1200):
            if host.resume_point(config.device_id, "step") >= last and logger.state == "streaming":
                break
            await asyncio.sleep(0.05)
        logger.stop()
        await client
    device_steps = store.last_seq("step")
    host_steps = host.count(config.device_id, "step")
    store.close()
    host.close()
    return {
        "patient_id": patient.patient_id,
        "device_id": config.device_id,
        "profile": {
            "patient_id": patient.patient_id,
            "affected_side": patient.affected_side,
            "body_mass_kg": patient.body_mass_kg,
            "height_m": patient.height_m,
            "hka_deg": patient.hka_deg,
            "feedback_limit_bw": patient.peak_limit_bw or None,  # 0 means no cue
        },
        "device_steps": device_steps,
        "host_steps": host_steps,
        "lost": device_steps - host_steps,
        "resent_ignored": logger.stats.duplicates_received,
        "bouts": len(plan),
        "device_store": str(paths.device_store),
        "host_store": str(paths.host_store),
    }
