"""The hardware/ deliverables agree with the runtime and with each other (offline, no TensorFlow, no device).

The example device.toml loads and can run the default model; the systemd unit starts the runtime the way
the docs say, as a notify service with a watchdog; the udev rules are well-formed and grant the groups the
unit asks for; the docs' links resolve; the mounting table's axis mappings really turn each mounting into
the nominal frame; the bench probe reads a chip through the runtime's driver.
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

from forcecast.edge.features import sensor_place
from forcecast.edge.runtime.config import (
    BleConfig,
    DeviceConfig,
    FeedbackConfig,
    PatientConfig,
    RuntimeConfig,
    SensorConfig,
    StoreConfig,
    load_device_config,
)
from forcecast.edge.schema import AFFECTED_SIDES, GRAVITY_MPS2
from forcecast.edge.sources.base import SourceError
from forcecast.edge.sources.lsm6dsox import AxisMap
from forcecast.training.config import DataConfig

ROOT = Path(__file__).resolve().parents[2]
HARDWARE = ROOT / "hardware"
DEVICE_TOML = HARDWARE / "device.toml"
UNIT = HARDWARE / "systemd" / "forcecast-edge.service"
RULES = HARDWARE / "udev" / "99-forcecast.rules"
PROBE = HARDWARE / "tools" / "imu_probe.py"


# -- device.toml ---------------------------------------------------------------------------------------


def test_example_device_config_loads_and_is_consistent():
    config = load_device_config(DEVICE_TOML)
    places = [s.place for s in config.sensors]
    wiring = [(s.bus, s.address) for s in config.sensors]
    assert len(set(places)) == len(places) and len(set(wiring)) == len(wiring)
    assert {s.address for s in config.sensors} <= {0x6A, 0x6B}, "an LSM6DSOX answers only at 0x6A or 0x6B"
    assert all(s.driver == "lsm6dsox" for s in config.sensors)
    assert config.patient.affected_side in AFFECTED_SIDES
    assert config.patient.patient_id and config.device_id
    assert all(k.parts[:4] == ("/", "etc", "forcecast", "keys") and k.suffix == ".pub" for k in config.trusted_keys)
    assert config.trusted_keys, "without a trusted key the device refuses every package"
    assert config.store.path.parent == Path("/var/lib/forcecast"), "the service may write only there"
    assert config.feedback.gpio_pin == 18 and config.feedback.output == "gpio"


def test_example_device_carries_every_place_the_default_model_needs():
    config = load_device_config(DEVICE_TOML)
    needed = {sensor_place(p, leg) for leg in config.runtime.legs for p in DataConfig().leg_places}
    assert needed <= {s.place for s in config.sensors}


def test_example_documents_every_configuration_key():
    text = DEVICE_TOML.read_text()
    raw = tomllib.loads(text)
    commented = set(re.findall(r"^#\s*(\w+)\s*=", text, flags=re.M))
    tables = {
        "": (DeviceConfig, raw),
        "patient": (PatientConfig, raw["patient"]),
        "runtime": (RuntimeConfig, raw["runtime"]),
        "store": (StoreConfig, raw["store"]),
        "feedback": (FeedbackConfig, raw["feedback"]),
        "ble": (BleConfig, raw["ble"]),
    }
    missing = []
    for name, (cls, table) in tables.items():
        shown = set(table) | commented
        missing += [f"[{name}] {f.name}" for f in dataclasses.fields(cls) if f.name not in shown]
    for field in dataclasses.fields(SensorConfig):
        if not all(field.name in sensor for sensor in raw["sensors"]) and field.name not in commented:
            missing.append(f"[[sensors]] {field.name}")
    assert not missing, f"hardware/device.toml does not show: {missing}"


def test_every_extra_bus_in_the_example_is_created_in_the_wiring_guide():
    wiring = (HARDWARE / "wiring.md").read_text()
    readme = (HARDWARE / "README.md").read_text()
    for bus in {s.bus for s in load_device_config(DEVICE_TOML).sensors} - {1}:
        overlay = f"dtoverlay=i2c-gpio,bus={bus},"
        assert overlay in wiring and overlay in readme, f"bus {bus} is used but not created in the docs"


# -- systemd unit --------------------------------------------------------------------------------------


def unit_values(key: str, section: str = "Service") -> list[str]:
    """Every value of a key that systemd allows to repeat (configparser keeps only the last)."""
    values, current = [], None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            values.append(line.partition("=")[2])
    return values


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def seconds(value: str) -> float:
    number, unit_name = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min)?", value).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1.0, None: 1.0, "min": 60.0}[unit_name]


def test_unit_is_a_notify_service_with_a_watchdog_that_restarts(unit):
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    # The runtime pings at least every second; the watchdog must allow a few missed pings, no more than 30 s.
    assert 3 <= seconds(service["WatchdogSec"]) <= 30
    assert service["Restart"] in ("on-failure", "always")
    assert seconds(service["RestartSec"]) > 0
    assert seconds(service["TimeoutStartSec"]) >= 60, "start-up includes imports, self-test and calibration"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_runs_the_edge_runtime_on_the_installed_paths(unit):
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0] == "/opt/forcecast/.venv/bin/forcecast" and argv[1:3] == ["edge", "run"]
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options["--config"] == "/etc/forcecast/device.toml"
    assert options["--source"] == "i2c"
    assert "--model" not in options  # the model comes from the slots, so updates and rollbacks apply
    models = load_device_config(DEVICE_TOML).models.folder
    assert str(models) == "/var/lib/forcecast/models"
    readme = (HARDWARE / "README.md").read_text()
    assert "/opt/forcecast/.venv" in readme and f"flash model.fcpkg \\\n       --path {models}" in readme


def test_unit_sandbox_leaves_the_runtime_what_it_needs(unit):
    service = unit["Service"]
    assert service["User"] == "forcecast"
    assert {"i2c", "gpio", "plugdev"} <= set(service["SupplementaryGroups"].split())
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW"} <= set(service["AmbientCapabilities"].split())
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    store = load_device_config(DEVICE_TOML).store.path
    assert str(store.parent) in service["ReadWritePaths"].split()
    assert service["StateDirectory"] == "forcecast"
    socket = load_device_config(DEVICE_TOML).ble.pairing_socket  # `forcecast edge pair` reaches the service here
    assert socket.parent == Path("/run") / service["RuntimeDirectory"] and service["RuntimeDirectoryMode"] == "0700"
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()
    assert "AF_BLUETOOTH" in service["RestrictAddressFamilies"].split()
    assert "PrivateNetwork" not in service, "Bluetooth sockets exist only in the host's network namespace"
    if service.get("DevicePolicy") == "closed":
        allowed = {v.split()[0] for v in unit_values("DeviceAllow")}
        assert {"char-i2c", "char-gpiochip", "char-usb_device"} <= allowed


def test_unit_has_no_trailing_comments():
    # systemd reads "Restart=always # comment" as the value "always # comment".
    for number, line in enumerate(UNIT.read_text().splitlines(), 1):
        if not line.startswith("#") and "=" in line:
            assert "#" not in line.partition("=")[2], f"line {number}: {line}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path):
    # ExecStart must exist for verify; everything else is checked as written.
    copy = tmp_path / UNIT.name
    copy.write_text(re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", UNIT.read_text(), flags=re.M))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    # RestartSteps/RestartMaxDelaySec are documented as unknown to systemd < 254; nothing else may be.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if copy.name in line and not re.search(r"Unknown key '?(RestartSteps|RestartMaxDelaySec)", line)
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# -- udev rules ----------------------------------------------------------------------------------------

MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVER", "DRIVERS", "ATTR", "ATTRS", "ENV"}
ASSIGN_KEYS = {"GROUP", "MODE", "OWNER", "TAG", "SYMLINK", "ENV"}
TOKEN = re.compile(r'^(?P<key>[A-Z]+)(?:\{(?P<attr>[A-Za-z_]+)\})?(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"$')


def udev_rules() -> list[list[re.Match[str]]]:
    rules = []
    for number, line in enumerate(RULES.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = [t.strip() for t in re.findall(r'(?:[^,"]|"[^"]*")+', line)]
        matches = [m for m in (TOKEN.match(t) for t in tokens) if m is not None]
        bad = [t for t in tokens if not TOKEN.match(t)]
        assert not bad, f"{RULES.name}:{number}: cannot parse {bad}"
        rules.append(matches)
    return rules


def test_udev_rules_are_well_formed():
    rules = udev_rules()
    assert rules
    for rule in rules:
        tests = [m for m in rule if m["op"] in ("==", "!=")]
        assignments = [m for m in rule if m["op"] not in ("==", "!=")]
        assert tests and assignments, [m.string for m in rule]
        assert all(m["key"] in MATCH_KEYS for m in tests), [m.string for m in tests]
        assert all(m["key"] in ASSIGN_KEYS for m in assignments), [m.string for m in assignments]
        assert all((m["attr"] is not None) == (m["key"] in ("ATTR", "ATTRS", "ENV")) for m in rule)
        for m in assignments:
            if m["key"] == "MODE":
                assert re.fullmatch(r"0[0-7]{3}", m["value"]), m.string


def test_udev_rules_cover_the_devices_and_grant_the_units_groups(unit):
    groups = set(unit["Service"]["SupplementaryGroups"].split())
    granted, usb_ids, subsystems = set(), set(), set()
    for rule in udev_rules():
        fields = {(m["key"], m["attr"]): m["value"] for m in rule}
        granted.add(fields[("GROUP", None)])
        subsystems.add(fields[("SUBSYSTEM", None)])
        if ("ATTR", "idVendor") in fields:
            usb_ids.add(f"{fields[('ATTR', 'idVendor')]}:{fields[('ATTR', 'idProduct')]}")
    assert granted <= groups, "a rule grants a group the service is not in"
    assert {"i2c-dev", "gpio", "usb"} <= subsystems
    assert usb_ids == {"1a6e:089a", "18d1:9302"}, "the Coral before and after its firmware upload"


# -- docs ----------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def without_code(markdown: str) -> str:
    return re.sub(r"```.*?```", "", markdown, flags=re.S)


def test_relative_links_in_hardware_docs_resolve():
    broken = []
    for doc in sorted(HARDWARE.rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no file)")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+\s+(.*)$", without_code(file.read_text()), flags=re.M)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{doc.name}: {target} (no heading)")
    assert not broken, broken


def test_readme_indexes_every_hardware_file():
    readme = (HARDWARE / "README.md").read_text()
    files = [p.relative_to(HARDWARE).as_posix() for p in HARDWARE.rglob("*") if p.is_file()]
    unlisted = [f for f in files if f != "README.md" and "__pycache__" not in f and f"]({f})" not in readme]
    assert not unlisted, unlisted


def mounting_rows() -> list[tuple[str, AxisMap, np.ndarray, str]]:
    readme = (HARDWARE / "README.md").read_text()
    section = readme.split("## Mounting the LSM6DSOX", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        spec = re.search(r'`\["([-xyz]+)", "([-xyz]+)", "([-xyz]+)"\]`', line)
        if spec:
            cells = [c.strip() for c in line.strip("|").split("|")]
            standing = np.array([float(v.replace("−", "-")) for v in cells[5].strip("()").split(",")])
            rows.append((cells[0], AxisMap.parse(spec.groups()), standing, cells[6]))
    return rows


def test_example_axes_are_those_of_the_mounting_table():
    table = {p: axes.spec for names, axes, _, _ in mounting_rows() for p in re.findall(r"`(\w+)`", names)}
    for sensor in load_device_config(DEVICE_TOML).sensors:
        assert tuple(sensor.axes) == table[sensor.place], sensor.place


def test_mounting_table_maps_each_mounting_into_the_nominal_frame():
    rows = mounting_rows()
    assert {p for row in rows for p in re.findall(r"`(\w+)`", row[0])} == {
        "l_shank",
        "r_shank",
        "l_thigh",
        "r_thigh",
        "pelvis",
        "l_foot",
        "r_foot",
    }
    for place, axes, standing, swing in rows:
        nominal = axes.matrix @ standing
        np.testing.assert_allclose(nominal, [0.0, 0.0, 9.8], atol=1e-9, err_msg=place)
        # Forward swing is a negative nominal y rate; the table says which chip axis shows it and how.
        chip = axes.matrix.T @ np.array([0.0, -1.0, 0.0])
        if swing != "–":
            axis, sign = swing.split()
            value = chip["xyz".index(axis)]
            assert value == (1.0 if sign == "positive" else -1.0), f"{place}: chip gyro {chip}, table says {swing}"


# -- bench probe ---------------------------------------------------------------------------------------


def load_probe():
    spec = importlib.util.spec_from_file_location("imu_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeBus:
    """Registers of one LSM6DSOX: identity, configuration that reads back, fixed output registers."""

    def __init__(self, acc_counts: tuple[int, int, int], gyr_counts: tuple[int, int, int], who: int = 0x6C):
        self.registers = {0x0F: who, 0x12: 0x04, 0x18: 0xE0}
        self.output = np.array([*gyr_counts, *acc_counts], dtype="<i2").tobytes()

    def read_byte_data(self, address: int, register: int) -> int:
        return self.registers.get(register, 0)

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self.registers[register] = value & ~0x01 if register == 0x12 else value  # SW_RESET completes at once

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        assert register == 0x22 and length == 12
        return list(self.output)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


ACC_LSB_MPS2 = 0.488e-3 * GRAVITY_MPS2  # ±16 g (datasheet)
GYR_LSB_RADS = np.radians(70e-3)  # ±2000 dps


@pytest.mark.parametrize(
    ("axes", "acc_counts"),
    [(("x", "y", "z"), (0, 0, 2048)), (("z", "y", "-x"), (-2048, 0, 0)), (("x", "-z", "y"), (0, 2048, 0))],
)
def test_probe_prints_gravity_in_the_frame_asked_for(axes, acc_counts):
    probe = load_probe()
    gyr_counts = (0, 0, 143)  # 10 dps about chip z
    bus, clock, out = FakeBus(acc_counts, gyr_counts), Clock(), io.StringIO()
    lines = probe.probe(bus, 1, 0x6A, axes, period_s=0.5, seconds=1.0, out=out, clock=clock, sleep=clock.sleep)
    header, *rows = out.getvalue().splitlines()
    assert lines == len(rows) == 2 and "bus 1 address 0x6A" in header
    matrix = AxisMap.parse(axes).matrix
    for row in rows:
        acc_text, gyr_text = re.fullmatch(r"acc (.*) m/s\^2 .* gyr (.*) rad/s .*", row).groups()
        acc = np.array(acc_text.split()[:3], dtype=float)
        gyr = np.array(gyr_text.split(), dtype=float)
        np.testing.assert_allclose(acc, [0.0, 0.0, 2048 * ACC_LSB_MPS2], atol=0.006)  # gravity up after mapping
        np.testing.assert_allclose(gyr, matrix @ np.array(gyr_counts) * GYR_LSB_RADS, atol=0.0006)
    assert bus.registers[0x10] == 0 and bus.registers[0x11] == 0, "the chip is powered down afterwards"


def test_probe_refuses_another_chip():
    probe = load_probe()
    with pytest.raises(SourceError, match="WHO_AM_I is 0x69"):
        probe.probe(FakeBus((0, 0, 0), (0, 0, 0), who=0x69), 1, 0x6A, ("x", "y", "z"), 0.5, 1.0, out=io.StringIO())


def test_probe_takes_a_sensor_from_the_example_config():
    probe = load_probe()
    config = load_device_config(DEVICE_TOML)
    for sensor in config.sensors:
        bus, address, _axes = probe.sensor_from_config(DEVICE_TOML, sensor.place)
        assert (bus, address) == (sensor.bus, sensor.address)
    with pytest.raises(SystemExit, match="no sensor at place 'l_foot'"):
        probe.sensor_from_config(DEVICE_TOML, "l_foot")
