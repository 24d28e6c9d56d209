"""``forcecast flash`` and ``forcecast device info | rollback``: model updates for developers.

Only the standard library is imported at module level; handlers import bleak or the edge code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forcecast.edge.cli_options import add_common
from forcecast.edge.errors import UsageError
from forcecast.host_app.cli import no_adapter


def register(commands: Any) -> None:
    """Add the ``flash`` and ``device`` commands."""
    flash = commands.add_parser(
        "flash",
        help="install a signed model package on a device (over BLE, or into its model folder)",
        description="Upload PKG to the device over BLE (resumable: run the same command again after an "
        "interruption) or write it into a device's model folder (--path). Either way the device side "
        "verifies size, SHA-256 and signature, checks the contract against its sensors, runs the golden "
        "self-test, and only then switches; otherwise it keeps its model and says why.",
    )
    flash.add_argument("package", type=Path, metavar="PKG", help="signed model package (.fcpkg)")
    _target(flash)
    flash.add_argument("--attempts", type=int, default=30, help="BLE connection attempts before giving up (default 30)")
    add_common(flash, json="print the final state as one JSON object")
    flash.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="with --path: accept a package older than the folder's model (over BLE only the device's "
        "[models] allow_downgrade can allow that)",
    )
    flash.set_defaults(handler=_flash)

    device = commands.add_parser(
        "device",
        help="a device's model: which one runs, roll back to the previous one",
        description="Model state of a device over BLE (--device) or of a model folder (--path).",
    )
    verbs = device.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="the active model, its contract and version, the previous model")
    _target(info)
    add_common(info, json="print one JSON object")
    info.set_defaults(handler=_info)
    rollback = verbs.add_parser("rollback", help="make the previous model active again (it is re-verified first)")
    _target(rollback)
    add_common(rollback, json="print one JSON object")
    rollback.set_defaults(handler=_rollback)


def _target(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--device", metavar="ADDR", help="BLE address of the device ('any': the first one found)")
    where.add_argument("--path", type=Path, metavar="DIR", help="the device's model folder, mounted here")
    parser.add_argument(
        "--config", type=Path, help="with --path: the device's device.toml (sensors, legs, trusted_keys)"
    )
    parser.add_argument(
        "--pubkey", type=Path, action="append", default=[], help="with --path: trusted public key (repeatable)"
    )


def _address(args: argparse.Namespace) -> str | None:
    return None if args.device == "any" else args.device


def _flash(args: argparse.Namespace) -> int:
    if not args.package.exists():
        raise FileNotFoundError(f"{args.package}: package not found")
    result: dict[str, Any] | None
    if args.path is not None:
        from forcecast.host_app.model_folder import flash_folder, folder_updates

        updates = folder_updates(args.path, args.config, args.pubkey, args.allow_downgrade)
        result = flash_folder(args.package, updates)
        result["target"] = str(args.path)
    else:
        if args.allow_downgrade:
            raise UsageError("--allow-downgrade works only with --path; a device allows it in device.toml")
        result = _flash_ble(args)
        if result is None:
            return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(_flash_line(result))
    return 0 if result["state"] in ("switched", "already_active") else 1


def _flash_ble(args: argparse.Namespace) -> dict[str, Any] | None:
    import asyncio

    from bleak.exc import BleakBluetoothNotAvailableError
    from tqdm import tqdm

    from forcecast.host_app.flash import FlashConfig, Flasher

    size = args.package.stat().st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, desc="upload", file=sys.stderr, disable=None)

    def progress(durable: int, _size: int) -> None:
        bar.update(durable - bar.n)

    flasher = Flasher(args.package, _address(args), flash_config=FlashConfig(attempts=args.attempts), progress=progress)
    try:
        result = asyncio.run(flasher.run())
    except (BleakBluetoothNotAvailableError, FileNotFoundError) as exc:
        bar.close()
        no_adapter(exc)
        return None
    finally:
        bar.close()
    return result.as_dict() | {"target": args.device}


def _flash_line(result: dict[str, Any]) -> str:
    where = result.get("device_id") or result["target"]
    state = result["state"]
    if state == "switched":
        speed = f" at {result['throughput_kib_s']:.0f} KiB/s" if result.get("throughput_kib_s") else ""
        resumed = [o for o in result.get("resumed_from", []) if o]
        again = f", resumed {len(resumed)}×" if resumed else ""
        before = result["model_before"] or "none"
        return f"switched: {where} now runs {result['model_after']} (was {before}){speed}{again}"
    if state == "already_active":
        return f"already active: {where} runs {result['model_after']}; nothing sent"
    if state == "refused":
        kept = result.get("model_before") or "its model"
        return f"REFUSED by {where}: {result['reason']}: {result['detail']}\nit still runs {kept}"
    return (
        f"FAILED: {result['detail']}\n"
        "the device keeps the model it runs; run the same command again to resume the upload"
    )


def _info(args: argparse.Namespace) -> int:
    info = _device(args, "info")
    if info is None:
        return 2
    if args.json:
        print(json.dumps(info))
        return 0
    contract = info.get("contract") or {}
    places = contract.get("places") or contract.get("leg_places")
    upload = info.get("upload")
    lines = [
        f"device     {info.get('device_id', args.path)}  (firmware {info.get('firmware', '?')})",
        f"model      {info.get('model_version')}  {info.get('quantisation') or ''}  "
        f"sha256 {str(info.get('model_sha256'))[:16]}…",
        f"contract   {', '.join(places or [])}; window {contract.get('window')}"
        + (f" at {info['rate_hz']:g} Hz" if info.get("rate_hz") else ""),
        f"previous   {info.get('previous_model') or info.get('previous_model_version') or 'none'}"
        + ("  (the active model is on trial until it runs)" if info.get("on_trial") else ""),
        "upload     " + ("none" if not upload else f"{upload['offset']:,} of {upload['size']:,} bytes (resumable)"),
    ]
    print("\n".join(lines))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    result = _device(args, "rollback")
    if result is None:
        return 2
    if args.json:
        print(json.dumps(result))
    elif result.get("state") == "refused":
        print(f"REFUSED: {result['reason']}: {result['detail']}")
    else:
        now = result.get("model_version") or result.get("model_after")
        print(f"rolled back: {result.get('device_id', args.path)} runs {now}")
    return 1 if result.get("state") == "refused" else 0


def _device(args: argparse.Namespace, action: str) -> dict[str, Any] | None:
    if args.path is not None:
        from forcecast.edge.slots import ModelSlots
        from forcecast.host_app.model_folder import folder_info, folder_updates, rollback_folder

        if action == "info":
            if not args.path.is_dir():
                raise NotADirectoryError(f"{args.path}: not a model folder")
            return folder_info(ModelSlots(args.path, []))
        return rollback_folder(folder_updates(args.path, args.config, args.pubkey))
    import asyncio

    from bleak.exc import BleakBluetoothNotAvailableError, BleakError

    from forcecast.host_app.flash import FlashRefusedError, device_request

    try:
        info = asyncio.run(device_request(_address(args), action))
    except FlashRefusedError as exc:
        return {"state": "refused", "reason": exc.reason, "detail": str(exc)}
    except (BleakBluetoothNotAvailableError, FileNotFoundError) as exc:
        no_adapter(exc)
        return None
    except (BleakError, TimeoutError, OSError) as exc:
        print(f"forcecast device: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return info | {"state": "rolled_back"} if action == "rollback" else info
