"""bumble devices for the GATT server: on a real radio (the Pi's HCI socket, a USB dongle) or in-process.

The in-process variant puts a virtual controller on a bumble ``LocalLink``; a central built the same
way on the same link (the host app's test/demo link) talks to it exactly as over the air, pairing
and encryption included, with no Bluetooth hardware.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.keys import JsonKeyStore, KeyStore, MemoryKeyStore
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from forcecast.edge.errors import ForcecastRuntimeError

LE_MAX_ACL_PAYLOAD = 251
"""Largest LE data PDU; the virtual controller defaults to 27, which makes big notifications ~5x slower."""


class RadioError(ForcecastRuntimeError):
    """The Bluetooth controller cannot be opened or used."""

    reason = "radio_unavailable"


def static_address(seed: str) -> str:
    """A static random address derived from ``seed`` (e.g. the device id): stable across restarts."""
    octets = bytearray(hashlib.sha256(seed.encode()).digest()[:6])
    octets[0] |= 0xC0  # static random: the two top bits set
    return ":".join(f"{octet:02X}" for octet in octets)


class PrivateJsonKeyStore(JsonKeyStore):
    """bumble's JSON bond store, written mode 0600 whatever the umask and never through a symbolic link.

    The file holds the long-term keys of every bonded host. bumble's own ``save`` writes a temporary file
    with ``open()`` (following a link planted at its name, mode from the umask); this one creates it with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600, syncs it, then renames it over the store.
    """

    def __init__(self, namespace: str, filename: Path) -> None:
        super().__init__(namespace=namespace, filename=str(filename))
        self.filename = Path(filename).absolute()  # bumble resolved links here; keep the path as given
        self.directory_name = self.filename.parent

    async def save(self, db: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Write the whole store atomically (0600, no links followed)."""
        filename = Path(self.filename)
        temp = filename.with_name(filename.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # a leftover of a crash, or a planted link: unlink removes the link, not its target
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(temp, flags, 0o600), "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump(db, out, sort_keys=True, indent=4)
            out.flush()
            os.fsync(out.fileno())
        temp.replace(filename)  # rename replaces a link at ``filename`` itself, never its target


def keystore_at(path: Path | None, namespace: str) -> KeyStore:
    """Bonds kept in a JSON file (``path``, folder created 0700, file 0600) or only in memory (``None``).

    Raises
    ------
    RadioError
        If ``path`` is a symbolic link.
    """
    if path is None:
        return MemoryKeyStore()
    if path.is_symlink():
        raise RadioError(f"[ble] keystore {path} is a symbolic link; bonds are kept only in a real file")
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
        path.parent.chmod(0o700)
    return PrivateJsonKeyStore(namespace, path)


def virtual_device(link: LocalLink, name: str, address: str, keystore: KeyStore | None = None) -> Device:
    """A bumble device with its own virtual controller on ``link`` (call inside the running loop).

    Parameters
    ----------
    link
        The in-process link shared by the device and the central(s).
    name
        Device name.
    address
        Static random address, e.g. from :func:`static_address`.
    keystore
        Where bonds go (memory if None).
    """
    controller = Controller(f"ctl-{name}-{address}", link=link, public_address=address)
    controller.le_acl_data_packet_length = LE_MAX_ACL_PAYLOAD
    device = Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
    device.keystore = keystore if keystore is not None else MemoryKeyStore()
    return device


@asynccontextmanager
async def radio_device(transport: str, name: str, address: str, keystore: Path | None) -> AsyncIterator[Device]:
    """A bumble device on a real controller, e.g. ``hci-socket:0`` (needs CAP_NET_ADMIN and BlueZ off hci0).

    Raises
    ------
    RadioError
        Naming the transport when it cannot be opened.
    """
    from bumble.transport import open_transport

    try:
        hci = await open_transport(transport)
    except Exception as exc:
        raise RadioError(
            f"[ble] transport {transport!r}: cannot open the Bluetooth controller ({type(exc).__name__}: {exc}). "
            "On a Pi: run as the forcecast service (CAP_NET_ADMIN) and stop BlueZ holding hci0 "
            "(sudo systemctl disable --now bluetooth); see hardware/README.md"
        ) from exc
    async with hci:
        device = Device.with_hci(name, Address(address), hci.source, hci.sink)
        device.keystore = keystore_at(keystore, address)
        yield device
