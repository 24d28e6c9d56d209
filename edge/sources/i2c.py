"""Live IMUs on I²C: one LSM6DSOX per place, polled together and aligned into chunks.

Every ``poll_s`` (device: 10 ms) the source drains each chip's FIFO (:mod:`forcecast.edge.sources.lsm6dsox`) and
emits the samples all chips have in common: ``n = min`` over the chips of the samples buffered, the
rest kept for the next poll. The chips run on their own oscillators, so one can drift ahead by a few
samples a minute; a chip that is more than ``max_skew_samples`` ahead of the slowest loses its oldest
extra samples, which keeps all chips aligned to within about one sample period. Row times are those
of the first working chip in canonical place order (see the driver for how they are made), and are
strictly increasing.

Problems are reported the way :mod:`forcecast.edge.sources.base` asks:

* a FIFO overrun (the host did not read in time) loses samples; they appear as a gap in ``time_s``
  (all chips are re-aligned at their newest samples);
* a chip that stops answering (I²C errors) or delivering (it reset, lost power) for
  ``missing_after_s`` is marked missing: its columns are NaN while the others go on, and the source
  re-initialises it every ``reopen_s`` until it works again;
* when no chip has delivered anything for ``error_timeout_s`` the source gives up with a
  :class:`~forcecast.edge.sources.base.SourceError` naming every chip and its last error.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from forcecast.edge.runtime.config import SensorConfig
from forcecast.edge.schema import PLACES, all_imu_columns
from forcecast.edge.sources.base import Chunk, FloatArray, SourceError
from forcecast.edge.sources.lsm6dsox import (
    ACC_RANGE_MPS2,
    GYR_RANGE_RADS,
    LSM6DSOX,
    NOMINAL_AXES,
    ODR_CODES,
    AxisMap,
    I2CBus,
    I2CTransferError,
    ImuBatch,
)

logger = logging.getLogger(__name__)

SUPPORTED_DRIVERS = ("lsm6dsox",)


def open_smbus(bus_number: int) -> I2CBus:
    """Open ``/dev/i2c-<bus_number>`` with smbus2 (imported here, so the module loads without it).

    Raises
    ------
    SourceError
        smbus2 is not installed.
    OSError
        The device file is missing or not accessible.
    """
    try:
        import smbus2
    except ImportError as exc:
        raise SourceError("reading IMUs over I2C needs smbus2: pip install 'forcecast[edge]'") from exc
    return smbus2.SMBus(bus_number)


@dataclass(frozen=True)
class SensorStats:
    """What happened to one sensor since the source was opened.

    Attributes
    ----------
    place, where
        Its place and ``bus N address 0xNN``.
    samples
        Samples delivered in chunks.
    overruns
        FIFO overruns (samples lost to a gap).
    resyncs
        Timeline re-anchors because the chip's clock drifted too far (not counting overruns).
    bus_errors
        Failed reads.
    reopens
        Successful re-initialisations after the chip went missing.
    skew_drops
        Samples dropped to keep the chip aligned with the others.
    unpaired_words, other_words, unknown_words
        FIFO words skipped by the decoder.
    missing
        The chip is currently missing (NaN columns).
    """

    place: str
    where: str
    samples: int
    overruns: int
    resyncs: int
    bus_errors: int
    reopens: int
    skew_drops: int
    unpaired_words: int
    other_words: int
    unknown_words: int
    missing: bool


@dataclass(eq=False)
class _Channel:
    """One sensor's chip, buffered samples and health."""

    place: str
    chip: LSM6DSOX
    time_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    values: FloatArray = field(default_factory=lambda: np.zeros((0, 6)))
    last_data_s: float = -math.inf
    last_reopen_s: float = -math.inf
    reopened_s: float = -math.inf
    last_problem: str = "no data yet"
    missing: bool = False
    joining: bool = False
    samples: int = 0
    bus_errors: int = 0
    reopens: int = 0
    skew_drops: int = 0

    def __len__(self) -> int:
        return int(self.time_s.size)

    def add(self, batch: ImuBatch) -> None:
        self.time_s = np.concatenate([self.time_s, batch.time_s])
        self.values = np.concatenate([self.values, np.hstack([batch.acc_mps2, batch.gyr_rads])])

    def drop(self, n: int) -> None:
        self.time_s, self.values = self.time_s[n:], self.values[n:]

    def clear(self) -> None:
        self.drop(len(self))


class I2CSource:
    """Stream the IMUs of ``sensors`` (one LSM6DSOX each) as :class:`~forcecast.edge.sources.base.Chunk` objects.

    Opening checks and configures every chip, so a wrong address or chip fails here, with the place,
    bus and address in the message.

    Parameters
    ----------
    sensors
        One per place (places and bus/address pairs unique).
    rate_hz
        Output data rate of every chip (12.5, 26, 52, 104, 208, 416 or 833 Hz).
    axes
        Place -> chip axis for nominal x, y, z (e.g. ``{"pelvis": ("-y", "x", "z")}``); places not
        given use their SensorConfig's ``axes`` if it has one, else the nominal frame.
    bus_factory
        Opens bus N (default :func:`open_smbus`); buses are opened once each and closed by :meth:`close`.
    clock
        Host clock (seconds, monotonic).
    sleep
        Waits between polls (default: a wait that :meth:`close` interrupts).
    poll_s
        Poll period.
    max_skew_samples
        How many samples one chip may be ahead of the slowest before its oldest are dropped.
    missing_after_s
        A chip with no samples for this long is missing (NaN columns); at least five sample periods.
    reopen_s
        How often a missing chip is re-initialised.
    error_timeout_s
        Give up when no chip has delivered for this long.
    resync_s
        Passed to each driver: re-anchor a chip's timeline when it is this far off the host clock.

    Attributes
    ----------
    columns, rate_hz, acc_range_mps2, gyr_range_rads
        As :class:`~forcecast.edge.sources.base.Source` requires.
    chips
        Place -> driver.
    """

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        *,
        rate_hz: float = 104.0,
        axes: Mapping[str, Sequence[str]] | None = None,
        bus_factory: Callable[[int], I2CBus] = open_smbus,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        poll_s: float = 0.02,
        max_skew_samples: int = 1,
        missing_after_s: float = 0.1,
        reopen_s: float = 1.0,
        error_timeout_s: float = 2.0,
        resync_s: float = 0.05,
    ) -> None:
        sensors = sorted(sensors, key=lambda s: PLACES.index(s.place))
        axes = dict(axes or {})
        _check(sensors, axes, rate_hz)
        self.rate_hz = float(rate_hz)
        self.columns = all_imu_columns(tuple(s.place for s in sensors))
        self.acc_range_mps2 = ACC_RANGE_MPS2
        self.gyr_range_rads = GYR_RANGE_RADS
        self.poll_s = poll_s
        self.max_skew_samples = max_skew_samples
        self.missing_after_s = max(missing_after_s, 5.0 / self.rate_hz)
        self.reopen_s = reopen_s
        self.error_timeout_s = error_timeout_s
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._lock = threading.Lock()
        self._closed = False
        self._streaming = False
        self._last_time_s = -math.inf
        self._realign = False
        self._buses: dict[int, I2CBus] = {}
        self._channels: list[_Channel] = []
        try:
            for sensor in sensors:
                bus = self._bus(bus_factory, sensor, sensors)
                # An explicit mapping wins; otherwise a SensorConfig that has an ``axes`` field supplies it.
                axis_map = AxisMap.parse(axes.get(sensor.place, getattr(sensor, "axes", None) or NOMINAL_AXES))
                chip = LSM6DSOX(
                    bus,
                    sensor.address,
                    bus_number=sensor.bus,
                    rate_hz=self.rate_hz,
                    axes=axis_map,
                    clock=clock,
                    resync_s=resync_s,
                )
                try:
                    chip.open()
                except SourceError as exc:
                    raise SourceError(f"sensor {sensor.place}: {exc}") from exc
                self._channels.append(_Channel(sensor.place, chip))
        except BaseException:
            self._close_buses()
            raise
        self.chips = {ch.place: ch.chip for ch in self._channels}

    def _bus(self, factory: Callable[[int], I2CBus], sensor: SensorConfig, sensors: Sequence[SensorConfig]) -> I2CBus:
        if sensor.bus not in self._buses:
            try:
                self._buses[sensor.bus] = factory(sensor.bus)
            except OSError as exc:
                places = ", ".join(s.place for s in sensors if s.bus == sensor.bus)
                raise SourceError(
                    f"sensor {places}: cannot open I2C bus {sensor.bus} (/dev/i2c-{sensor.bus}): {exc} "
                    "(is I2C enabled, e.g. with raspi-config, and the user in group i2c?)"
                ) from exc
        return self._buses[sensor.bus]

    # -- Source ------------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Poll the chips and yield aligned chunks until :meth:`close`.

        Raises
        ------
        SourceError
            No chip delivered data for ``error_timeout_s`` (the source is then closed).
        """
        if self._closed:
            return
        if self._streaming:
            raise SourceError("I2CSource.chunks() is already being iterated")
        self._streaming = True
        try:
            self._restart()
            next_poll = self._clock() + self.poll_s
            while True:
                delay = next_poll - self._clock()
                if delay > 0:
                    self._sleep(delay)
                if self._stop.is_set():
                    return
                next_poll = max(next_poll + self.poll_s, self._clock())
                chunk = self._poll()
                if chunk is not None:
                    yield chunk
        except SourceError:
            self.close()
            raise
        finally:
            self._streaming = False

    def close(self) -> None:
        """Stop :meth:`chunks`, power the chips down and close the buses."""
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for channel in self._channels:
                with contextlib.suppress(SourceError):  # an unplugged chip cannot be powered down
                    channel.chip.power_down()
            self._close_buses()

    def __enter__(self) -> I2CSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> tuple[SensorStats, ...]:
        """Per-sensor counters, in column order."""
        return tuple(
            SensorStats(
                place=ch.place,
                where=ch.chip.where,
                samples=ch.samples,
                overruns=ch.chip.overruns,
                resyncs=ch.chip.resyncs,
                bus_errors=ch.bus_errors,
                reopens=ch.reopens,
                skew_drops=ch.skew_drops,
                unpaired_words=ch.chip.decoder.counts.unpaired,
                other_words=ch.chip.decoder.counts.other,
                unknown_words=ch.chip.decoder.counts.unknown,
                missing=ch.missing,
            )
            for ch in self._channels
        )

    # -- internals ---------------------------------------------------------------------------------

    def _close_buses(self) -> None:
        for bus in self._buses.values():
            with contextlib.suppress(OSError):  # closing a broken bus: nothing to recover
                bus.close()
        self._buses.clear()

    def _restart(self) -> None:
        """Empty every FIFO so that streaming starts from now on all chips."""
        with self._lock:
            now = self._clock()
            for channel in self._channels:
                channel.clear()
                channel.last_data_s = now
                try:
                    channel.chip.start()
                except I2CTransferError as exc:
                    channel.bus_errors += 1
                    channel.last_problem = str(exc)

    def _read(self, channel: _Channel, now: float) -> ImuBatch | None:
        """One chip's new samples, or None; keeps its health up to date."""
        if channel.missing:
            if now - channel.last_reopen_s >= self.reopen_s:
                channel.last_reopen_s = now
                try:
                    channel.chip.open()
                except SourceError as exc:
                    channel.last_problem = str(exc)
                    return None
                channel.missing = False
                channel.joining = True  # its FIFO starts now: the others' buffered samples predate it
                channel.reopens += 1
                channel.reopened_s = now
                channel.clear()
                logger.warning("sensor %s (%s) is back after re-initialisation", channel.place, channel.chip.where)
            return None
        try:
            batch = channel.chip.read()
        except I2CTransferError as exc:
            channel.bus_errors += 1
            channel.last_problem = str(exc)
            batch = None
        if batch is not None and len(batch) > 0:
            channel.last_data_s = now
            if batch.overrun:
                logger.warning("sensor %s (%s): FIFO overrun, samples lost", channel.place, channel.chip.where)
            return batch
        if batch is not None:
            channel.last_problem = "FIFO empty (chip reset or lost power?)"
        if now - max(channel.last_data_s, channel.reopened_s) > self.missing_after_s:
            channel.missing = True
            channel.last_reopen_s = now
            channel.clear()
            logger.warning(
                "sensor %s (%s): no samples for %.2f s, its columns are NaN until it recovers: %s",
                channel.place,
                channel.chip.where,
                now - max(channel.last_data_s, channel.reopened_s),
                channel.last_problem,
            )
        return batch

    def _poll(self) -> Chunk | None:
        with self._lock:
            if self._closed:
                return None
            now = self._clock()
            for channel in self._channels:
                batch = self._read(channel, now)
                if batch is not None and len(batch) > 0:
                    channel.add(batch)
                    self._realign |= batch.overrun
            live = [ch for ch in self._channels if not ch.missing and not ch.joining]
            for channel in self._channels:
                channel.joining = False
            if not live:
                quiet_s = now - max(ch.last_data_s for ch in self._channels)
                if quiet_s > self.error_timeout_s:
                    problems = "; ".join(f"{ch.place} ({ch.chip.where}): {ch.last_problem}" for ch in self._channels)
                    raise SourceError(f"no IMU delivered data for {quiet_s:.1f} s: {problems}")
                return None
            n = min(len(ch) for ch in live)
            if n == 0:
                return None  # a chip is late or failing: keep everything until it delivers or goes missing
            allowed = 0 if self._realign else self.max_skew_samples
            self._realign = False
            for channel in live:
                excess = len(channel) - n - allowed
                if excess > 0:
                    channel.drop(excess)
                    channel.skew_drops += excess
            time_s = live[0].time_s[:n].copy()
            values = np.full((n, len(self.columns)), np.nan)
            for index, channel in enumerate(self._channels):
                if channel in live:
                    values[:, 6 * index : 6 * index + 6] = channel.values[:n]
                    channel.samples += n
                    channel.drop(n)
            fresh = time_s > self._last_time_s  # a change of reference chip may overlap a sample or two
            if not fresh.all():
                time_s, values = time_s[fresh], values[fresh]
                if time_s.size == 0:
                    return None
            self._last_time_s = float(time_s[-1])
            return Chunk(time_s, values, self.columns)


def _check(sensors: Sequence[SensorConfig], axes: Mapping[str, Sequence[str]], rate_hz: float) -> None:
    """Refuse configurations the source cannot serve, with what to change."""
    if not sensors:
        raise SourceError("I2CSource needs at least one sensor")
    places = [s.place for s in sensors]
    for sensor in sensors:
        if places.count(sensor.place) > 1:
            raise SourceError(f"sensor {sensor.place} is configured twice")
        if sensor.driver not in SUPPORTED_DRIVERS:
            raise SourceError(f"sensor {sensor.place}: driver {sensor.driver!r} is not one of {SUPPORTED_DRIVERS}")
        if [(s.bus, s.address) for s in sensors].count((sensor.bus, sensor.address)) > 1:
            raise SourceError(f"two sensors at bus {sensor.bus} address 0x{sensor.address:02X}")
    for place, spec in axes.items():
        if place not in places:
            raise SourceError(f"axes given for {place!r}, which has no sensor (sensors: {', '.join(places)})")
        try:
            AxisMap.parse(spec)
        except ValueError as exc:
            raise SourceError(f"sensor {place}: {exc}") from exc
    if float(rate_hz) not in ODR_CODES:
        raise SourceError(f"rate_hz {rate_hz:g} is not one of {', '.join(f'{r:g}' for r in ODR_CODES)}")
