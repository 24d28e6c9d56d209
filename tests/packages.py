"""Real model packages re-signed with keys the tests control: a new version, a damaged contract or golden set.

The model bytes are the real test models (tests/data), so the device's self-test really runs them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from forcecast.edge.contract import ModelContract
from forcecast.edge.keys import load_private_key, new_key_pair
from forcecast.edge.package import MANIFEST_FILE, read_package
from forcecast.training.package import build_manifest, write_package

DATA = Path(__file__).parent / "data"
INT8 = DATA / "grf_int8.fcpkg"
FLOAT32 = DATA / "grf_float32.fcpkg"
TEST_PUBKEY = DATA / "forcecast-test.pub"


def signing_key(folder: Path) -> tuple[Ed25519PrivateKey, Path]:
    """A new key pair in ``folder``: the private key and the public key's file."""
    private, public = new_key_pair(folder)
    return load_private_key(private), public


def resign(
    source: Path,
    out: Path,
    signer: Ed25519PrivateKey,
    version: str,
    contract: Callable[[dict[str, Any]], None] | None = None,
    golden: Callable[[list[dict[str, Any]]], None] | None = None,
    edgetpu_model: bytes | None = None,
    created_utc: str = "2026-11-22T00:00:00Z",
) -> Path:
    """``source``'s model under a new manifest (version, optionally edited contract/golden), signed by ``signer``.

    ``edgetpu_model`` adds bytes as the Edge TPU build (what makes a package of both builds larger).
    ``created_utc`` orders versions (devices refuse older ones): by default after the packages in tests/data.
    """
    package = read_package(source)
    manifest = copy.deepcopy(package.manifest)
    if contract is not None:
        contract(manifest["contract"])
    if golden is not None:
        golden(manifest["golden"])
    edgetpu = None
    if edgetpu_model is not None:
        edgetpu = {"bytes": len(edgetpu_model), "sha256": hashlib.sha256(edgetpu_model).hexdigest()}
    new = build_manifest(
        package.model,
        ModelContract.from_dict(manifest["contract"], f"{source.name} (re-signed)"),
        model_version=version,
        signer=signer,
        quantisation=manifest["quantisation"],
        golden=manifest["golden"],
        accuracy=manifest.get("accuracy"),
        training=manifest.get("training"),
        created_utc=created_utc,
        edgetpu=edgetpu,
    )
    return write_package(out, package.model, new, signer, edgetpu_model)


def flip_byte(source: Path, out: Path, at: float = 0.6) -> Path:
    """A copy of ``source`` with one byte flipped at a fraction of its length (inside the model member)."""
    data = bytearray(source.read_bytes())
    data[int(len(data) * at)] ^= 0x5A
    out.write_bytes(bytes(data))
    return out


def edit_manifest(source: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of ``source`` whose manifest was edited after signing (the signature no longer matches)."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members[MANIFEST_FILE])
    change(manifest)
    members[MANIFEST_FILE] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out
