"""Ed25519 keys that sign model packages, and the trust list a device checks them against."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_NAME = "forcecast_ed25519.key"
PUBLIC_NAME = "forcecast_ed25519.pub"


class KeyFileError(ValueError):
    """A key file is missing or not an Ed25519 key of the expected kind."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_key_pair(folder: Path) -> tuple[Path, Path]:
    """Create a key pair in ``folder``; the private key file is readable by its owner only.

    Refuses to overwrite an existing private key (losing it would orphan every device that trusts it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; move it away first (devices may trust it)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM private key written by :func:`new_key_pair`."""
    key = _load_pem(path, "private", lambda data: serialization.load_pem_private_key(data, password=None))
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a PEM public key (``.pub`` from :func:`new_key_pair`)."""
    key = _load_pem(path, "public", serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def _load_pem(path: Path, kind: str, loader: Callable[[bytes], object]) -> object:
    try:
        return loader(Path(path).read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {kind} key not found") from None
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM {kind} key ({exc})") from None
