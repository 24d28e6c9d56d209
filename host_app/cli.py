"""``forcecast host scan`` and ``forcecast host log``: the BLE central on this computer's Bluetooth adapter.

Only the standard library is imported at module level; handlers import bleak and the client.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common, refuse_non_empty

DB_HELP = (
    "host store (default: host.sqlite in this user's forcecast data folder: $XDG_DATA_HOME/forcecast, else "
    "~/.local/share/forcecast, on Linux; %%LOCALAPPDATA%%\\forcecast on Windows; "
    "~/Library/Application Support/forcecast on macOS)"
)


def default_db() -> Path:
    """The user's host store: ``host.sqlite`` in forcecast's data folder for this platform (platformdirs).

    ``$XDG_DATA_HOME/forcecast`` (else ``~/.local/share/forcecast``) on Linux, ``%LOCALAPPDATA%/forcecast``
    on Windows, ``~/Library/Application Support/forcecast`` on macOS. platformdirs is imported here, not at
    module level: the device's install builds this parser too and has no host packages.
    """
    from platformdirs import user_data_path

    return user_data_path("forcecast", appauthor=False) / "host.sqlite"


def register(commands: Any) -> None:
    """Add the ``host`` command group."""
    host = commands.add_parser(
        "host",
        help="the host app: find devices, log their records over BLE",
        description="The host app: a BLE central (bleak) that finds forcecast devices and logs their records.",
    )
    verbs = host.add_subparsers(dest="verb", metavar="VERB", required=True)

    scan = verbs.add_parser(
        "scan",
        help="list forcecast devices in range",
        description="Scan for devices advertising the forcecast service and list address, name and signal.",
    )
    scan.add_argument("--timeout", type=float, default=5.0, help="seconds to scan (default 5)")
    add_common(scan, json="print one JSON object")
    scan.set_defaults(handler=_scan)

    log = verbs.add_parser(
        "log",
        help="log a device's records into the host store, reconnecting forever",
        description="Connect (pairing on first use), resume after the last record the host store holds, store "
        "every record once, acknowledge it, and reconnect with backoff whenever the link drops. "
        "Stops on Ctrl-C or after --duration-s.",
    )
    log.add_argument("--device", metavar="ADDR", help="device address (default: the first forcecast device found)")
    log.add_argument("--db", type=Path, default=None, help=DB_HELP)
    log.add_argument("--duration-s", type=float, help="stop after this many seconds")
    log.add_argument("--live", action="store_true", help="also receive the live GRF stream (counted)")
    add_clinic_options(log, required=False)
    add_common(log, json="print the final counters as one JSON object")
    log.set_defaults(handler=_log)

    sync = verbs.add_parser(
        "sync",
        help="push the host store's records to the patient's clinic once (home sync)",
        description="Push every record of the enrolled device that the clinic has not acknowledged yet, in "
        "bounded batches, retrying with backoff while the clinic is unreachable (up to --give-up-s). A profile "
        "change the clinic offers is reported; 'host log --clinic' writes it to the device.",
    )
    sync.add_argument("--db", type=Path, default=None, help=DB_HELP)
    add_clinic_options(sync, required=True)
    sync.add_argument("--give-up-s", type=float, default=300.0, help="stop retrying after this long (default 300)")
    add_common(sync, json="print the push counters as one JSON object")
    sync.set_defaults(handler=_sync)

    live = verbs.add_parser(
        "live",
        help="the patient's live view: a local web page with the force trace, today's steps and cues",
        description="Log a device's records like 'host log' and serve a live page on 127.0.0.1: connection state, "
        "the live vertical GRF of each leg, today's steps and load, and biofeedback cues. Stop with Ctrl-C.",
    )
    live.add_argument("--device", metavar="ADDR", help="device address (default: the first forcecast device found)")
    live.add_argument("--db", type=Path, default=None, help=DB_HELP)
    live.add_argument("--port", type=int, default=8765, help="local port (default 8765; 0 = any free port)")
    live.add_argument("--tz", help="IANA time zone of the patient (default: this computer's)")
    live.add_argument("--open", action="store_true", help="open the page in the default browser")
    live.add_argument("--duration-s", type=float, help="stop after this many seconds")
    live.add_argument(
        "--virtual",
        action="store_true",
        help="no Bluetooth needed: a simulated device (the real runtime on a synthetic walker, in-process BLE link)",
    )
    live.add_argument(
        "--package",
        type=Path,
        default=Path("forcecast-demo/model-int8.fcpkg"),
        help="with --virtual: the signed model package the device runs (default: forcecast demo's)",
    )
    live.add_argument(
        "--pubkey",
        type=Path,
        default=Path("forcecast-demo/keys/forcecast_ed25519.pub"),
        help="with --virtual: the public key the package is signed with (default: forcecast demo's)",
    )
    add_patient_context(live, limit_default_help="with --virtual 1.1; else from the device's cues")
    add_common(live)
    live.set_defaults(handler=_live)

    report = verbs.add_parser(
        "report",
        help="the physiotherapist's daily report: one self-contained HTML file (optionally PDF)",
        description="Daily analytics for one patient and day from the host store, written as one HTML file with "
        "embedded plots (no network needed), printable; --pdf also prints it with headless Chromium.",
    )
    report.add_argument("--db", type=Path, default=None, help=DB_HELP)
    report.add_argument("--patient", required=True, help="patient id as recorded by the device")
    report.add_argument("--day", type=iso_day, help="YYYY-MM-DD (default: yesterday)")
    report.add_argument("--tz", help="IANA time zone of the patient, e.g. Europe/Berlin (default: this computer's)")
    report.add_argument("--out", type=Path, help="HTML file (default report-PATIENT-DAY.html)")
    report.add_argument("--pdf", action="store_true", help="also write a PDF next to the HTML (needs Chromium)")
    report.add_argument(
        "--paper", choices=("A4", "letter"), default="A4", help="printed page size of the HTML and PDF (default A4)"
    )
    add_patient_context(report, limit_default_help="from the device's cues")
    add_common(report, json="print the day's figures and flags as one JSON object")
    report.set_defaults(handler=_report)

    export = verbs.add_parser(
        "export",
        help="write a patient's steps, daily figures and events as CSV and Parquet",
        description="Per-step metrics (Parquet also with the 101-point waveforms), one row of figures per day, and "
        "the quality/cue events, for the days FROM..TO inclusive.",
    )
    export.add_argument("--db", type=Path, default=None, help=DB_HELP)
    export.add_argument("--patient", required=True, help="patient id")
    export.add_argument("--from", dest="first", type=iso_day, required=True, help="first day, YYYY-MM-DD")
    export.add_argument("--to", dest="last", type=iso_day, required=True, help="last day, YYYY-MM-DD")
    export.add_argument("--tz", help="IANA time zone (default: this computer's)")
    export.add_argument("--out", type=Path, required=True, help="folder to write")
    add_common(
        export,
        json="print what was written as one JSON object",
        force="write into a non-empty --out folder (files of the same names are replaced)",
    )
    export.set_defaults(handler=_export)

    bench = verbs.add_parser(
        "bench",
        help="live latency and notification throughput over the in-process BLE link (JSON with --json)",
        description="Run the GATT server and the host client on bumble's in-process link: latency of the live "
        "GRF stream (device timestamp → host receive) at MTU 517 and 23, and record throughput against what "
        "two legs of 100 Hz GRF need.",
    )
    bench.add_argument("--seconds", type=float, default=10.0, help="live streaming time (default 10)")
    bench.add_argument("--records", type=int, default=2000, help="step records to sync (default 2000)")
    bench.add_argument("--upload-kib", type=int, default=256, help="model upload size measured (0: skip)")
    bench.add_argument(
        "--report-steps", type=int, default=0, help="also time the daily report of a synthetic day of N steps"
    )
    add_common(bench, json="print exactly one JSON object")
    bench.set_defaults(handler=_bench)


def add_patient_context(parser: argparse.ArgumentParser, limit_default_help: str) -> None:
    """Options naming the patient context (affected side, knee alignment, body mass, height, feedback limit).

    Devices keep these to themselves (their info carries no personal data), so the host gets them here.
    """
    parser.add_argument("--affected-side", choices=("left", "right", "none"), help="the leg under treatment")
    parser.add_argument("--hka-deg", type=float, help="hip-knee-ankle angle of the affected knee, varus positive")
    parser.add_argument("--body-mass-kg", type=float, help="body mass (default: from the step records)")
    parser.add_argument("--height-m", type=float, help="height")
    parser.add_argument(
        "--limit-bw", type=float, help=f"biofeedback limit in body weights (default: {limit_default_help})"
    )


def patient_context(args: argparse.Namespace) -> Any:
    """The :class:`~forcecast.host_app.analytics.PatientContext` the options give (None if none was given).

    Raises
    ------
    forcecast.edge.errors.UsageError
        If a value is out of range (the message names the option).
    """
    from forcecast.edge.errors import UsageError
    from forcecast.host_app.analytics import PatientContext

    values = {
        "affected_side": args.affected_side,
        "hka_deg": args.hka_deg,
        "body_mass_kg": args.body_mass_kg,
        "height_m": args.height_m,
        "feedback_limit_bw": args.limit_bw,
    }
    if all(v is None for v in values.values()):
        return None
    try:
        return PatientContext(**values, source="the command line")
    except ValueError as exc:
        option = str(exc).split(":")[0].replace("feedback_limit_bw", "limit_bw").replace("_", "-")
        raise UsageError(f"--{option}: {str(exc).split(': ', 1)[-1]}") from None


def no_adapter(exc: BaseException) -> int:
    """Say that there is no usable Bluetooth adapter, and how to get one going; returns the exit status 2."""
    print(
        f"forcecast host: error: no usable Bluetooth adapter ({type(exc).__name__}: {exc or 'not found'}). "
        "On Linux, BlueZ must be running (systemctl status bluetooth) and the adapter powered on "
        "(bluetoothctl power on).",
        file=sys.stderr,
    )
    return 2


def _scan(args: argparse.Namespace) -> int:
    import asyncio

    from bleak.exc import BleakError

    from forcecast.host_app.client import scan

    try:
        found = asyncio.run(scan(args.timeout))
    except (BleakError, OSError) as exc:
        return no_adapter(exc)
    devices = [{"address": d.address, "name": a.local_name, "rssi": a.rssi} for d, a in found]
    if args.json:
        print(json.dumps({"devices": devices}))
    elif not devices:
        print(f"no forcecast device found in {args.timeout:g} s (is it on, and not connected to another host?)")
    else:
        for device, advertisement in sorted(found, key=lambda pair: -pair[1].rssi):
            print(f"{device.address}  {advertisement.local_name or '-':8}  {advertisement.rssi} dBm")
    return 0


def add_clinic_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """``--clinic URL`` and ``--clinic-token-file FILE``: where the home sync pushes, with which device token."""
    parser.add_argument(
        "--clinic",
        metavar="URL",
        required=required,
        help="the clinic server's address, e.g. https://clinic.example.org",
    )
    parser.add_argument(
        "--clinic-token-file",
        type=Path,
        metavar="FILE",
        required=required,
        help="file holding the device's sync token (from 'forcecast clinic enroll')",
    )


def clinic_pusher(args: argparse.Namespace, store: Any, writer: Any = None) -> Any:
    """The home-sync pusher the ``--clinic`` options ask for (None without them).

    Raises
    ------
    forcecast.edge.errors.UsageError
        If only one of the two options is given.
    """
    from forcecast.edge.errors import UsageError

    if args.clinic is None and args.clinic_token_file is None:
        return None
    if args.clinic is None or args.clinic_token_file is None:
        raise UsageError("--clinic and --clinic-token-file go together")
    from forcecast.host_app.clinic_sync import ClinicPusher, read_token

    return ClinicPusher(store, args.clinic, read_token(args.clinic_token_file), writer=writer)


def _sync(args: argparse.Namespace) -> int:
    import asyncio

    from forcecast.host_app.store import HostStore

    db = args.db or default_db()
    with HostStore(db) as store:
        pusher = clinic_pusher(args, store)
        stats = asyncio.run(pusher.push_until_done(give_up_s=args.give_up_s)).as_dict()
    if args.json:
        print(json.dumps(stats | {"db": str(db)}))
        return 0
    print(
        f"pushed {stats['sent']} records of {stats['device_id']} to {args.clinic}: {stats['accepted']} new, "
        f"{stats['duplicates']} the clinic had already"
        + (f", {stats['skipped']} unreadable ones kept here" if stats["skipped"] else "")
    )
    if stats["profile_version_offered"] is not None:
        print(
            f"the clinic changed the patient profile (version {stats['profile_version_offered']}): "
            "'forcecast host log --clinic ...' writes it to the device"
        )
    return 0


def _log(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from bleak.exc import BleakError

    from forcecast.host_app.client import ClientConfig, HostLogger
    from forcecast.host_app.store import HostStore

    db = args.db or default_db()
    store = HostStore(db)
    logger = HostLogger(store, args.device, ClientConfig(live=args.live))
    pusher = clinic_pusher(args, store, writer=logger)

    def on_state(state: str) -> None:
        if not args.json:
            where = f" {logger.device_id}" if logger.device_id and state in ("streaming", "disconnected") else ""
            why = f" ({logger.stats.last_error})" if state == "disconnected" and logger.stats.last_error else ""
            print(f"{state}{where}{why}", file=sys.stderr, flush=True)

    logger.on_state = on_state

    async def run() -> None:
        task = asyncio.create_task(logger.run())
        stop_sync = asyncio.Event()
        sync = asyncio.create_task(pusher.run(stop_sync)) if pusher is not None else None
        reported = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration_s):
                while not task.done():
                    await asyncio.sleep(1.0)
                    if not args.json and logger.stats.records_stored != reported:
                        reported = logger.stats.records_stored
                        print(f"  {reported} new records stored in {db}", file=sys.stderr, flush=True)
        logger.stop()
        stop_sync.set()
        await task
        if sync is not None:
            await sync

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (BleakError, OSError) as exc:
        return no_adapter(exc)
    finally:
        store.close()
    stats = logger.stats.as_dict() | {"db": str(db), "device_id": logger.device_id}
    if pusher is not None:
        stats["clinic"] = pusher.stats.as_dict()
    if args.json:
        print(json.dumps(stats))
    else:
        print(
            f"stored {stats['records_stored']} new records ({stats['duplicates_received']} re-sent ones ignored) "
            f"in {stats['sessions']} sessions; {db}"
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from forcecast.host_app.bench import run_link_bench

    result = run_link_bench(args.seconds, args.records, args.upload_kib, args.report_steps)
    if args.json:
        print(json.dumps(result))
        return 0
    for key in ("live", "live_min_mtu"):
        live = result[key]
        print(
            f"live GRF at MTU {live['mtu']}: latency p50 {live['latency_ms']['p50']:.1f} ms, "
            f"p99 {live['latency_ms']['p99']:.1f} ms; {live['samples_received']}/{live['samples_sent']} samples"
        )
    records, need = result["records"], result["need_100hz_two_legs"]
    print(
        f"records: {records['records']} in {records['seconds']:.2f} s = {records['records_per_s']:.0f}/s, "
        f"{records['kib_per_s']:.0f} KiB/s ({records['bytes_per_record']:.0f} B each at MTU {records['mtu']})"
    )
    print(
        f"100 Hz GRF, two legs, with steps needs {need['total'] / 1024:.1f} KiB/s: "
        f"{result['throughput_over_need']:.0f}x headroom"
    )
    if result["report"]:
        report = result["report"]
        print(f"daily report: {report['steps']} steps in {report['seconds']:.1f} s ({report['html_kib']} KiB HTML)")
    if result["upload"]:
        upload = result["upload"]
        print(
            f"model upload: {upload['bytes'] // 1024} KiB in {upload['seconds_median']:.2f} s = "
            f"{upload['kib_per_s_median']:.0f} KiB/s (median of {upload['runs']}, MTU {upload['mtu']})"
        )
    return 0


def iso_day(text: str) -> Any:
    """A date written YYYY-MM-DD (an argparse type)."""
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD") from None


def _open_existing(db: Path) -> Any:
    from forcecast.host_app.store import HostStore

    if not db.exists():
        raise FileNotFoundError(f"{db}: no host store here (log a device first: forcecast host log --db {db})")
    return HostStore(db)


def _report(args: argparse.Namespace) -> int:
    from forcecast.host_app.analytics import zone
    from forcecast.host_app.report import build_report, report_day_default, write_report

    tz = zone(args.tz)
    day = args.day or report_day_default(tz)
    context = patient_context(args)
    db = args.db or default_db()
    store = _open_existing(db)
    try:
        if args.patient not in store.patients():
            known = ", ".join(store.patients()) or "none"
            print(
                f"forcecast host report: error: no records of patient {args.patient!r} in {db} (patients: {known})",
                file=sys.stderr,
            )
            return 2
        report = build_report(store, args.patient, day, tz, source=str(db), context=context, paper=args.paper)
    finally:
        store.close()
    out = write_report(report, args.out or Path(f"report-{args.patient}-{day.isoformat()}.html"))
    pdf = None
    if args.pdf:
        from forcecast.host_app.browser import print_pdf

        pdf = print_pdf(out, out.with_suffix(".pdf"))
    if args.json:
        print(
            json.dumps(
                report.metrics.as_dict()
                | {"html": str(out), "pdf": str(pdf) if pdf else None, "seconds": round(report.seconds, 3)}
            )
        )
    else:
        m = report.metrics
        alerts = sum(f.level == "alert" for f in m.flags)
        print(
            f"{out} ({out.stat().st_size / 1024:.0f} KiB, {report.seconds:.1f} s): {m.steps} steps, "
            f"{m.walking_min:.0f} min walking, {alerts} alert(s)" + (f"; PDF {pdf}" if pdf else "")
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from forcecast.host_app.analytics import zone
    from forcecast.host_app.export import export_range

    tz = zone(args.tz)
    first, last = args.first, args.last
    if last < first:
        print(f"forcecast host export: error: --to {last} is before --from {first}", file=sys.stderr)
        return 2
    refuse_non_empty(args.out, args.force)
    store = _open_existing(args.db or default_db())
    try:
        written = export_range(store, args.patient, first, last, tz, args.out)
    finally:
        store.close()
    if args.json:
        print(json.dumps({k: str(v) for k, v in written.items()}))
    else:
        for name, path in written.items():
            print(f"{name}: {path}")
    return 0


def _live(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from bleak.exc import BleakError

    from forcecast.host_app.analytics import zone
    from forcecast.host_app.client import ClientConfig, HostLogger
    from forcecast.host_app.live import LiveView
    from forcecast.host_app.store import HostStore

    context = patient_context(args)
    if args.virtual:
        from forcecast.host_app.virtual_device import DEFAULT_LIMIT_BW, VirtualDeviceConfig

        virtual = VirtualDeviceConfig(
            args.package,
            args.pubkey,
            folder=(args.db or default_db()).parent / "virtual-device",
            limit_bw=args.limit_bw or DEFAULT_LIMIT_BW,
            affected_side=args.affected_side,
        )
    db = args.db or default_db()
    store = HostStore(db)

    async def serve(logger: HostLogger, view: LiveView) -> None:
        await view.start(args.port)
        where = "a simulated device" if args.virtual else "the device"
        print(f"live view: {view.url} for {where} (records go to {db}); Ctrl-C to stop", file=sys.stderr, flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(view.url)
        task = asyncio.create_task(logger.run())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration_s):
                    await asyncio.shield(task)
        finally:
            logger.stop()
            await task
            await view.stop()

    async def run() -> None:
        if not args.virtual:
            logger = HostLogger(store, args.device, ClientConfig(live=True))
            await serve(logger, LiveView(logger, store, zone(args.tz), context))
            return
        from forcecast.host_app.virtual_device import virtual_device

        async with virtual_device(virtual, store) as device:
            given = context.merged(device.context) if context is not None else device.context
            await serve(device.logger, LiveView(device.logger, store, zone(args.tz), given))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not args.virtual:
            return _no_adapter_live(exc)
        print(f"forcecast host live: error: cannot serve on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    except BleakError as exc:
        return _no_adapter_live(exc)
    finally:
        store.close()
    return 0


def _no_adapter_live(exc: BaseException) -> int:
    """:func:`no_adapter`, and how to try the live view without one."""
    status = no_adapter(exc)
    print(
        "forcecast host live: to try the page without Bluetooth, run it with a simulated device: "
        "forcecast host live --virtual (after 'forcecast demo', or with --package PKG --pubkey KEY)",
        file=sys.stderr,
    )
    return status
