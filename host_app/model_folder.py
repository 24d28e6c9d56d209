"""``forcecast flash PKG --path DIR`` and friends: a device's model folder reached as a folder.

For a device whose storage is mounted here (its SD card in a reader, a network share, or the Pi
itself installing its first model). The package goes through exactly what an upload over BLE goes
through on the device (:class:`forcecast.edge.runtime.updates.ModelUpdates`, which loads it with the one
loader, :func:`forcecast.edge.runtime.lifecycle.load_model`): size, SHA-256, signature by a key the device
trusts, contract against the device's sensors and legs, tensor shapes, golden self-test, atomic switch with
the previous model kept for a rollback; a refusal has the same reason as on the device. A runtime already
running from that folder picks the new model up at its next start (on trial: rolled back if that start fails).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from forcecast.edge.keys import load_public_key
from forcecast.edge.package import PackageError, read_package
from forcecast.edge.runtime.config import DeviceConfig, load_device_config
from forcecast.edge.runtime.updates import ModelUpdates, sensor_columns, trusted_keys
from forcecast.edge.slots import CREATED_FORMAT, ModelSlots, SlotError

CHUNK_BYTES = 64 * 1024


def folder_updates(
    folder: Path, config_path: Path | None, pubkeys: list[Path], allow_downgrade: bool = False
) -> ModelUpdates:
    """The device-side update logic on ``folder``, with the device's configuration and keys.

    ``allow_downgrade`` (``--allow-downgrade``: whoever holds the folder can also edit ``device.toml``)
    accepts an older package even where the device's ``[models] allow_downgrade`` is off.
    """
    config = load_device_config(config_path) if config_path is not None else DeviceConfig()
    keys = trusted_keys(list(pubkeys) or list(config.trusted_keys))
    slots = ModelSlots(folder, [load_public_key(k) for k in keys])
    return ModelUpdates(slots, config, sensor_columns(config), allow_downgrade=allow_downgrade or None)


def flash_folder(package: Path, updates: ModelUpdates) -> dict[str, Any]:
    """Install ``package`` as the folder's active model; returns the final state.

    The result's ``state`` is ``switched``, ``already_active`` or ``refused`` (with ``reason`` and
    ``detail``; the folder's active model is then unchanged).
    """
    data = package.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with updates.held():  # a runtime on the same folder (another process) waits until this flash is done
        before = folder_info(updates.slots)
        if updates.slots.active.exists() and hashlib.sha256(updates.slots.active.read_bytes()).hexdigest() == digest:
            version = before["model_version"]
            return {"state": "already_active", "model_before": version, "model_after": version}
        try:
            state = updates.slots.begin_upload(len(data), digest)
            offset = state.offset
            while offset < len(data):
                offset = updates.slots.write_chunk(offset, data[offset : offset + CHUNK_BYTES]).offset
            note = updates.commit()
        except SlotError as exc:
            before_version = before["model_version"]
            return {"state": "refused", "reason": exc.reason, "detail": str(exc), "model_before": before_version}
        return {"state": "switched", "detail": note, "model_before": before["model_version"], "model_after": note}


def folder_info(slots: ModelSlots) -> dict[str, Any]:
    """The folder's model state: the active and previous models, trial, upload in progress."""
    info: dict[str, Any] = {"folder": str(slots.folder)}
    for name, path in (("model", slots.active), ("previous", slots.previous)):
        manifest: dict[str, Any] = {}
        if path.exists():
            try:
                manifest = read_package(path).manifest
            except PackageError as exc:
                manifest = {"model_version": f"unreadable ({exc.reason})"}
        prefix = "" if name == "model" else "previous_"
        info[f"{prefix}model_version"] = manifest.get("model_version")
        if name == "model":
            info["model_sha256"] = manifest.get("model_sha256")
            info["quantisation"] = manifest.get("quantisation", {}).get("mode")
            contract = manifest.get("contract", {})
            info["contract"] = {k: contract.get(k) for k in ("rate_hz", "leg_places", "window", "static_features")}
            info["signed_by"] = manifest.get("signed_by")
            info["created_utc"] = manifest.get("created_utc")
    upload = slots.peek_upload()
    floor = slots.floor()
    info["version_floor"] = None if floor is None else floor.strftime(CREATED_FORMAT)
    info["on_trial"] = slots.on_trial
    info["upload"] = None if upload is None else {"offset": upload.offset, "size": upload.size}
    return info


def rollback_folder(updates: ModelUpdates) -> dict[str, Any]:
    """Make the folder's previous model active again (after checking it still loads)."""
    try:
        version = updates.rollback()
    except SlotError as exc:
        return {"state": "refused", "reason": exc.reason, "detail": str(exc)}
    return {"state": "rolled_back", "model_after": version}
