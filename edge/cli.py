"""Subcommands owned by ``edge``: ``forcecast data synth|check|resample``.

Only the standard library is imported here; each handler imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Add the ``data``, ``keys``, ``package`` and ``edge`` command groups to the top-level subparsers."""
    from edge.runtime.commands import register as register_runtime

    _register_pair(register_runtime(commands))
    data = commands.add_parser(
        "data",
        help="synthesise, check and resample datasets (format v1)",
        description="Work with datasets in forcecast's interchange format v1.",
    )
    verbs = data.add_subparsers(dest="verb", metavar="VERB", required=True)

    synth = verbs.add_parser(
        "synth",
        help="write the synthetic gait lab dataset",
        description="Generate virtual subjects walking on an instrumented treadmill with IMUs, in format v1. "
        "The same seed gives byte-identical files.",
    )
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    synth.add_argument("--subjects", type=int, help="number of subjects (default 20)")
    synth.add_argument("--seed", type=int, help="master seed (default 0)")
    synth.add_argument("--duration-s", type=float, help="length of each walking trial (default 60)")
    synth.add_argument("--speeds", help="comma-separated conditions from slow,comfortable,fast (default all)")
    synth.add_argument("--format", dest="file_format", choices=("csv", "parquet"), help="file format (default csv)")
    synth.add_argument("--config", type=Path, help="TOML file with a [synth] table; flags override it")
    synth.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    synth.add_argument(
        "--preset",
        choices=("easy", "hard"),
        default="easy",
        help="easy: treadmill dataset in format v1 (default); hard: an overground lab's raw C3D files, "
        "mapping.toml and subjects.csv without body mass, ready for 'forcecast data import'",
    )
    synth.set_defaults(handler=_synth)

    lab_import = verbs.add_parser(
        "import",
        help="import lab files (C3D, OpenSim .mot/.sto, CSV) into a dataset",
        description="Read SRC/subjects.csv and SRC/<subject_id>/*.c3d|.mot|.sto|.csv, pick and scale channels "
        "with the mapping file, assign clean plate contacts to feet, set swing to 0 N, estimate and correct "
        "the IMU lag, estimate unknown body mass, and write a dataset of format v1 to --out.",
    )
    lab_import.add_argument("src", type=Path, help="folder of lab files, one folder per subject")
    lab_import.add_argument("--mapping", type=Path, required=True, help="mapping file (TOML)")
    lab_import.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    lab_import.add_argument(
        "--imu-lag",
        default="auto",
        help="IMU lag behind the force clock: auto (estimate per trial, default) or milliseconds to apply",
    )
    lab_import.add_argument(
        "--skip-static",
        action="store_true",
        help="do not keep quiet-standing (static) trials as IMU-only trials for the segment_v1 alignment "
        "(they still weigh the subject)",
    )
    lab_import.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    lab_import.set_defaults(handler=_import)

    check = verbs.add_parser(
        "check",
        help="validate a dataset and summarise it",
        description="Check every file of a dataset (format v1). Exits 1 if any error is found, "
        "listing each with its file, row and column.",
    )
    check.add_argument("dataset", type=Path, help="dataset folder")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    check.set_defaults(handler=_check)

    resample = verbs.add_parser(
        "resample",
        help="resample a dataset to one rate (single-file trials)",
        description="Write a copy of a dataset with every trial's IMU and force on one time base at "
        "--rate-hz (anti-aliased: causal for IMU, zero-phase for force).",
    )
    resample.add_argument("dataset", type=Path, help="dataset folder to read")
    resample.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    resample.add_argument("--rate-hz", type=float, required=True, help="target sampling rate")
    resample.add_argument("--format", dest="file_format", choices=("csv", "parquet"), default="csv")
    resample.set_defaults(handler=_resample)

    keys = commands.add_parser("keys", help="signing keys for model packages")
    key_verbs = keys.add_subparsers(dest="verb", metavar="VERB", required=True)
    new = key_verbs.add_parser(
        "new",
        help="create an Ed25519 key pair",
        description="Write forcecast_ed25519.key (private, mode 600) and .pub into --out.",
    )
    new.add_argument("--out", type=Path, required=True, help="folder for the key pair")
    new.set_defaults(handler=_keys_new)

    package = commands.add_parser("package", help="inspect and verify model packages (.fcpkg)")
    package_verbs = package.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = package_verbs.add_parser("info", help="show a package's manifest and contract")
    info.add_argument("package", type=Path)
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.set_defaults(handler=_package_info)
    verify = package_verbs.add_parser(
        "verify",
        help="check hash, signature and golden pairs",
        description="Exit 0 only if the package is signed by --pubkey, intact, has a "
        "valid contract and its golden pairs run within tolerance here.",
    )
    verify.add_argument("package", type=Path)
    verify.add_argument("--pubkey", type=Path, action="append", required=True, help="trusted public key (repeatable)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_package_verify)


def _register_pair(edge_verbs: Any) -> None:
    pair = edge_verbs.add_parser(
        "pair",
        help="let a new host pair with the running device for a while (run as root on the device)",
        description="The local action that opens BLE pairing: asks the running forcecast service, over its Unix "
        "socket ([ble] pairing_socket, mode 0600), to accept new hosts for [ble] pairing_window_s seconds. "
        "Pairing is closed at every start; bonded hosts always reconnect. Exit 2 if no service answers.",
    )
    pair.add_argument("--config", type=Path, help="device.toml (for [ble] pairing_socket and pairing_window_s)")
    pair.add_argument("--socket", type=Path, help="pairing socket (default: from --config, else the built-in default)")
    pair.add_argument("--seconds", type=float, help="how long to accept new hosts (default [ble] pairing_window_s)")
    action = pair.add_mutually_exclusive_group()
    action.add_argument("--close", action="store_true", help="close the pairing window now")
    action.add_argument("--status", action="store_true", help="only show whether pairing is open")
    pair.add_argument("--json", action="store_true", help="print the service's reply as JSON")
    pair.set_defaults(handler=_pair)


def _pair(args: argparse.Namespace) -> int:
    from edge.ble.pairing import MAX_OPEN_S, PairingError, request_pairing
    from edge.runtime.config import BleConfig, load_device_config

    ble = load_device_config(args.config).ble if args.config else BleConfig()
    path = args.socket or ble.pairing_socket
    command = "close" if args.close else "status" if args.status else "open"
    seconds = None
    if command == "open":
        seconds = ble.pairing_window_s if args.seconds is None else args.seconds
        if not 0 < seconds <= MAX_OPEN_S:
            print(
                f"forcecast edge pair: error: --seconds must be in (0, {MAX_OPEN_S:g}], got {seconds:g}",
                file=sys.stderr,
            )
            return 2
    try:
        reply = request_pairing(path, command, seconds)
    except PairingError as exc:
        print(f"forcecast edge pair: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(reply))
    elif not reply.get("ok"):
        print(f"forcecast edge pair: refused by the service: {reply.get('error')}", file=sys.stderr)
    elif reply.get("open"):
        print(f"pairing open for {reply['closes_in_s']:g} s: pair the new host now (forcecast host log --device ADDR)")
    else:
        print(f"pairing closed (bonds accepted {reply.get('accepted', 0)}, refused {reply.get('refused', 0)})")
    return 0 if reply.get("ok") else 2


def _progress(json_output: bool, unit: str, desc: str) -> Any:
    from tqdm import tqdm

    def wrap(items: Any, total: int) -> Any:
        return tqdm(
            items,
            total=total,
            unit=unit,
            desc=desc,
            disable=True if json_output else None,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    return wrap


def _synth(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edge.config import ConfigError, load_config
    from edge.synth import SynthConfig, generate_dataset

    config = load_config(SynthConfig, args.config, "synth") if args.config else _preset_config(args.preset)
    overrides: dict[str, Any] = {}
    for name in ("subjects", "seed", "duration_s", "file_format"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.speeds is not None:
        overrides["speeds"] = tuple(s.strip() for s in args.speeds.split(",") if s.strip())
    try:
        config = replace(config, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.preset == "hard":
        return _synth_overground(args, config)
    started = time.perf_counter()
    subjects = generate_dataset(args.out, config, _progress(args.json, "trial", "synth"))
    elapsed = time.perf_counter() - started
    n_trials = len(subjects) * (len(config.speeds) + (1 if config.static_s > 0 else 0))
    result = {
        "out": str(args.out),
        "subjects": len(subjects),
        "trials": n_trials,
        "seed": config.seed,
        "seconds": round(elapsed, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {len(subjects)} subjects, {n_trials} trials to {args.out} in {elapsed:.1f} s")
    return 0


def _import(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.dataset.importers import load_mapping
    from edge.dataset.importers.importer import import_lab_data, render_report

    if args.imu_lag == "auto":
        lag_ms = None
    else:
        try:
            lag_ms = float(args.imu_lag)
        except ValueError:
            raise ConfigError(f"--imu-lag must be 'auto' or a number of milliseconds, got {args.imu_lag!r}") from None
        if not -500.0 <= lag_ms <= 500.0:
            raise ConfigError(f"--imu-lag {lag_ms:g} ms is beyond ±500 ms")
    mapping = load_mapping(args.mapping)
    report = import_lab_data(
        args.src, mapping, args.out, lag_ms, _progress(args.json, "file", "import"), keep_static=not args.skip_static
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(render_report(report))
    return 0


def _check(args: argparse.Namespace) -> int:
    from edge.dataset import check_dataset

    report = check_dataset(args.dataset, _progress(args.json, "trial", "check"))
    summary = report.summary()
    if args.json:
        print(json.dumps({"ok": report.ok, "summary": summary, "problems": [p.to_dict() for p in report.problems]}))
        return 0 if report.ok else 1
    print(f"dataset   {summary['root']}")
    print(f"subjects  {summary['subjects']} ({summary['subjects_with_trials']} with trials)")
    print(f"trials    {summary['trials']}, {_duration(float(summary['duration_s']))} in all")  # type: ignore[arg-type]
    print(f"IMU rates {', '.join(f'{r:g} Hz' for r in summary['imu_rates_hz']) or '-'}")  # type: ignore[attr-defined]
    print(
        f"force     {', '.join(f'{r:g} Hz' for r in summary['force_rates_hz']) or 'none'}; coverage "  # type: ignore[attr-defined]
        + ", ".join(f"{side} {100 * c:.1f} %" for side, c in summary["force_coverage"].items())
    )  # type: ignore[attr-defined]
    print(f"places    {', '.join(summary['places']) or '-'}")  # type: ignore[arg-type]
    lags = summary.get("imu_lag_ms") or {}
    if lags:
        print("IMU lag   " + ", ".join(f"{name} {lag:+.0f} ms" for name, lag in lags.items()))  # type: ignore[attr-defined]
    for problem in report.problems:
        print(f"  {problem}")
    verdict = "OK" if report.ok else "FAILED"
    print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if report.ok else 1


def _preset_config(preset: str) -> Any:
    """The synthetic lab's settings for a preset (the hard preset's IMU side, where defined, from edge.synth)."""
    from edge.synth import SynthConfig
    from edge.synth import config as synth_config

    if preset == "hard" and hasattr(synth_config, "hard_preset"):
        return synth_config.hard_preset()
    return SynthConfig()


def _synth_overground(args: argparse.Namespace, config: Any) -> int:
    from edge.synth.c3d_export import OvergroundConfig, write_overground_dataset

    started = time.perf_counter()
    progress = _progress(args.json, "trial", "synth")
    truth = write_overground_dataset(args.out, config, OvergroundConfig(seed=config.seed), progress)
    elapsed = time.perf_counter() - started
    subjects = truth["subjects"]
    n_trials = sum(len(s["trials"]) for s in subjects.values())  # type: ignore[attr-defined]
    result = {
        "out": str(args.out),
        "subjects": len(subjects),  # type: ignore[arg-type]
        "trials": n_trials,
        "seed": config.seed,
        "seconds": round(elapsed, 2),
        "preset": "hard",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"wrote {len(subjects)} subjects, {n_trials} C3D trials, mapping.toml and subjects.csv to {args.out} "  # type: ignore[arg-type]
            f"in {elapsed:.1f} s (true lags and masses in {args.out}/_truth); next: forcecast data import {args.out} "
            f"--mapping {args.out}/mapping.toml --out DATASET"
        )
    return 0


def _resample(args: argparse.Namespace) -> int:
    import shutil

    from tqdm import tqdm

    from edge.dataset import SUBJECTS_FILE, Dataset, resample_trial, write_trial

    if args.out.resolve() == args.dataset.resolve():
        raise FileExistsError(f"--out must differ from the input dataset ({args.out})")
    dataset = Dataset.open(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.dataset / SUBJECTS_FILE, args.out / SUBJECTS_FILE)
    for ref in tqdm(dataset.trials, unit="trial", desc="resample", file=sys.stderr, disable=None):
        trial = resample_trial(dataset.load(ref), args.rate_hz)
        write_trial(args.out, trial, file_format=args.file_format, paired=False)
    print(f"wrote {len(dataset.trials)} trials at {args.rate_hz:g} Hz to {args.out}")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _keys_new(args: argparse.Namespace) -> int:
    from edge.keys import key_id, load_public_key, new_key_pair

    private, public = new_key_pair(args.out)
    print(f"private key {private} (keep it secret; it signs models)")
    print(f"public key  {public} (give it to devices; key id {key_id(load_public_key(public))})")
    return 0


# Reasons for which a file cannot even be read as a package (exit 2, like any bad input file); a package
# that is read but refused (signer, signature, model hash, contract, golden pairs) is a verdict: exit 1.
_READ_FAILURES = frozenset(
    {
        "unreadable",
        "too_large",
        "too_many_members",
        "member_duplicate",
        "member_unknown",
        "member_missing",
        "manifest_invalid",
        "field_missing",
        "unsupported",
    }
)


def _refused(args: argparse.Namespace, reason: str, message: str, status: int) -> int:
    """Print one line (or one JSON object with --json) naming the reason; return the exit status."""
    if args.json:
        print(json.dumps({"ok": False, "reason": reason, "message": message}))
    else:
        print(f"REFUSED ({reason}): {message}", file=sys.stderr if status == 2 else sys.stdout)
    return status


def _package_info(args: argparse.Namespace) -> int:
    from edge.package import PackageError, read_package

    try:
        package = read_package(args.package)
        contract = package.contract
    except PackageError as exc:
        return _refused(args, exc.reason, str(exc), 2)
    if args.json:
        print(
            json.dumps(
                {k: v for k, v in package.manifest.items() if k != "golden"}
                | {"golden_pairs": len(package.manifest["golden"])}
            )
        )
        return 0
    m = package.manifest
    print(f"package   {args.package}  ({args.package.stat().st_size:,} bytes)")
    print(f"model     {m['model_version']}  {m['model_bytes']:,} bytes  sha256 {m['model_sha256'][:16]}…")
    print(f"created   {m['created_utc']}  signed by key {m['signed_by']}")
    print(f"quantised {m['quantisation'].get('mode')}")
    if m["quantisation"].get("ops"):
        print(f"ops       {', '.join(m['quantisation']['ops'])}")
    edgetpu_ops = m["quantisation"].get("edgetpu_ops", {})
    if edgetpu_ops:
        unsupported = [op for op, ok in edgetpu_ops.items() if not ok]
        print(
            f"edge tpu  {len(edgetpu_ops) - len(unsupported)} of {len(edgetpu_ops)} op kinds supported"
            + (f" (not: {', '.join(unsupported)})" if unsupported else "")
            + (f"; compiled build {m['edgetpu']['bytes']:,} bytes" if "edgetpu" in m else "; no compiled build")
        )
    print(
        f"rate      {contract.rate_hz:g} Hz; window {contract.window}; {contract.out_len} outputs per inference; "
        f"delay {contract.delay} ({1000 * contract.latency_s:.0f} ms oldest-output latency before compute)"
    )
    print(
        f"sensors   {', '.join(contract.leg_places)} -> {len(contract.channels)} channels "
        "(acc m/s² incl. gravity, gyr rad/s, sensor frame, left leg mirrored)"
    )
    print(f"static    {', '.join(contract.static_features) or 'none'}")
    print(f"outputs   {', '.join(contract.output_axes)} in {contract.output_unit}")
    for build, scores in m.get("accuracy", {}).get("builds", {}).items():
        axes = scores["axes"]
        print(
            f"accuracy  {build:>11}: "
            + "  ".join(f"{a} r {v['r']:.4f} nRMSE {v['nrmse_pct']:.2f}%" for a, v in axes.items())
        )
    print(f"golden    {len(m['golden'])} pair(s)")
    return 0


def _package_verify(args: argparse.Namespace) -> int:
    from edge.keys import load_public_key
    from edge.package import PackageError, open_package

    try:
        package, contract = open_package(args.package, [load_public_key(p) for p in args.pubkey])
    except PackageError as exc:
        return _refused(args, exc.reason, str(exc), 2 if exc.reason in _READ_FAILURES else 1)
    from edge.contract import ContractError  # only now: these load SciPy and the TFLite runtime
    from edge.interpreter import TFLiteModel
    from edge.selftest import run_golden

    try:
        model = TFLiteModel(package.model)
    except ValueError as exc:  # signed, hash OK, but not a model this runtime can load
        return _refused(args, "model_invalid", f"{args.package.name}: model.tflite does not load: {exc}", 1)
    try:
        model.check_contract(contract)
    except ContractError as exc:
        return _refused(args, "contract_invalid", f"{args.package.name}: {exc}", 1)
    result = run_golden(model, package.manifest["golden"])
    if args.json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "golden_passed": result.passed,
                    "golden_failed": result.failed,
                    "worst_error": result.worst_error,
                    "messages": result.messages,
                }
            )
        )
    else:
        print(f"signature OK (key {package.signed_by}); model hash OK; contract OK")
        print(f"golden pairs: {result.passed} passed, {result.failed} failed (worst error {result.worst_error:.5f})")
        for message in result.messages:
            print(f"  {message}")
        print("VERIFIED" if result.ok else "REFUSED: golden pairs failed")
    return 0 if result.ok else 1
