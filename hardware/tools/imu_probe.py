"""Read one LSM6DSOX over I²C and print what it feels: the bench tool of ``hardware/bench.md``.

It uses the runtime's own driver (``forcecast.edge.sources.lsm6dsox``: same identity check, same ±16 g / ±2000 °/s
set-up, same scaling and axis mapping) but none of the pipeline, so it answers "is this sensor alive,
and which way do its axes point?" before anything else is involved. Run it with the runtime stopped.

Usage (on the Pi, in the runtime's venv)::

    python imu_probe.py --bus 1 --address 0x6a                 # chip axes
    python imu_probe.py --bus 1 --address 0x6a --axes z,y,-x   # mapped to the nominal frame
    python imu_probe.py --config /etc/forcecast/device.toml --place r_shank

Every ``--period`` seconds it prints the mean acceleration (m/s², gravity included), its magnitude and
the mean angular rate (rad/s) over the samples of that period; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from forcecast.edge.sources.base import SourceError
from forcecast.edge.sources.lsm6dsox import LSM6DSOX, NOMINAL_AXES, AxisMap


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", type=int, default=1, help="I2C bus number N of /dev/i2c-N (default 1)")
    parser.add_argument("--address", type=lambda s: int(s, 0), default=0x6A, help="7-bit address (default 0x6a)")
    parser.add_argument(
        "--axes",
        default=",".join(NOMINAL_AXES),
        help="chip axis for nominal x,y,z, e.g. z,y,-x (default x,y,z: print chip axes)",
    )
    parser.add_argument("--config", type=Path, help="read bus, address (and axes) of --place from device.toml")
    parser.add_argument("--place", help="sensor place in --config, e.g. r_shank")
    parser.add_argument("--period", type=float, default=0.5, help="seconds averaged per printed line (default 0.5)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default 0: until Ctrl-C)")
    args = parser.parse_args(argv)
    if (args.config is None) != (args.place is None):
        parser.error("--config and --place go together")
    return args


def sensor_from_config(path: Path, place: str) -> tuple[int, int, tuple[str, ...] | None]:
    """Bus, address and axis mapping (None if the config has none) of ``place`` in a device.toml."""
    from forcecast.edge.runtime.config import load_device_config

    config = load_device_config(path)
    for sensor in config.sensors:
        if sensor.place == place:
            axes = getattr(sensor, "axes", None)
            return sensor.bus, sensor.address, tuple(axes) if axes else None
    places = ", ".join(s.place for s in config.sensors)
    raise SystemExit(f"{path}: no sensor at place {place!r} (configured: {places})")


def format_line(acc: np.ndarray, gyr: np.ndarray, n: int) -> str:
    """One printed line: mean acceleration, its magnitude and mean angular rate."""
    a = " ".join(f"{v:+6.2f}" for v in acc)
    g = " ".join(f"{v:+6.3f}" for v in gyr)
    return f"acc {a} m/s^2  |acc| {np.linalg.norm(acc):5.2f}   gyr {g} rad/s   ({n} samples)"


def probe(
    bus: Any,
    bus_number: int,
    address: int,
    axes: Sequence[str],
    period_s: float,
    seconds: float,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Identify and configure the chip, then print averaged readings until ``seconds`` (0 = forever).

    Returns
    -------
    int
        Lines printed.
    """
    chip = LSM6DSOX(bus, address, bus_number=bus_number, rate_hz=104.0, axes=AxisMap.parse(axes))
    chip.check_identity()
    chip.configure()
    print(
        f"{chip.where}: LSM6DSOX (WHO_AM_I 0x6C), ±16 g, ±2000 dps, 104 Hz; axes nominal x,y,z = chip {','.join(axes)}",
        file=out,
    )
    lines = 0
    start = clock()
    try:
        while seconds <= 0 or clock() - start < seconds:
            acc, gyr = [], []
            period_end = clock() + period_s
            while clock() < period_end:
                a, g = chip.read_latest()
                acc.append(a)
                gyr.append(g)
                sleep(1.0 / chip.rate_hz)
            print(format_line(np.mean(acc, axis=0), np.mean(gyr, axis=0), len(acc)), file=out, flush=True)
            lines += 1
    finally:
        chip.power_down()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 1 with a one-line reason when the sensor cannot be read."""
    args = parse_args(argv)
    bus_number, address, axes = args.bus, args.address, tuple(args.axes.split(","))
    if args.config is not None:
        bus_number, address, configured = sensor_from_config(args.config, args.place)
        axes = configured or axes
    try:
        import smbus2
    except ImportError:
        print("imu_probe needs smbus2: pip install 'forcecast[edge]'", file=sys.stderr)
        return 1
    try:
        with smbus2.SMBus(bus_number) as bus:
            probe(bus, bus_number, address, axes, args.period, args.seconds)
    except (SourceError, OSError, ValueError) as exc:
        print(f"imu_probe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
