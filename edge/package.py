"""Model packages (``.fcpkg``): read, check integrity and signature, expose the contract.

A package is a zip holding ``model.tflite``, ``manifest.json`` (the model contract, the model's
SHA-256 and size, version, creation time, quantisation, accuracy, golden input/output pairs) and
``manifest.sig``, a detached Ed25519 signature over the exact bytes of ``manifest.json``. A device
accepts a package only if the signature verifies with a key it trusts *and* the model bytes match the
signed hash; each way a package can be wrong has its own :class:`PackageError` reason.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.keys import key_id
from forcecast.edge.manifest_check import MAX_DEPTH, manifest_problem, nesting_depth

if TYPE_CHECKING:  # the contract module loads SciPy (through the DSP): reading a package must not pay for it
    from forcecast.edge.contract import ModelContract

FORMAT: Final = "forcecast-model-package"
FORMAT_VERSION: Final = 1
MODEL_FILE: Final = "model.tflite"
EDGETPU_MODEL_FILE: Final = "model_edgetpu.tflite"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "manifest.sig"
MAX_PACKAGE_BYTES: Final = 8 * 1024 * 1024
"""Largest package file (what an upload may be)."""
MEMBER_LIMITS: Final = {
    MANIFEST_FILE: 4 * 1024 * 1024,
    SIGNATURE_FILE: 1024,
    MODEL_FILE: 16 * 1024 * 1024,
    EDGETPU_MODEL_FILE: 16 * 1024 * 1024,
}
"""The only members a package may hold, each with its largest uncompressed size in bytes."""
READ_CHUNK: Final = 64 * 1024
"""Members are decompressed this many bytes at a time."""
MAX_DIRECTORY_BYTES: Final = 64 * 1024
"""Largest zip central directory (a package's is a few hundred bytes)."""
_EOCD_SIGNATURE: Final = b"PK\x05\x06"
_EOCD_SIZE: Final = 22
_ZIP64_LOCATOR_SIGNATURE: Final = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE: Final = 20
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


class PackageError(ForcecastValueError):
    """A package cannot be used. ``reason`` is a stable code; the message says what and where.

    Reasons: ``unreadable`` (not a zip, truncated, damaged), ``too_large`` (the file, or a member as
    declared or as it inflates, is over its limit), ``too_many_members``, ``member_duplicate``,
    ``member_unknown``, ``member_missing``, ``manifest_invalid`` (not JSON, nested too deeply, a field of
    the wrong type), ``field_missing``, ``unsupported`` (format version, encrypted or odd compression),
    ``untrusted_key``, ``bad_signature``, ``model_mismatch``, ``contract_invalid`` (incomplete, or out of
    the bounds of :mod:`forcecast.edge.contract_limits`); and on the device ``contract_mismatch``,
    ``selftest_failed``.
    """

    reason = "package_invalid"

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
        from forcecast.edge.contract import ContractError, ModelContract

        try:
            return ModelContract.from_dict(self.manifest["contract"], f"{self.path.name}: manifest contract")
        except ContractError as exc:
            raise PackageError("contract_invalid", str(exc)) from None

    @property
    def signed_by(self) -> str:
        """Key id the manifest names as its signer."""
        return str(self.manifest["signed_by"])


def read_package(path: Path | str) -> ModelPackage:
    """Read a package's members and parse its manifest (no signature check).

    Hostile files are refused before they cost memory: the file size, the number of members (from
    the zip's end record, before its directory is parsed), their names and their declared sizes are
    checked before anything is decompressed, and members are decompressed in chunks of
    :data:`READ_CHUNK` bytes that stop at the member's limit whatever its header claims. See
    :data:`MAX_PACKAGE_BYTES` and :data:`MEMBER_LIMITS`.

    Raises
    ------
    PackageError
        ``unreadable``, ``too_large``, ``too_many_members``, ``member_duplicate``, ``member_unknown``,
        ``member_missing``, ``manifest_invalid``, ``field_missing`` or ``unsupported``.
    """
    path = Path(path)
    members = _read_members(path)
    manifest_bytes = members[MANIFEST_FILE]
    manifest = _parse_manifest(path, manifest_bytes)
    if "edgetpu" in manifest and EDGETPU_MODEL_FILE not in members:
        raise PackageError("member_missing", f"{path}: the manifest lists {EDGETPU_MODEL_FILE} but it is missing")
    return ModelPackage(
        path, manifest, manifest_bytes, members[SIGNATURE_FILE], members[MODEL_FILE], members.get(EDGETPU_MODEL_FILE)
    )


def _read_members(path: Path) -> dict[str, bytes]:
    """The package's members by name, read within the limits."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise PackageError("unreadable", f"{path}: not a file")
        if size > MAX_PACKAGE_BYTES:
            raise PackageError("too_large", f"{path}: {size:,} bytes; a package may have at most {MAX_PACKAGE_BYTES:,}")
        with path.open("rb") as handle:
            _check_member_count(path, handle, size)
            with zipfile.ZipFile(handle) as archive:
                infos = _checked_infos(path, archive.infolist())
                return {info.filename: _read_member(path, archive, info) for info in infos}
    except PackageError:
        raise
    except FileNotFoundError:
        raise PackageError("unreadable", f"{path}: file not found") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise PackageError("unreadable", f"{path}: not a readable package (truncated or not a zip: {exc})") from None
    except (OSError, ValueError, RuntimeError, NotImplementedError, zlib.error, struct.error) as exc:
        raise PackageError("unreadable", f"{path}: damaged package ({type(exc).__name__}: {exc})") from None


def _check_member_count(path: Path, handle: BinaryIO, size: int) -> None:
    """Refuse a zip whose end record announces more members than a package has, before parsing its directory."""
    tail_size = min(size, _EOCD_SIZE + 0xFFFF)  # the end record, then a comment of up to 64 KiB
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or at + _EOCD_SIZE > len(tail):
        return  # not a zip: zipfile says so
    end_record = size - tail_size + at
    if end_record >= _ZIP64_LOCATOR_SIZE:  # zipfile would take the counts and sizes from a ZIP64 record instead
        handle.seek(end_record - _ZIP64_LOCATOR_SIZE)
        if handle.read(4) == _ZIP64_LOCATOR_SIGNATURE:
            raise PackageError("unsupported", f"{path}: a ZIP64 archive; packages are plain zips of a few MiB")
    entries, directory_bytes = struct.unpack_from("<HI", tail, at + 10)
    if entries > len(MEMBER_LIMITS):
        raise PackageError(
            "too_many_members", f"{path}: the zip lists {entries} members; a package has at most {len(MEMBER_LIMITS)}"
        )
    if directory_bytes > MAX_DIRECTORY_BYTES:  # zipfile parses the directory by its size, whatever the count says
        raise PackageError(
            "too_many_members",
            f"{path}: the zip's directory is {directory_bytes:,} bytes; a package's fits {MAX_DIRECTORY_BYTES:,}",
        )
    handle.seek(0)


def _checked_infos(path: Path, infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The members, refused if too many, repeated, unknown, missing, encrypted, or declared too large."""
    if len(infos) > len(MEMBER_LIMITS):
        raise PackageError(
            "too_many_members", f"{path}: {len(infos)} members; a package has at most {len(MEMBER_LIMITS)}"
        )
    names = [info.filename for info in infos]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PackageError(
            "member_duplicate", f"{path}: member(s) {', '.join(map(repr, repeated))} appear more than once"
        )
    unknown = [n for n in names if n not in MEMBER_LIMITS]
    if unknown:
        raise PackageError(
            "member_unknown",
            f"{path}: unknown member(s) {', '.join(map(repr, unknown))}; "
            f"a package holds only {', '.join(MEMBER_LIMITS)}",
        )
    for member in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE):
        if member not in names:
            raise PackageError("member_missing", f"{path}: {member} missing from the package")
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageError(
                "unsupported",
                f"{path}: {info.filename} is encrypted or uses compression method {info.compress_type}; "
                "packages use stored or deflated members",
            )
        limit = MEMBER_LIMITS[info.filename]
        if info.file_size > limit:
            raise PackageError(
                "too_large", f"{path}: {info.filename} declares {info.file_size:,} bytes; the limit is {limit:,}"
            )
    return infos


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Decompress one member in bounded chunks; refuse it the moment it outgrows its declared size or limit."""
    limit = min(info.file_size, MEMBER_LIMITS[info.filename])
    data = bytearray()
    with archive.open(info) as member:
        while chunk := member.read(READ_CHUNK):
            data += chunk
            if len(data) > limit:
                raise PackageError(
                    "too_large",
                    f"{path}: {info.filename} inflates past {limit:,} bytes (its header declares {info.file_size:,})",
                )
    return bytes(data)


def _parse_manifest(path: Path, manifest_bytes: bytes) -> dict[str, Any]:
    """The manifest as a dict whose fields a reader can rely on (see :mod:`forcecast.edge.manifest_check`)."""
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except RecursionError:
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, an integer of thousands of digits
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} must hold a JSON object")
    if nesting_depth(manifest) > MAX_DEPTH:
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE} is nested more than {MAX_DEPTH} levels deep")
    missing = [f for f in REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise PackageError("field_missing", f"{path}: manifest field(s) missing: {', '.join(missing)}")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise PackageError(
            "unsupported",
            f"{path}: format {_short(manifest['format'])} v{_short(manifest['format_version'])} "
            f"is not {FORMAT!r} v{FORMAT_VERSION}",
        )
    problem = manifest_problem(manifest, MODEL_FILE)
    if problem is not None:
        raise PackageError("manifest_invalid", f"{path}: {MANIFEST_FILE}: {problem}")
    return manifest


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


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
