"""The device's configuration (``device.toml``): who wears it, which sensors, how the runtime behaves.

See ``hardware/device.toml`` for a commented example. ``device_id``, the ``[patient]`` table (with
``patient_id``, ``body_mass_kg`` and ``height_m``) and at least one ``[[sensors]]`` table are required in a
file: defaults there would silently give the model another person's body or another device's sensors.
Every other table and key is optional. Every number must be finite and in its range (see each field's
``bounded``); an error names the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from forcecast.edge.config import ConfigError, bounded, check_bounds, from_dict, read_toml
from forcecast.edge.schema import PLACES

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
"""Device and patient ids: 1..32 characters of letters, digits, ``.``, ``_`` and ``-`` (fits the device info)."""
REQUIRED_PATIENT_KEYS = ("patient_id", "body_mass_kg", "height_m")


def check_id(name: str, value: str) -> None:
    """Refuse an id that is empty, too long or has characters outside :data:`ID_PATTERN`."""
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{name}: {value!r} must be 1..32 letters, digits, '.', '_' or '-' (starting with a letter or digit)"
        )


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
    body_mass_kg: float = bounded(70.0, 20.0, 300.0, unit="kg")
    height_m: float = bounded(1.70, 0.9, 2.5, unit="m")
    hka_deg: float | None = bounded(None, -30.0, 30.0, unit="°")
    affected_side: Literal["left", "right", "none"] = "none"
    peak_limit_bw: float = bounded(0.0, 0.0, 5.0, unit="BW (0 = no cue)")

    def __post_init__(self) -> None:
        check_id("patient_id", self.patient_id)
        check_bounds(self)


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
    bus: int = bounded(1, 0, 255)
    address: int = bounded(0x6A, 0x03, 0x77)
    axes: tuple[str, ...] = ("x", "y", "z")

    def __post_init__(self) -> None:
        from forcecast.edge.sources.lsm6dsox import AxisMap

        if self.place not in PLACES:
            raise ValueError(f"place: {self.place!r} is not one of {', '.join(PLACES)}")
        if not 0x03 <= self.address <= 0x77:
            raise ValueError(f"address: I2C address {self.address} (0x{self.address:X}) is outside 0x03..0x77")
        check_bounds(self)
        try:
            AxisMap.parse(self.axes)
        except ValueError as exc:
            raise ValueError(f"axes: {exc}") from None


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
    poll_s
        How often the sensors are read (the I²C source's poll period). Each read goes through the pipeline as
        one chunk, so a GRF sample can wait up to one period, on top of the model's delay, before it comes out.
    stream_hop
        Samples between two inferences (1 = every sample): windows overlap and the GRF stream has no block
        edges. At most ``stream_lag + 1`` (and the model's ``out_len``), so every sample gets a prediction.
    stream_lag
        Samples, beyond the model's delay, that each GRF sample waits for later (overlapping) windows, whose
        predictions are blended with it; adds ``stream_lag`` samples of latency. 0 = each sample comes from
        the newest output of one window. At most the model's ``out_len - 1`` is used. ``stream_hop = out_len``
        with ``stream_lag = out_len - 1`` is the block scheme of earlier releases.
    """

    legs: tuple[str, ...] = ("r",)
    calibration_s: float = bounded(2.0, 0.0, 60.0, unit="s (0 = no calibration)")
    align_gravity: bool = True
    threads: int = bounded(1, 1, 16)
    edgetpu: bool = False
    max_gap_s: float = bounded(0.05, 0.0, 1.0, low_open=True, unit="s")
    clock_jump_s: float = bounded(5.0, 0.0, 3600.0, low_open=True, unit="s")
    summary_period_s: float = bounded(10.0, 1.0, 3600.0, unit="s")
    poll_s: float = bounded(0.01, 0.005, 0.1, unit="s")
    stream_hop: int = bounded(1, 1, 64, unit="samples")
    stream_lag: int = bounded(0, 0, 63, unit="samples")

    def __post_init__(self) -> None:
        if not self.legs or any(leg not in ("l", "r") for leg in self.legs) or len(set(self.legs)) != len(self.legs):
            raise ValueError(f"legs: must be one or both of 'l', 'r', got {list(self.legs)}")
        check_bounds(self)
        if self.stream_hop > self.stream_lag + 1:
            raise ValueError(
                f"stream_hop: {self.stream_hop} samples between inferences would leave samples without a "
                f"prediction; with stream_lag = {self.stream_lag} it can be at most {self.stream_lag + 1}"
            )
        if self.clock_jump_s <= self.max_gap_s:
            raise ValueError(
                f"clock_jump_s: {self.clock_jump_s:g} s must be longer than max_gap_s ({self.max_gap_s:g} s)"
            )


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
    max_bytes: int = bounded(256 * 1024 * 1024, 64 * 1024, 2**40, unit="bytes")

    def __post_init__(self) -> None:
        check_bounds(self)


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
    health_s
        A new model stays on trial until it has run this long (seconds of sensor data) with finite, plausible
        outputs; a crash, kill or restart before that rolls it back at the next start. 0 = its first inference.
    health_steps
        ...and detected at least this many steps (0 = no steps needed).
    allow_downgrade
        Accept a package created before the active model (or the newest confirmed one). Off: versions never
        go backwards.
    """

    folder: Path = Path("/var/lib/forcecast/models")
    updates: bool = True
    health_s: float = bounded(300.0, 0.0, 86400.0, unit="s")
    health_steps: int = bounded(0, 0, 100000, unit="steps")
    allow_downgrade: bool = False

    def __post_init__(self) -> None:
        check_bounds(self)


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
    gpio_pin: int = bounded(18, 0, 255)
    pulse_s: float = bounded(0.15, 0.01, 2.0, unit="s")

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.gpio_chip.startswith("/dev/"):
            raise ValueError(f"gpio_chip: {self.gpio_chip!r} is not a device under /dev (e.g. /dev/gpiochip0)")


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
        How long new hosts may pair after the local pairing action (``forcecast edge pair`` on the device);
        the window is closed at every start. Bonded hosts always reconnect.
    pairing_socket
        The Unix socket on which the running service takes the local pairing action (mode 0600, peers
        checked: root or the service's own user only).
    """

    enabled: bool = False
    transport: str = "hci-socket:0"
    name: str = "fcast"
    address: str = ""
    keystore: Path = Path("/var/lib/forcecast/bonds.json")
    pairing_window_s: float = bounded(120.0, 10.0, 3600.0, unit="s")
    pairing_socket: Path = Path("/run/forcecast/pairing.sock")

    def __post_init__(self) -> None:
        if not 1 <= len(self.name.encode()) <= 8:
            raise ValueError(f"name must be 1..8 bytes (it is advertised with the service UUID), got {self.name!r}")
        if self.address and not _is_static_random(self.address):
            raise ValueError(
                f"address: {self.address!r} is not a static random address (six hex bytes, first byte C0..FF)"
            )
        check_bounds(self)


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
        check_id("device_id", self.device_id)
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
    data = read_toml(Path(path))
    config = from_dict(DeviceConfig, data, f"{path}: ")
    missing = [] if "device_id" in data else ["device_id (one per physical unit; it keys the host's records)"]
    patient = data.get("patient")
    if patient is None:
        missing.append("[patient] table (patient_id, body_mass_kg, height_m: the model's static features)")
    else:
        missing += [f"patient.{key}" for key in REQUIRED_PATIENT_KEYS if key not in patient]
    if not data.get("sensors"):
        missing.append("[[sensors]] tables (one per IMU: place, bus, address, axes)")
    if missing:
        raise ConfigError(
            f"{path}: missing {'; '.join(missing)}. Defaults are not used for these: they would describe another "
            "person or another device (see hardware/device.toml)"
        )
    return config
