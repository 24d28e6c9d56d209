"""Subcommands owned by ``edge``: ``forcecast keys``, ``forcecast package`` and ``forcecast edge``.

Only the standard library is imported here; each handler imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common


def register(commands: Any) -> None:
    """Add the ``keys``, ``package`` and ``edge`` command groups to the top-level subparsers."""
    from forcecast.edge.runtime.commands import register as register_runtime

    _register_pair(register_runtime(commands))
    keys = commands.add_parser("keys", help="signing keys for model packages")
    key_verbs = keys.add_subparsers(dest="verb", metavar="VERB", required=True)
    new = key_verbs.add_parser(
        "new",
        help="create an Ed25519 key pair",
        description="Write forcecast_ed25519.key (private, mode 600) and .pub into --out.",
    )
    new.add_argument("--out", type=Path, required=True, help="folder for the key pair")
    add_common(new)
    new.set_defaults(handler=_keys_new)

    package = commands.add_parser("package", help="inspect and verify model packages (.fcpkg)")
    package_verbs = package.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = package_verbs.add_parser("info", help="show a package's manifest and contract")
    info.add_argument("package", type=Path)
    add_common(info, json="print the manifest as JSON")
    info.set_defaults(handler=_package_info)
    verify = package_verbs.add_parser(
        "verify",
        help="check hash, signature and golden pairs",
        description="Exit 0 only if the package is signed by --pubkey, intact, has a "
        "valid contract and its golden pairs run within tolerance here.",
    )
    verify.add_argument("package", type=Path)
    verify.add_argument("--pubkey", type=Path, action="append", required=True, help="trusted public key (repeatable)")
    add_common(verify, json="")
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
    add_common(pair, json="print the service's reply as JSON")
    pair.set_defaults(handler=_pair)


def _pair(args: argparse.Namespace) -> int:
    from forcecast.edge.ble.pairing import MAX_OPEN_S, PairingError, request_pairing
    from forcecast.edge.runtime.config import BleConfig, load_device_config

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


def _keys_new(args: argparse.Namespace) -> int:
    from forcecast.edge.keys import key_id, load_public_key, new_key_pair

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
    from forcecast.edge.package import PackageError, read_package

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
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import PackageError, open_package

    try:
        package, contract = open_package(args.package, [load_public_key(p) for p in args.pubkey])
    except PackageError as exc:
        return _refused(args, exc.reason, str(exc), 2 if exc.reason in _READ_FAILURES else 1)
    from forcecast.edge.contract import ContractError  # only now: these load SciPy and the TFLite runtime
    from forcecast.edge.interpreter import TFLiteModel
    from forcecast.edge.selftest import run_golden

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
