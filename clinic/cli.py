"""``forcecast clinic ...``: run the clinic server and manage its clinics, users, patients and devices.

Only the standard library is imported at module level (the device's install builds this parser too); every
handler imports the server's packages (the ``clinic`` extra) itself.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from forcecast.edge.cli_options import add_common
from forcecast.edge.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from forcecast.clinic.config import ClinicSettings

T = TypeVar("T")
CONFIG_HELP = (
    "TOML file with a [clinic] table (database_url, host, port, ...) and, for serve, an optional [dashboard] "
    "table (timezone, login throttling, attention thresholds); see docs/clinic.md"
)
DATABASE_HELP = (
    "database URL: postgresql://USER:PASSWORD@HOST/DB or sqlite:///PATH (default: the config's, else "
    "sqlite:///forcecast-clinic.db in this folder)"
)


def register(commands: Any) -> None:
    """Add the ``clinic`` command group."""
    clinic = commands.add_parser(
        "clinic",
        help="the clinic server: home hosts sync to it; physiotherapists see their patients",
        description="The clinic server (aiohttp on PostgreSQL, or SQLite embedded) and its administration. "
        "Start with 'forcecast clinic migrate' and 'forcecast clinic serve'.",
    )
    verbs = clinic.add_subparsers(dest="verb", metavar="VERB", required=True)

    serve = verbs.add_parser(
        "serve",
        help="run the web server (sync API and dashboard)",
        description="Serve the sync API and the dashboard. Refuses a database that is not at this software's "
        "schema (run 'forcecast clinic migrate', or pass --migrate). Put a TLS proxy in front (docs/clinic.md).",
    )
    _database_options(serve)
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1: behind a proxy)")
    serve.add_argument("--port", type=int, help="port (default 8750)")
    serve.add_argument("--processes", type=int, help="server processes sharing the port (reuse_port; default 1)")
    serve.add_argument("--public-base-url", help="the address users reach through the proxy (https://...)")
    serve.add_argument("--insecure-cookies", action="store_true", help="session cookies over plain HTTP (a demo)")
    serve.add_argument("--migrate", action="store_true", help="migrate the database to this schema first")
    add_common(serve)
    serve.set_defaults(handler=_serve)

    migrate = verbs.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Upgrade an empty or older clinic database to this software's schema (one transaction).",
    )
    _database_options(migrate)
    add_common(migrate, json="print the revisions before and after as one JSON object")
    migrate.set_defaults(handler=_migrate)

    add_clinic = verbs.add_parser("add-clinic", help="create a clinic", description="Create a clinic.")
    add_clinic.add_argument("name", metavar="NAME", help="the clinic's name (unique)")
    _database_options(add_clinic)
    add_common(add_clinic, json="print the new clinic's id as one JSON object")
    add_clinic.set_defaults(handler=_add_clinic)

    add_user = verbs.add_parser(
        "add-user",
        help="create a dashboard user of a clinic",
        description="Create a physiotherapist's (or an administrator's) login. The password is read from "
        "--password-file, else asked for twice on the terminal, else read from standard input's first line.",
    )
    add_user.add_argument("--clinic", required=True, help="the clinic's name")
    add_user.add_argument("--email", required=True, help="login e-mail address")
    add_user.add_argument("--name", default="", help="display name (default: the address)")
    add_user.add_argument("--role", choices=("physio", "admin"), default="physio", help="default physio")
    add_user.add_argument("--password-file", type=Path, help="file whose first line is the password")
    _database_options(add_user)
    add_common(add_user, json="print the new user's id as one JSON object")
    add_user.set_defaults(handler=_add_user)

    add_patient = verbs.add_parser(
        "add-patient",
        help="create a patient of a clinic (pseudonymous code, static features, feedback limit)",
        description="Create a patient. The code is what devices and reports show; keep names out of it.",
    )
    add_patient.add_argument("--clinic", required=True, help="the clinic's name")
    add_patient.add_argument("--code", required=True, help="pseudonymous patient code, unique in the clinic")
    add_patient.add_argument("--name", default="", help="display name on the dashboard (default: the code)")
    add_patient.add_argument("--affected-side", choices=("left", "right", "none"), required=True)
    add_patient.add_argument("--body-mass-kg", type=float, required=True)
    add_patient.add_argument("--height-m", type=float, required=True)
    add_patient.add_argument("--hka-deg", type=float, help="hip-knee-ankle angle, varus positive (default unknown)")
    add_patient.add_argument("--feedback-limit-bw", type=float, help="cue above this load in BW (default none)")
    _database_options(add_patient)
    add_common(add_patient, json="print the new patient's id as one JSON object")
    add_patient.set_defaults(handler=_add_patient)

    enroll = verbs.add_parser(
        "enroll",
        help="enrol a device to a patient and issue its sync token (shown once)",
        description="Enrol a device to a patient and issue the token its home host syncs with. The token is "
        "printed once (or written to --token-file) and stored only as its SHA-256.",
    )
    enroll.add_argument("--clinic", required=True, help="the clinic's name")
    enroll.add_argument("--patient", required=True, help="the patient's code")
    enroll.add_argument("--device", required=True, help="the device's id (as 'forcecast host scan' shows it)")
    enroll.add_argument("--token-file", type=Path, help="write the token to this new file (mode 600) instead")
    _database_options(enroll)
    add_common(enroll, json="print the device and its token as one JSON object")
    enroll.set_defaults(handler=_enroll)

    revoke = verbs.add_parser(
        "revoke",
        help="revoke a device's sync token",
        description="Revoke a device's token: its host is refused from now on (401); its records stay.",
    )
    revoke.add_argument("device", metavar="DEVICE", help="the device's id")
    _database_options(revoke)
    add_common(revoke, json="print the device as one JSON object")
    revoke.set_defaults(handler=_revoke)

    devices = verbs.add_parser("devices", help="list enrolled devices", description="List enrolled devices.")
    devices.add_argument("--clinic", help="only this clinic's devices")
    _database_options(devices)
    add_common(devices, json="print the devices as one JSON object")
    devices.set_defaults(handler=_devices)

    loadtest = verbs.add_parser(
        "loadtest",
        help="simulated home hosts pushing a day each to 'clinic serve' over loopback (JSON figures)",
        description="Start 'forcecast clinic serve' on a fresh database and let N simulated hosts push M step "
        "records each concurrently: records/s, request latency p50/p99, lost and duplicated records (counted in "
        "the database afterwards), with 1 and 2 server processes and with a kill -9 and restart mid-run.",
    )
    loadtest.add_argument(
        "--database",
        help="an admin URL of a PostgreSQL server where a throw-away database is made (default: "
        "$FORCECAST_TEST_POSTGRES_URL), or 'sqlite' for a temporary SQLite file",
    )
    loadtest.add_argument("--hosts", type=int, default=500, help="simulated hosts (default 500)")
    loadtest.add_argument("--records", type=int, default=6000, help="step records per host (default 6000: a day)")
    loadtest.add_argument("--batch", type=int, default=500, help="records per request (default 500)")
    loadtest.add_argument("--concurrency", type=int, default=0, help="hosts pushing at once (default: all)")
    loadtest.add_argument(
        "--scenarios", default="1,2,restart", help="comma-separated: 1 and 2 (processes), restart (default all)"
    )
    add_common(loadtest, json="print the figures as one JSON object")
    loadtest.set_defaults(handler=_loadtest)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)
    parser.add_argument("--database", metavar="URL", help=DATABASE_HELP)


def _settings(args: argparse.Namespace, **overrides: Any) -> ClinicSettings:
    from forcecast.clinic.config import load_settings

    if args.config is not None and not args.config.is_file():
        raise FileNotFoundError(f"--config {args.config}: no such file")
    return load_settings(args.config, database_url=args.database, **overrides)


def _with_connection(
    settings: ClinicSettings, work: Callable[[AsyncConnection], Awaitable[T]], check_schema: bool = True
) -> T:
    """Run ``work`` in one transaction on the settings' database (at the current schema)."""
    from forcecast.clinic.db.engine import create_engine
    from forcecast.clinic.db.migrate import require_current

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            if check_schema:
                await require_current(engine)
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _migrate(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.engine import create_engine
    from forcecast.clinic.db.migrate import upgrade

    settings = _settings(args)

    async def run() -> Any:
        engine = create_engine(settings.database_url)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    outcome = asyncio.run(run())
    where = _shown(settings.database_url)
    text = (
        f"{where}: migrated from {outcome.before or 'an empty database'} to revision {outcome.after}"
        if outcome.changed
        else f"{where}: already at revision {outcome.after}"
    )
    _say(args, {"database": where, "before": outcome.before, "after": outcome.after}, text)
    return 0


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _serve(args: argparse.Namespace) -> int:
    from forcecast.clinic.dashboard import load_options
    from forcecast.clinic.server import serve

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        processes=args.processes,
        public_base_url=args.public_base_url,
        cookie_secure=False if args.insecure_cookies else None,
    )
    serve(settings, migrate=args.migrate, verbose=args.verbose, options=load_options(args.config))
    return 0


def _add_clinic(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.accounts import add_clinic

    async def work(connection: AsyncConnection) -> int:
        return await add_clinic(connection, args.name)

    clinic_id = _with_connection(_settings(args), work)
    _say(args, {"clinic_id": clinic_id, "name": args.name}, f"clinic {args.name!r} created (id {clinic_id})")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()
        if not lines:
            raise UsageError(f"--password-file {args.password_file}: the file is empty")
        return lines[0]
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
        return first
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise UsageError("no password: give --password-file, type it on a terminal, or pipe it on standard input")
    return line


def _add_user(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.accounts import add_user, clinic_id_of

    password = _password(args)

    async def work(connection: AsyncConnection) -> int:
        clinic_id = await clinic_id_of(connection, args.clinic)
        return await add_user(connection, clinic_id, args.email, args.name, password, args.role)

    user_id = _with_connection(_settings(args), work)
    _say(args, {"user_id": user_id, "email": args.email.strip().lower()}, f"user {args.email} created (id {user_id})")
    return 0


def _add_patient(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.accounts import clinic_id_of
    from forcecast.clinic.db.patients import add_patient

    async def work(connection: AsyncConnection) -> int:
        clinic_id = await clinic_id_of(connection, args.clinic)
        return await add_patient(
            connection, clinic_id, args.code, args.name, affected_side=args.affected_side,
            body_mass_kg=args.body_mass_kg, height_m=args.height_m, hka_deg=args.hka_deg,
            feedback_limit_bw=args.feedback_limit_bw,
        )  # fmt: skip

    patient_id = _with_connection(_settings(args), work)
    _say(args, {"patient_id": patient_id, "code": args.code}, f"patient {args.code!r} created (id {patient_id})")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.accounts import clinic_id_of
    from forcecast.clinic.db.devices import enroll_device
    from forcecast.clinic.db.patients import patient_id_of
    from forcecast.edge.cli_options import refuse_existing_file

    if args.token_file is not None:
        refuse_existing_file(args.token_file, False, "--token-file")

    async def work(connection: AsyncConnection) -> tuple[Any, str]:
        clinic_id = await clinic_id_of(connection, args.clinic)
        patient_id = await patient_id_of(connection, clinic_id, args.patient)
        return await enroll_device(connection, clinic_id, patient_id, args.device)

    device, token = _with_connection(_settings(args), work)
    data: dict[str, Any] = {"device_id": device.device_id, "patient": device.patient_code}
    if args.token_file is not None:
        args.token_file.parent.mkdir(parents=True, exist_ok=True)
        args.token_file.touch(mode=0o600)
        args.token_file.write_text(token + "\n", encoding="utf-8")
        data["token_file"] = str(args.token_file)
        text = f"device {device.device_id} enrolled to {device.patient_code}; token written to {args.token_file}"
    else:
        data["token"] = token
        text = (
            f"device {device.device_id} enrolled to {device.patient_code}.\n"
            f"Sync token (shown once; give it to the patient's host as --clinic-token-file):\n{token}"
        )
    _say(args, data, text)
    return 0


def _device_json(device: Any) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "patient": device.patient_code,
        "enrolled_at": device.enrolled_at,
        "revoked_at": device.revoked_at,
        "last_sync_at": device.last_sync_at,
        "profile_version": device.profile_version,
        "profile_version_applied": device.profile_version_applied,
    }


def _revoke(args: argparse.Namespace) -> int:
    from forcecast.clinic.db.devices import Device, revoke_device

    async def work(connection: AsyncConnection) -> Device:
        return await revoke_device(connection, args.device)

    device = _with_connection(_settings(args), work)
    _say(args, _device_json(device), f"device {device.device_id} revoked: its host is refused from now on")
    return 0


def _devices(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from forcecast.clinic.db.accounts import clinic_id_of
    from forcecast.clinic.db.devices import Device, list_devices

    async def work(connection: AsyncConnection) -> list[Device]:
        clinic_id = None if args.clinic is None else await clinic_id_of(connection, args.clinic)
        return await list_devices(connection, clinic_id)

    found = _with_connection(_settings(args), work)

    def when(t: float | None) -> str:
        return "never" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    lines = [f"{'device':<20} {'patient':<12} {'state':<8} {'last sync':<21} profile (applied/current)"]
    for d in found:
        state = "revoked" if d.revoked_at is not None else "active"
        lines.append(
            f"{d.device_id:<20} {d.patient_code:<12} {state:<8} {when(d.last_sync_at):<21} "
            f"{d.profile_version_applied}/{d.profile_version}"
        )
    _say(args, {"devices": [_device_json(d) for d in found]}, "\n".join(lines) if found else "no devices enrolled")
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from forcecast.clinic.loadtest import LoadTestConfig, run_load_test

    config = LoadTestConfig(
        hosts=args.hosts,
        records=args.records,
        batch=args.batch,
        concurrency=args.concurrency or args.hosts,
        scenarios=tuple(s.strip() for s in args.scenarios.split(",") if s.strip()),
    )
    result = run_load_test(config, args.database, progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for run in result["runs"]:
            print(
                f"{run['scenario']:>8}: {run['records_per_s']:,.0f} records/s, p50 {run['latency_ms']['p50']:.0f} ms, "
                f"p99 {run['latency_ms']['p99']:.0f} ms, lost {run['lost']}, duplicates {run['duplicates']}"
            )
    return 0 if all(run["lost"] == 0 and run["duplicates"] == 0 for run in result["runs"]) else 1
