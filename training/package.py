"""Write signed model packages (``.fcpkg``); the format and the reader live in :mod:`forcecast.edge.package`."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forcecast.edge.contract import ModelContract
from forcecast.edge.keys import key_id
from forcecast.edge.package import EDGETPU_MODEL_FILE, FORMAT, FORMAT_VERSION, MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed member timestamps: same inputs, same bytes


def build_manifest(
    model: bytes,
    contract: ModelContract | dict[str, Any],
    *,
    model_version: str,
    signer: Ed25519PrivateKey,
    quantisation: dict[str, Any],
    golden: list[dict[str, Any]],
    accuracy: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    created_utc: str | None = None,
    edgetpu: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a package holding ``model`` (everything the device needs, nothing pickled).

    ``edgetpu`` describes an Edge TPU build stored beside the model: at least its ``bytes`` and
    ``sha256`` (see :func:`forcecast.training.edgetpu.describe`).
    """
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "model_bytes": len(model),
        "model_version": model_version,
        "created_utc": created_utc or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signed_by": key_id(signer.public_key()),
        "contract": contract.to_dict() if isinstance(contract, ModelContract) else contract,
        "quantisation": quantisation,
        "accuracy": accuracy or {},
        "training": training or {},
        "golden": golden,
    }
    if edgetpu is not None:
        manifest["edgetpu"] = edgetpu
    return manifest


def write_package(
    path: Path,
    model: bytes,
    manifest: dict[str, Any],
    signer: Ed25519PrivateKey,
    edgetpu_model: bytes | None = None,
) -> Path:
    """Sign ``manifest`` and write the zip. The signature covers the manifest bytes exactly as stored."""
    if manifest["signed_by"] != key_id(signer.public_key()):
        raise ValueError("the manifest names a different signer than the key given")
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    signature = signer.sign(manifest_bytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        members = [(MANIFEST_FILE, manifest_bytes), (SIGNATURE_FILE, signature), (MODEL_FILE, model)]
        if edgetpu_model is not None:
            members.append((EDGETPU_MODEL_FILE, edgetpu_model))
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
