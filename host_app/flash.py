"""Flash a model package to a device, over BLE or into its model folder; read its model state; roll back.

Over BLE (``forcecast flash PKG --device ADDR``) the package goes up as writes without response,
each naming its offset, at most ``window_bytes`` ahead of the device's last durable acknowledgement;
every acknowledgement's CRC is checked against the same prefix of the local file. A dropped link,
a timeout or a rewind costs at most one window: the next session's UPLOAD_BEGIN resumes where the
device's durable copy ends (also after the host or the device restarted). Then UPLOAD_COMMIT: the
device verifies, checks, self-tests and switches, or refuses with a reason and keeps its model.

Into a folder (``--path DIR``: an SD card, a mounted device) the very same device code
(:class:`forcecast.edge.runtime.updates.ModelUpdates`) runs here, with the device's ``device.toml``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bleak import BleakClient
from bleak.exc import BleakBluetoothNotAvailableError, BleakError

from forcecast.edge.errors import EXIT_REFUSED, ForcecastError
from forcecast.edge.package import PackageError, read_package
from forcecast.edge.protocol import (
    CONTROL_UUID,
    INFO_UUID,
    UPLOAD_BEGIN_REPLY,
    UPLOAD_MIN_MTU,
    UPLOAD_UUID,
    Opcode,
    ProtocolError,
    Status,
    UploadAck,
    decode_upload_ack,
    encode_chunk,
    upload_chunk_size,
)
from forcecast.host_app.client import ClientConfig, ClientStats, ControlChannel, connect, find_device

Progress = Callable[[int, int], None]
"""Called with (bytes the device holds durably, package size)."""


@dataclass(frozen=True)
class FlashConfig:
    """How an upload behaves.

    Attributes
    ----------
    window_bytes
        Bytes sent ahead of the last acknowledgement.
    ack_timeout_s
        No acknowledgement for this long: resend from the last acknowledged offset.
    commit_timeout_s
        How long the device may take to verify, self-test and switch.
    attempts
        Connection attempts (sessions) before giving up.
    backoff_s
        Pause between attempts (doubling up to 8 s).
    """

    window_bytes: int = 16 * 1024
    ack_timeout_s: float = 3.0
    commit_timeout_s: float = 120.0
    attempts: int = 30
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.window_bytes < 512 or self.attempts < 1:
            raise ValueError("window_bytes must be ≥ 512 and attempts ≥ 1")


@dataclass
class FlashResult:
    """The final state of a flash, for the CLI and tests."""

    state: str = "failed"
    """``switched``, ``already_active``, ``refused`` (the device said no; its model is unchanged) or ``failed``."""
    reason: str = ""
    detail: str = ""
    device_id: str = ""
    model_before: str = ""
    model_after: str = ""
    package_bytes: int = 0
    sent_bytes: int = 0
    resumed_from: list[int] = field(default_factory=list)
    sessions: int = 0
    rewinds: int = 0
    ack_timeouts: int = 0
    upload_s: float = 0.0
    commit_s: float = 0.0

    @property
    def throughput_kib_s(self) -> float:
        """Package bytes per second of upload time (resends included in the time, not in the bytes)."""
        return self.package_bytes / 1024 / self.upload_s if self.upload_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self) | {"throughput_kib_s": round(self.throughput_kib_s, 1)}


class FlashRefusedError(ForcecastError):
    """The device refused (``reason`` is its stable code)."""

    reason = "flash_refused"
    exit_code = EXIT_REFUSED

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


@dataclass(frozen=True)
class PackageFile:
    """The bytes to send and what the host can tell about them without trusting them."""

    data: bytes
    sha256: str
    model_version: str

    @classmethod
    def read(cls, path: Path) -> PackageFile:
        """Read ``path`` (a readable manifest is only used to name the model)."""
        data = path.read_bytes()
        try:
            manifest = read_package(path).manifest
        except PackageError:
            manifest = {}
        return cls(data, hashlib.sha256(data).hexdigest(), str(manifest.get("model_version", "?")))


class Flasher:
    """Flash one package to one device over BLE (see the module docstring).

    Parameters
    ----------
    package
        The package file.
    address
        The device (None: the first forcecast device found).
    client_config, flash_config
        Connection and upload behaviour.
    progress
        Called as the device's durable copy grows.
    scanner_backend, client_backend, backend_kwargs
        bleak backends, as for :class:`forcecast.host_app.client.HostLogger`.
    """

    def __init__(
        self,
        package: Path,
        address: str | None = None,
        client_config: ClientConfig | None = None,
        flash_config: FlashConfig | None = None,
        progress: Progress | None = None,
        scanner_backend: type | None = None,
        client_backend: type | None = None,
        backend_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.package = PackageFile.read(package)
        self.address = address
        self.client_config = client_config or ClientConfig(connect_timeout_s=10.0)
        self.config = flash_config or FlashConfig()
        self.progress = progress
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self.backend_kwargs = backend_kwargs or {}
        self.result = FlashResult(package_bytes=len(self.package.data))
        self.stats = ClientStats()
        self._upload_started: float | None = None
        self._durable = 0

    async def run(self) -> FlashResult:
        """Sessions until the device switched, refused, or the attempts are used up."""
        result = self.result
        delay = self.config.backoff_s
        for _ in range(self.config.attempts):
            durable_before = self._durable
            try:
                if await self._session():
                    return result
            except FlashRefusedError as exc:
                result.state, result.reason, result.detail = "refused", exc.reason, str(exc)
                return result
            except ProtocolError as exc:
                result.state, result.reason, result.detail = "failed", exc.status.name.lower(), str(exc)
                return result
            except (BleakError, TimeoutError, OSError) as exc:
                if isinstance(exc, BleakBluetoothNotAvailableError | FileNotFoundError) and not result.sessions:
                    raise  # no adapter (or no BlueZ) at all: retrying would only hide it
                result.detail = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = self.config.backoff_s if self._durable > durable_before else min(delay * 2, 8.0)
        result.state, result.reason = "failed", "gave_up"
        result.detail = f"no complete upload after {self.config.attempts} attempts; last: {result.detail}"
        return result

    async def _session(self) -> bool:
        device = await find_device(self.address, self.client_config, self.scanner_backend, self.backend_kwargs)
        if device is None:
            wanted = self.address or "advertising the forcecast service"
            raise TimeoutError(f"no forcecast device {wanted} found within {self.client_config.scan_timeout_s:g} s")
        async with connect(device, self.client_config, self.client_backend, self.backend_kwargs) as (client, lost):
            self.result.sessions += 1
            info = await read_info(client)
            self.result.device_id = str(info.get("device_id", ""))
            if self.result.sessions == 1:
                self.result.model_before = str(info.get("model_version", ""))
            if info.get("package_sha256") == self.package.sha256:
                self.result.model_after = str(info.get("model_version", ""))
                self.result.state = "switched" if self._upload_started is not None else "already_active"
                return True
            if not info.get("updates"):
                detail = f"{self.result.device_id} does not take model updates ([models] updates, or it runs --model)"
                raise FlashRefusedError("updates_off", detail)
            if client.mtu_size < UPLOAD_MIN_MTU:
                detail = f"the link's ATT MTU is {client.mtu_size}; uploads need ≥ {UPLOAD_MIN_MTU}"
                raise FlashRefusedError("mtu", detail)
            control = ControlChannel(client, self.stats, self.client_config.request_timeout_s, lost)
            acks: asyncio.Queue[UploadAck] = asyncio.Queue()
            await client.start_notify(CONTROL_UUID, control.on_notify)
            await client.start_notify(UPLOAD_UUID, lambda _c, data: self._on_ack(acks, data))
            await self._upload(client, control, acks, lost)
            commit_started = time.perf_counter()
            try:
                reply = await control.request(Opcode.UPLOAD_COMMIT, timeout_s=self.config.commit_timeout_s)
            except ProtocolError as exc:
                if exc.status is Status.REFUSED:
                    reason, _, detail = str(exc).removeprefix("UPLOAD_COMMIT: ").partition(": ")
                    raise FlashRefusedError(reason, detail or reason) from None
                raise
            self.result.commit_s = time.perf_counter() - commit_started
            self.result.detail = reply.payload.decode(errors="replace")
            after = await read_info(client)
            self.result.model_after = str(after.get("model_version", ""))
            self.result.state = "switched"
            return True

    async def _upload(
        self, client: BleakClient, control: ControlChannel, acks: asyncio.Queue[UploadAck], lost: asyncio.Event
    ) -> None:
        data, size = self.package.data, len(self.package.data)
        begin = await control.request(Opcode.UPLOAD_BEGIN, size, bytes.fromhex(self.package.sha256))
        offset, crc = UPLOAD_BEGIN_REPLY.unpack(begin.payload)
        if offset > size or crc != zlib.crc32(data[:offset]):
            await control.request(Opcode.UPLOAD_ABORT)  # the device's copy is not a prefix of ours: start over
            begin = await control.request(Opcode.UPLOAD_BEGIN, size, bytes.fromhex(self.package.sha256))
            offset, crc = UPLOAD_BEGIN_REPLY.unpack(begin.payload)
        self.result.resumed_from.append(offset)
        if self._upload_started is None:
            self._upload_started = time.perf_counter()
        chunk = upload_chunk_size(client.mtu_size)
        acked = sent = offset
        self._report(acked)
        while acked < size:
            while sent < size and sent - acked < self.config.window_bytes:
                piece = data[sent : sent + chunk]
                await client.write_gatt_char(UPLOAD_UUID, encode_chunk(sent, piece), response=False)
                sent += len(piece)
                self.result.sent_bytes += len(piece)
            ack = await self._next_ack(acks, lost)
            if ack is None:
                self.result.ack_timeouts += 1
                sent = acked  # resend what was not acknowledged
                continue
            if ack.offset > size or ack.crc32 != zlib.crc32(data[: ack.offset]):
                await control.request(Opcode.UPLOAD_ABORT)
                raise BleakError(f"the device's copy up to {ack.offset} does not match the package (CRC); restarting")
            acked = ack.offset
            if ack.rewind:
                self.result.rewinds += 1
                sent = acked
            self._report(acked)
        self.result.upload_s = time.perf_counter() - self._upload_started

    async def _next_ack(self, acks: asyncio.Queue[UploadAck], lost: asyncio.Event) -> UploadAck | None:
        getter = asyncio.ensure_future(acks.get())
        dropped = asyncio.ensure_future(lost.wait())
        try:
            timeout = self.config.ack_timeout_s
            await asyncio.wait({getter, dropped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if lost.is_set():
            raise BleakError("the link dropped during the upload")
        return None

    def _on_ack(self, acks: asyncio.Queue[UploadAck], data: bytearray) -> None:
        try:
            acks.put_nowait(decode_upload_ack(bytes(data)))
        except ProtocolError as exc:
            self.stats.reject(f"upload_ack_{exc.status.name}")

    def _report(self, durable: int) -> None:
        self._durable = durable
        if self.progress is not None:
            self.progress(durable, len(self.package.data))


async def read_info(client: BleakClient) -> dict[str, Any]:
    """The device-info characteristic, parsed."""
    return dict(json.loads(bytes(await client.read_gatt_char(INFO_UUID))))


async def device_request(
    address: str | None,
    action: str,
    client_config: ClientConfig | None = None,
    scanner_backend: type | None = None,
    client_backend: type | None = None,
    backend_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``info`` or ``rollback`` on a device over BLE; returns the device info (after the rollback).

    Raises
    ------
    FlashRefusedError
        If the device refuses the rollback (e.g. ``no_previous``).
    TimeoutError
        If no device is found.
    """
    config = client_config or ClientConfig(connect_timeout_s=10.0)
    kwargs = backend_kwargs or {}
    device = await find_device(address, config, scanner_backend, kwargs)
    if device is None:
        raise TimeoutError(f"no forcecast device {address or ''} found within {config.scan_timeout_s:g} s")
    async with connect(device, config, client_backend, kwargs) as (client, lost):
        if action == "rollback":
            control = ControlChannel(client, ClientStats(), config.request_timeout_s, lost)
            await client.start_notify(CONTROL_UUID, control.on_notify)
            try:
                await control.request(Opcode.ROLLBACK, timeout_s=FlashConfig().commit_timeout_s)
            except ProtocolError as exc:
                if exc.status is Status.REFUSED:
                    reason, _, detail = str(exc).removeprefix("ROLLBACK: ").partition(": ")
                    raise FlashRefusedError(reason, detail or reason) from None
                raise
        return await read_info(client)
