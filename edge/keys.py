"""Ed25519 keys that sign model packages, and the trust list a device checks them against."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forcecast.edge.errors import ForcecastValueError

PRIVATE_NAME = "forcecast_ed25519.key"
PUBLIC_NAME = "forcecast_ed25519.pub"


class KeyFileError(ForcecastValueError):
    """A key file is missing or not an Ed25519 key of the expected kind."""

    reason = "key_file_invalid"


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_key_pair(folder: Path) -> tuple[Path, Path]:
    """Create a key pair in ``folder``: private key 0600, public key 0644, whatever the umask.

    A new folder is created with mode 0700; an existing one is used only if no other user may write to it.

    Neither file may exist beforehand, not even as a (dangling) symbolic link: both are created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the folder opened with ``O_NOFOLLOW``, so a link placed
    there in advance can never redirect a key into another file. An existing private key is never
    overwritten (losing it would orphan every device that trusts it).

    Raises
    ------
    FileExistsError
        If either key file (or link) exists, or ``folder`` is a symbolic link, not a folder, or writable by others.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise FileExistsError(f"{folder} is a symbolic link; give the real folder for the key pair")
    created = not folder.exists()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except NotADirectoryError:
        raise FileExistsError(f"{folder} exists and is not a folder") from None
    except OSError as exc:  # ELOOP: replaced by a link since the check above
        raise FileExistsError(f"{folder}: cannot open the folder without following links ({exc.strerror})") from None
    try:
        if created:
            os.fchmod(dir_fd, 0o700)  # mkdir's mode was masked by the umask (and never widened by it)
        elif os.fstat(dir_fd).st_mode & 0o022:
            raise FileExistsError(
                f"{folder} is writable by other users (mode {stat.S_IMODE(os.fstat(dir_fd).st_mode):04o}), who "
                "could swap the keys; use a new folder (created 0700) or chmod 700 it"
            )
        for name in (PRIVATE_NAME, PUBLIC_NAME):
            _refuse_existing(folder / name, dir_fd)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_new(dir_fd, folder / PRIVATE_NAME, pem, 0o600)
        try:
            _write_new(dir_fd, folder / PUBLIC_NAME, public, 0o644)
        except BaseException:
            os.unlink(PRIVATE_NAME, dir_fd=dir_fd)  # never leave half a pair behind
            raise
    finally:
        os.close(dir_fd)
    return folder / PRIVATE_NAME, folder / PUBLIC_NAME


def _refuse_existing(path: Path, dir_fd: int) -> None:
    try:
        status = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(status.st_mode):
        raise FileExistsError(
            f"{path} is a symbolic link (to {os.readlink(path.name, dir_fd=dir_fd)}); remove it first"
        )
    raise FileExistsError(f"{path} exists; move it away first (devices may trust it)")


def _write_new(dir_fd: int, path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (a name in ``dir_fd``) exclusively, never through a link, with exactly ``mode``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path.name, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while the key pair was being written; nothing was overwritten"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # the umask may have taken bits away (0644 under umask 077 is 0600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


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
