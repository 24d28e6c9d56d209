"""Model packages (``.fcpkg``): read, check integrity and signature, expose the contract.

A package is a zip holding ``model.tflite``, ``manifest.json`` (the model contract, the model's
SHA-256 and size, version, creation time, quantisation, accuracy, golden input/output pairs) and
``manifest.sig``, a detached Ed25519 signature over the exact bytes of ``manifest.json``. A device
accepts a package only if the signature verifies with a key it trusts *and* the model bytes match the
signed hash; each way a package can be wrong has its own :class:`PackageError` reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.contract import ContractError, ModelContract
from edge.keys import key_id

FORMAT: Final = "forcecast-model-package"
FORMAT_VERSION: Final = 1
MODEL_FILE: Final = "model.tflite"
EDGETPU_MODEL_FILE: Final = "model_edgetpu.tflite"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "manifest.sig"
REQUIRED_FIELDS: Final = (
    "format",
    "format_version",
    "model_file",
    "model_sha256",
    "model_bytes",
    "model_version",
    "created_utc",
    "signed_by",
    "contract",
    "quantisation",
    "golden",
)


class PackageError(ValueError):
    """A package cannot be used. ``reason`` is a stable code; the message says what and where.

    Reasons: ``unreadable`` (not a zip, truncated), ``member_missing``, ``manifest_invalid``,
    ``field_missing``, ``unsupported``, ``untrusted_key``, ``bad_signature``, ``model_mismatch``,
    ``contract_invalid``; and on the device ``selftest_failed`` (golden pairs do not match).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class ModelPackage:
    """A package's parts, as read (not yet verified unless :func:`open_package` said so)."""

    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    signature: bytes
    model: bytes
    edgetpu_model: bytes | None = None

    @property
    def contract(self) -> ModelContract:
        """The model contract (raises :class:`PackageError` if it is incomplete)."""
        try:
            return ModelContract.from_dict(self.manifest["contract"], f"{self.path.name}: manifest contract")
        except ContractError as exc:
            raise PackageError("contract_invalid", str(exc)) from None

    @property
    def signed_by(self) -> str:
        """Key id the manifest names as its signer."""
        return str(self.manifest["signed_by"])


def read_package(path: Path | str) -> ModelPackage:
    """Read a package's members and parse its manifest (no signature check)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PackageError("unreadable", f"{path}: file not found") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            for member in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE):
                if member not in names:
                    raise PackageError("member_missing", f"{path}: {member} missing from the package")
            manifest_bytes = archive.read(MANIFEST_FILE)
            signature = archive.read(SIGNATURE_FILE)
            model = archive.read(MODEL_FILE)
            edgetpu_model = archive.read(EDGETPU_MODEL_FILE) if EDGETPU_MODEL_FILE in names else None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise PackageError("unreadable", f"{path}: not a readable package (truncated or not a zip: {exc})") from None
    except (zipfile.error, OSError, ValueError) as exc:
        if isinstance(exc, PackageError):
            raise
        raise PackageError("unreadable", f"{path}: damaged package ({exc})") from None
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} must hold a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise PackageError("field_missing", f"{path}: manifest field(s) missing: {', '.join(missing)}")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise PackageError(
            "unsupported",
            f"{path}: format {manifest['format']!r} v{manifest['format_version']} is not {FORMAT!r} v{FORMAT_VERSION}",
        )
    if "edgetpu" in manifest and edgetpu_model is None:
        raise PackageError("member_missing", f"{path}: the manifest lists {EDGETPU_MODEL_FILE} but it is missing")
    return ModelPackage(path, manifest, manifest_bytes, signature, model, edgetpu_model)


def verify(package: ModelPackage, trusted: list[Ed25519PublicKey]) -> ModelContract:
    """Check signer, signature, model hash and size, and the contract; return the contract.

    Raises
    ------
    PackageError
        With the first reason the package must be refused.
    """
    name = package.path.name
    keys = {key_id(k): k for k in trusted}
    if package.signed_by not in keys:
        known = ", ".join(sorted(keys)) or "none"
        raise PackageError(
            "untrusted_key", f"{name}: signed by key {package.signed_by}, which is not trusted (trusted: {known})"
        )
    try:
        keys[package.signed_by].verify(package.signature, package.manifest_bytes)
    except InvalidSignature:
        raise PackageError(
            "bad_signature",
            f"{name}: the signature does not match {MANIFEST_FILE} (edited after signing, or a damaged signature)",
        ) from None
    check_model(package)
    return package.contract


def check_model(package: ModelPackage) -> None:
    """Check that the model bytes (and the Edge TPU model's, if any) are the ones the manifest names.

    Size and SHA-256 only; no signature check.

    Raises
    ------
    PackageError
        ``model_mismatch`` if the model was damaged or replaced.
    """
    _check_member(package, MODEL_FILE, package.model, package.manifest["model_bytes"], package.manifest["model_sha256"])
    if package.edgetpu_model is not None:
        listed = package.manifest.get("edgetpu")
        if not isinstance(listed, dict) or not {"bytes", "sha256"} <= set(listed):
            raise PackageError(
                "model_mismatch",
                f"{package.path.name}: {EDGETPU_MODEL_FILE} is present but the manifest does not sign it",
            )
        _check_member(package, EDGETPU_MODEL_FILE, package.edgetpu_model, listed["bytes"], listed["sha256"])


def _check_member(package: ModelPackage, member: str, data: bytes, size: Any, sha256: Any) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != size or digest != sha256:
        raise PackageError(
            "model_mismatch",
            f"{package.path.name}: {member} ({len(data)} bytes, sha256 {digest[:16]}…) "
            f"is not the model the manifest signed ({size} bytes, sha256 {str(sha256)[:16]}…)",
        )


def open_package(path: Path | str, trusted: list[Ed25519PublicKey]) -> tuple[ModelPackage, ModelContract]:
    """Read and verify a package in one step."""
    package = read_package(path)
    return package, verify(package, trusted)


def open_checked(path: Path | str, trusted: list[Ed25519PublicKey]) -> tuple[ModelPackage, ModelContract, str]:
    """Open a package as far as the keys given allow: fully verified with keys, hash and contract without.

    For tools (evaluation, benchmarks) that may run on packages whose signer is not at hand; the device
    itself always uses :func:`open_package`. The third value says what was checked.
    """
    if trusted:
        package, contract = open_package(path, trusted)
        return package, contract, f"signature OK (key {package.signed_by})"
    package = read_package(path)
    check_model(package)
    return package, package.contract, "model hash OK, signature not checked (no --pubkey)"
