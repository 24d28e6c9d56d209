"""The device's configuration (``device.toml``): who wears it, which sensors, how the runtime behaves.

See ``hardware/device.toml`` for a commented example. Every table and key is optional; the defaults
describe one right-shank + pelvis device on I²C bus 1 for a 70 kg, 1.70 m person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge.config import ConfigError, load_config
from edge.schema import PLACES


@dataclass(frozen=True)
class PatientConfig:
    """The person wearing the device (static model features and the biofeedback limit).

    Attributes
    ----------
    patient_id
        Pseudonymous id written into every record.
    body_mass_kg, height_m
        Static features; body mass also converts BW to newtons.
    hka_deg
        Hip-knee-ankle angle of the affected knee (the right one if neither is), varus positive, as in
        the dataset's ``subjects.csv``; absent = unknown.
    affected_side
        ``left``, ``right`` or ``none``.
    peak_limit_bw
        Biofeedback: cue when a step's vertical force exceeds this (BW); 0 = no cue.
    """

    patient_id: str = "P001"
    body_mass_kg: float = 70.0
    height_m: float = 1.70
    hka_deg: float | None = None
    affected_side: Literal["left", "right", "none"] = "none"
    peak_limit_bw: float = 0.0

    def __post_init__(self) -> None:
        if not 20.0 <= self.body_mass_kg <= 300.0:
            raise ValueError(f"body_mass_kg must be 20..300 kg, got {self.body_mass_kg}")
        if not 0.9 <= self.height_m <= 2.5:
            raise ValueError(f"height_m must be 0.9..2.5 m, got {self.height_m}")
        if not 0.0 <= self.peak_limit_bw <= 5.0:
            raise ValueError(f"peak_limit_bw must be 0 (off) or up to 5 BW, got {self.peak_limit_bw}")


@dataclass(frozen=True)
class SensorConfig:
    """One IMU on an I²C bus.

    Attributes
    ----------
    place
        Format-v1 place (``r_shank``, ``pelvis`` ...).
    driver
        Chip driver: ``lsm6dsox``.
    bus
        I²C bus number (``/dev/i2c-N``).
    address
        7-bit I²C address (LSM6DSOX: 0x6A with SA0 low, 0x6B high).
    axes
        Which chip axis (with sign) points along nominal x (anterior), y (left) and z (up) as mounted,
        e.g. ``["-y", "x", "z"]`` for a board turned 90° to the left. Must be a rotation, not a mirror.
    """

    place: str
    driver: Literal["lsm6dsox"] = "lsm6dsox"
    bus: int = 1
    address: int = 0x6A
    axes: tuple[str, ...] = ("x", "y", "z")

    def __post_init__(self) -> None:
        if self.place not in PLACES:
            raise ValueError(f"sensor place {self.place!r} is not one of {', '.join(PLACES)}")
        if not 0x03 <= self.address <= 0x77:
            raise ValueError(f"I2C address 0x{self.address:02X} is outside 0x03..0x77")


@dataclass(frozen=True)
class RuntimeConfig:
    """How the pipeline runs.

    Attributes
    ----------
    legs
        Legs to predict (``l``, ``r``); each needs the model's places on its side.
    calibration_s
        Quiet standing at start used for gyro bias and gravity alignment (0 = no calibration).
    align_gravity
        Rotate each sensor so the standing gravity vector lies on +z (roll and pitch only).
    threads
        Interpreter threads.
    edgetpu
        Use the package's Edge TPU build with the Coral delegate.
    max_gap_s
        A timestamp step longer than this is a dropout; the pipeline restarts its filters.
    clock_jump_s
        A forward step longer than this (or any backward step) is a clock jump, not a dropout.
    summary_period_s
        Period of the GRF stream summaries written to the store.
    """

    legs: tuple[str, ...] = ("r",)
    calibration_s: float = 2.0
    align_gravity: bool = True
    threads: int = 1
    edgetpu: bool = False
    max_gap_s: float = 0.05
    clock_jump_s: float = 5.0
    summary_period_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.legs or any(leg not in ("l", "r") for leg in self.legs) or len(set(self.legs)) != len(self.legs):
            raise ValueError(f"legs must be one or both of 'l', 'r', got {list(self.legs)}")
        if self.calibration_s < 0 or self.threads < 1 or self.max_gap_s <= 0 or self.summary_period_s <= 0:
            raise ValueError("calibration_s ≥ 0, threads ≥ 1, max_gap_s > 0 and summary_period_s > 0 are required")
        if self.clock_jump_s <= self.max_gap_s:
            raise ValueError("clock_jump_s must be longer than max_gap_s")


@dataclass(frozen=True)
class StoreConfig:
    """The on-device record store.

    Attributes
    ----------
    path
        SQLite file.
    max_bytes
        Size cap; when reached, acknowledged records go first, then the oldest unacknowledged.
    """

    path: Path = Path("/var/lib/forcecast/store.sqlite")
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_bytes < 64 * 1024:
            raise ValueError(f"max_bytes must be at least 64 KiB, got {self.max_bytes}")


@dataclass(frozen=True)
class ModelsConfig:
    """Where the device keeps its models and whether it takes updates.

    Attributes
    ----------
    folder
        The model slots (``active.fcpkg``, ``previous.fcpkg``, an upload in progress); ``forcecast edge run``
        without ``--model`` runs the active one.
    updates
        Accept model uploads over BLE (from bonded hosts; every package is still verified and self-tested).
    """

    folder: Path = Path("/var/lib/forcecast/models")
    updates: bool = True


@dataclass(frozen=True)
class FeedbackConfig:
    """How a cue reaches the patient.

    Attributes
    ----------
    output
        ``stdout`` (a JSON event line), ``gpio`` (a pulse on ``gpio_pin`` via libgpiod) or ``none``.
    gpio_chip, gpio_pin
        GPIO character device and line offset (BCM number on a Raspberry Pi).
    pulse_s
        Length of the buzzer/vibration pulse.
    """

    output: Literal["stdout", "gpio", "none"] = "stdout"
    gpio_chip: str = "/dev/gpiochip0"
    gpio_pin: int = 18
    pulse_s: float = 0.15


@dataclass(frozen=True)
class BleConfig:
    """The Bluetooth Low Energy link to the host app.

    Attributes
    ----------
    enabled
        Serve the GATT service (``forcecast edge run --ble`` turns it on too).
    transport
        bumble transport of the controller: ``hci-socket:0`` is the Pi's built-in radio (hci0, taken
        from BlueZ: stop ``bluetooth.service``), ``usb:0`` a USB dongle.
    name
        Advertised name (at most 8 characters: it shares 31 bytes with the 128-bit service UUID).
    address
        Static random address; empty = derived from ``device_id``, so a device keeps its address.
    keystore
        JSON file holding the bonds (long-term keys) of paired hosts.
    pairing_window_s
        New hosts may pair only this long after the runtime starts (bonded hosts always reconnect);
        ``0`` = never, ``inf`` = always.
    """

    enabled: bool = False
    transport: str = "hci-socket:0"
    name: str = "fcast"
    address: str = ""
    keystore: Path = Path("/var/lib/forcecast/bonds.json")
    pairing_window_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.name.encode()) <= 8:
            raise ValueError(f"name must be 1..8 bytes (it is advertised with the service UUID), got {self.name!r}")
        if self.address and not _is_static_random(self.address):
            raise ValueError(
                f"address {self.address!r} is not a static random address (six hex bytes, first byte C0..FF)"
            )
        if not self.pairing_window_s >= 0:
            raise ValueError(f"pairing_window_s must be ≥ 0 (inf = always), got {self.pairing_window_s}")


def _is_static_random(address: str) -> bool:
    parts = address.split(":")
    try:
        octets = [int(part, 16) for part in parts if len(part) == 2]
    except ValueError:
        return False
    return len(parts) == 6 and len(octets) == 6 and octets[0] >= 0xC0


@dataclass(frozen=True)
class DeviceConfig:
    """Everything in ``device.toml``."""

    device_id: str = "forcecast-dev"
    trusted_keys: tuple[Path, ...] = ()
    patient: PatientConfig = field(default_factory=PatientConfig)
    sensors: tuple[SensorConfig, ...] = (SensorConfig("r_shank", address=0x6A), SensorConfig("pelvis", address=0x6B))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    ble: BleConfig = field(default_factory=BleConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)

    def __post_init__(self) -> None:
        places = [s.place for s in self.sensors]
        duplicated = sorted({p for p in places if places.count(p) > 1})
        if duplicated:
            raise ValueError(f"sensors: place(s) {', '.join(duplicated)} configured twice")
        buses = [(s.bus, s.address) for s in self.sensors]
        clashing = sorted({b for b in buses if buses.count(b) > 1})
        if clashing:
            raise ValueError(f"sensors: two sensors on bus {clashing[0][0]} address 0x{clashing[0][1]:02X}")


def load_device_config(path: Path | str | None) -> DeviceConfig:
    """Read ``device.toml`` (defaults when ``path`` is None).

    Raises
    ------
    ConfigError
        Naming the file and key of anything wrong.
    """
    if path is None:
        return DeviceConfig()
    try:
        return load_config(DeviceConfig, path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: device configuration not found") from None
