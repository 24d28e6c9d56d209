"""A simulated device for the live view: the real runtime on a synthetic walker, over the in-process BLE link.

``forcecast host live --virtual`` needs no Bluetooth adapter and no sensors: the device side is the real
edge runtime (:class:`forcecast.edge.runtime.pipeline.Pipeline`, a signed model package, step records,
biofeedback cues, 10 s summaries) fed in real time by the lab's synthetic walker, its records in a device
store and its GATT server on bumble's ``LocalLink``; the host side is the same :class:`HostLogger` a real
device gets (see :mod:`forcecast.host_app.virtual_link`). The walker walks bouts with pauses between them,
forever, until the caller stops it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from forcecast.edge.errors import UsageError
from forcecast.edge.runtime.feedback import CueEvent
from forcecast.edge.sources.base import Source
from forcecast.host_app.analytics import PatientContext
from forcecast.host_app.client import ClientConfig, HostLogger
from forcecast.host_app.store import HostStore

log = logging.getLogger(__name__)
WALKING_PROGRAM: tuple[tuple[str, float], ...] = (
    ("comfortable", 40.0),
    ("static", 6.0),
    ("fast", 20.0),
    ("static", 6.0),
    ("slow", 25.0),
    ("static", 6.0),
)
"""What the simulated patient does, repeated: walking bouts at three speeds with standing pauses."""
DEFAULT_LIMIT_BW = 1.1
"""The simulated patient's feedback limit: the walker's faster steps go over it, so cues can be seen."""


@dataclass(frozen=True)
class VirtualDeviceConfig:
    """The simulated device and its patient.

    Attributes
    ----------
    package, pubkey
        The signed model package it runs and the public key it trusts (``forcecast demo`` writes both).
    folder
        Where the device keeps its record store.
    device_id
        The device's id (what the live view names).
    subject, seed
        Which synthetic walker (subject of the lab cohort with this seed).
    limit_bw
        Biofeedback limit on the vertical force (BW); the device cues above it.
    affected_side
        The walker's affected leg as the clinic recorded it (``None``: the walker's own).
    """

    package: Path
    pubkey: Path
    folder: Path
    device_id: str = "fc-virtual"
    subject: int = 3
    seed: int = 5
    limit_bw: float = DEFAULT_LIMIT_BW
    affected_side: str | None = None

    def __post_init__(self) -> None:
        if not self.limit_bw > 0:
            raise UsageError(f"the virtual device's limit must be > 0 BW, not {self.limit_bw}")
        for name in ("package", "pubkey"):
            path = getattr(self, name)
            if not Path(path).is_file():
                raise UsageError(
                    f"--{name}: {path} is not a file (run 'forcecast demo' once: it writes model-int8.fcpkg "
                    "and keys/forcecast_ed25519.pub; or give a package and its public key)"
                )


class SimulatedBuzzer:
    """The simulated device's cue output: counts the cues a real one would buzz (the page shows their records)."""

    def __init__(self) -> None:
        self.fired = 0

    def fire(self, event: CueEvent) -> None:
        """Count one cue."""
        self.fired += 1

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class VirtualDevice:
    """A running simulated device: the host client to serve, and what the page should know about the patient."""

    logger: HostLogger
    context: PatientContext
    stop_walking: threading.Event


@asynccontextmanager
async def virtual_device(
    config: VirtualDeviceConfig, host: HostStore, client: ClientConfig | None = None
) -> AsyncIterator[VirtualDevice]:
    """Start the simulated device (model loaded and self-tested, walker walking in real time) and a host client.

    The host client is not started: the caller runs ``device.logger.run()`` (the live view installs its hooks
    first). Leaving the context stops the walker and closes the link.

    Raises
    ------
    forcecast.edge.package.PackageError
        If the package is refused (signature, contract, self-test).
    """
    from forcecast.edge.link import DeviceLink
    from forcecast.edge.runtime.config import DeviceConfig, FeedbackConfig, PatientConfig, RuntimeConfig
    from forcecast.edge.runtime.device_info import device_info
    from forcecast.edge.runtime.lifecycle import ModelFit, load_model_file
    from forcecast.edge.runtime.pipeline import Pipeline, run_source
    from forcecast.edge.runtime.store import RecordStore
    from forcecast.edge.sources.plugins import source_class
    from forcecast.host_app.virtual_link import virtual_link

    logging.getLogger("bumble").setLevel(logging.ERROR)
    # The lab layer's walker, found as the device finds it (--source synthetic): a plug-in, not an import
    synthetic = source_class("synthetic")
    probe = synthetic(subject=config.subject, seed=config.seed)
    walker = probe.subject
    side = config.affected_side or walker.affected_side
    if side not in ("left", "right", "none"):
        raise UsageError(f"affected side {side!r} is not left, right or none")
    patient = PatientConfig(
        patient_id="VIRTUAL-01",
        body_mass_kg=walker.body_mass_kg,
        height_m=walker.height_m,
        hka_deg=walker.hka_deg,
        affected_side=side,  # type: ignore[arg-type]  # checked above
        peak_limit_bw=config.limit_bw,
    )
    device = DeviceConfig(
        device_id=config.device_id,
        patient=patient,
        runtime=RuntimeConfig(legs=("l", "r")),
        feedback=FeedbackConfig(output="none"),
    )
    loaded = await asyncio.to_thread(
        load_model_file, config.package, [config.pubkey], ModelFit.of(device, probe.columns)
    )
    config.folder.mkdir(parents=True, exist_ok=True)
    store = RecordStore(config.folder / f"{config.device_id}.sqlite", device_id=config.device_id)
    info = device_info(device, loaded.package, loaded.contract)
    context = PatientContext(
        affected_side=side,  # type: ignore[arg-type]  # checked above
        hka_deg=walker.hka_deg,
        body_mass_kg=walker.body_mass_kg,
        height_m=walker.height_m,
        feedback_limit_bw=config.limit_bw,
        source="the virtual device's patient",
    )
    stop = threading.Event()
    async with virtual_link(DeviceLink(store, info), output_rate_hz=loaded.contract.rate_hz) as link:
        logger = link.logger(host, client or ClientConfig(live=True))

        current: list[Source] = []
        buzzer = SimulatedBuzzer()

        def walk() -> None:
            bout = 0
            while not stop.is_set():
                source = synthetic(
                    subject=config.subject,
                    seed=config.seed + bout,
                    speed=1.0,
                    stand_s=3.0,
                    program=WALKING_PROGRAM,
                    duration_s=3.0 + sum(seconds for _, seconds in WALKING_PROGRAM),
                )
                pipeline = Pipeline(
                    loaded.model,
                    loaded.contract,
                    device,
                    source.columns,
                    source.rate_hz,
                    source.acc_range_mps2,
                    source.gyr_range_rads,
                    sink=store,
                    model_version=str(loaded.package.manifest["model_version"]),
                    patient=patient,
                    listeners=[link.server.listener],
                    cue=buzzer,
                )
                current[:] = [source]
                if not stop.is_set():
                    run_source(pipeline, source)
                bout += 1

        walking = asyncio.create_task(asyncio.to_thread(walk))
        try:
            yield VirtualDevice(logger, context, stop)
        finally:
            stop.set()
            for source in list(current):
                source.close()  # the replay ends within a chunk
            await walking
            store.close()
