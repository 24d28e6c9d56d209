"""ST LSM6DSOX 6-axis IMU (accelerometer + gyroscope) on I²C, read through its FIFO.

The driver configures the chip at register level (±16 g, ±2000 °/s, one output data rate for both
sensors, FIFO in continuous mode batching both at that rate), drains the FIFO in bursts, pairs the
tagged gyroscope and accelerometer words into samples and returns them in format-v1 units (m/s²
including gravity, rad/s) in the nominal sensor frame (x anterior, y left, z up) after a per-sensor
axis mapping.

Register facts used (LSM6DSOX datasheet, DS12814): WHO_AM_I (0Fh) = 6Ch; CTRL1_XL (10h) ODR_XL[7:4],
FS_XL[3:2] (01 = ±16 g, 0.488 mg/LSB); CTRL2_G (11h) ODR_G[7:4], FS_G[3:2] (11 = ±2000 dps,
70 mdps/LSB); CTRL3_C (12h) BOOT bit 7, BDU bit 6, IF_INC bit 2, SW_RESET bit 0; CTRL9_XL (18h)
I3C_disable bit 1; FIFO_CTRL3 (09h) BDR_GY[7:4], BDR_XL[3:0]; FIFO_CTRL4 (0Ah) FIFO_MODE[2:0]
(110 = continuous); FIFO_STATUS1/2 (3Ah/3Bh) DIFF_FIFO[9:0] (unread words), FIFO_OVR_IA bit 6 and
FIFO_OVR_LATCHED bit 3 of FIFO_STATUS2; FIFO_DATA_OUT_TAG (78h) TAG_SENSOR[7:3] (01h gyroscope,
02h accelerometer), TAG_CNT[2:1] (time slot counter), TAG_PARITY bit 0, followed by X, Y, Z as
little-endian int16 in 79h–7Eh. With IF_INC set, a multi-byte read from 78h rolls over from 7Eh back
to 78h, each 7-byte word popping one FIFO entry, so one SMBus block read (at most 32 bytes) fetches
four words. The LSM6DSO shares the WHO_AM_I value and every register used here.

Timestamps
----------
The chip has no clock the host can read cheaply, and its output data rate is only nominal (a few
percent off). Sample ``k`` after the FIFO was (re)started at host time ``t0`` is stamped
``t0 + (k + 1) / rate``; every read brackets the FIFO status read with the host clock, which bounds
the newest sample's true time to ``[t_before − 2/rate, t_after]``. When the computed time leaves that
window the following timestamps are slewed towards it, by at most half a sample period per read
(so steps stay between 0.5 and 1.5 periods and time strictly increasing); if it is off by more than ``resync_s``
(50 ms) the timeline is re-anchored to the window, which shows up as a gap (or, if the chip
delivered fewer samples than its rate predicts, a step back) in time.

Overrun
-------
If the FIFO overflowed since the last read (continuous mode overwrites its oldest words), the words
in it are still the newest ones, but an unknown number of samples before them are lost. The batch is
flagged (:attr:`ImuBatch.overrun`), the overrun counted, and the timeline re-anchored so that the
newest sample sits at the read time: the lost samples appear as a gap in ``time_s`` (a dropout for
the runtime), never as invented values.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.edge.sources.base import FloatArray, SourceError

IntArray = NDArray[np.int16]

# Registers (datasheet section 8, "Register mapping").
FIFO_CTRL1: Final = 0x07
FIFO_CTRL2: Final = 0x08
FIFO_CTRL3: Final = 0x09
FIFO_CTRL4: Final = 0x0A
WHO_AM_I: Final = 0x0F
CTRL1_XL: Final = 0x10
CTRL2_G: Final = 0x11
CTRL3_C: Final = 0x12
CTRL9_XL: Final = 0x18
STATUS_REG: Final = 0x1E
OUTX_L_G: Final = 0x22
OUTX_L_A: Final = 0x28
FIFO_STATUS1: Final = 0x3A
FIFO_STATUS2: Final = 0x3B
FIFO_DATA_OUT_TAG: Final = 0x78
FIFO_DATA_OUT_Z_H: Final = 0x7E

REGISTER_NAMES: Final = {
    FIFO_CTRL1: "FIFO_CTRL1",
    FIFO_CTRL2: "FIFO_CTRL2",
    FIFO_CTRL3: "FIFO_CTRL3",
    FIFO_CTRL4: "FIFO_CTRL4",
    WHO_AM_I: "WHO_AM_I",
    CTRL1_XL: "CTRL1_XL",
    CTRL2_G: "CTRL2_G",
    CTRL3_C: "CTRL3_C",
    CTRL9_XL: "CTRL9_XL",
    STATUS_REG: "STATUS_REG",
    OUTX_L_G: "OUTX_L_G",
    OUTX_L_A: "OUTX_L_A",
    FIFO_STATUS1: "FIFO_STATUS1",
    FIFO_STATUS2: "FIFO_STATUS2",
    FIFO_DATA_OUT_TAG: "FIFO_DATA_OUT_TAG",
}

WHO_AM_I_VALUE: Final = 0x6C

# Bits.
CTRL3_C_BOOT: Final = 0x80
CTRL3_C_BDU: Final = 0x40
CTRL3_C_IF_INC: Final = 0x04
CTRL3_C_SW_RESET: Final = 0x01
CTRL9_XL_RESET: Final = 0xE0  # DEN_X | DEN_Y | DEN_Z, the reset value
CTRL9_XL_I3C_DISABLE: Final = 0x02
FS_XL_16G: Final = 0b01
FS_G_2000DPS: Final = 0b11
FIFO_MODE_BYPASS: Final = 0b000
FIFO_MODE_CONTINUOUS: Final = 0b110
FIFO_STATUS2_OVR_IA: Final = 0x40
FIFO_STATUS2_OVR_LATCHED: Final = 0x08
FIFO_STATUS2_DIFF_HIGH: Final = 0x03

TAG_GYRO_NC: Final = 0x01
TAG_ACC_NC: Final = 0x02
TAG_LAST_KNOWN: Final = 0x19  # sensor-hub NACK; tags above it are undefined
WORD_BYTES: Final = 7
SMBUS_BLOCK_MAX: Final = 32
WORDS_PER_READ: Final = SMBUS_BLOCK_MAX // WORD_BYTES  # 4 words = 28 bytes per transaction
MAX_PENDING_WORDS: Final = 8

# ODR_XL / ODR_G / BDR_XL / BDR_GY codes (high-performance mode) that share a value in all four fields.
ODR_CODES: Final = {
    12.5: 0b0001,
    26.0: 0b0010,
    52.0: 0b0011,
    104.0: 0b0100,
    208.0: 0b0101,
    416.0: 0b0110,
    833.0: 0b0111,
}

ACC_LSB_G: Final = 0.488e-3  # ±16 g
GYR_LSB_DPS: Final = 70e-3  # ±2000 dps
ACC_LSB_MPS2: Final = ACC_LSB_G * GRAVITY_MPS2
GYR_LSB_RADS: Final = math.radians(GYR_LSB_DPS)
ACC_RANGE_MPS2: Final = 16.0 * GRAVITY_MPS2
GYR_RANGE_RADS: Final = math.radians(2000.0)

RESET_POLLS: Final = 20
RESET_POLL_S: Final = 0.001

AxisSpec = tuple[str, str, str]
NOMINAL_AXES: Final[AxisSpec] = ("x", "y", "z")


class I2CBus(Protocol):
    """The part of :class:`smbus2.SMBus` the driver uses (a fake bus implements the same)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one register."""
        ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Write one register."""
        ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        """Read ``length`` (≤ 32) bytes starting at ``register``."""
        ...

    def close(self) -> None:
        """Release the bus."""
        ...


class I2CTransferError(SourceError):
    """A bus transfer to a chip that was already working failed (loose cable, noise); may be transient."""

    reason = "i2c_transfer_failed"


def where(bus_number: int | str, address: int) -> str:
    """Name a chip in messages: ``bus 1 address 0x6A``."""
    return f"bus {bus_number} address 0x{address:02X}"


@dataclass(frozen=True)
class AxisMap:
    """Which chip axis (and sign) becomes each nominal axis.

    Attributes
    ----------
    spec
        Chip axis for nominal x, y, z, e.g. ``("-y", "x", "z")``: nominal x = −chip y, nominal y =
        chip x, nominal z = chip z.
    matrix
        Shape ``(3, 3)``: ``nominal = matrix @ chip``.
    """

    spec: AxisSpec
    matrix: FloatArray = field(repr=False, compare=False)

    @classmethod
    def parse(cls, spec: Sequence[str]) -> AxisMap:
        """Check and build a mapping from three strings like ``("x", "-y", "-z")``.

        Raises
        ------
        ValueError
            If the strings do not name each chip axis once, or the mapping is a mirror image (both
            the chip's frame and the nominal frame are right-handed, so only rotations are possible).
        """
        spec = tuple(spec)
        example = "e.g. ('x', 'y', 'z') or ('-y', 'x', 'z')"
        if len(spec) != 3 or not all(isinstance(s, str) for s in spec):
            raise ValueError(f"axes {spec!r}: need three strings naming the chip axis for nominal x, y, z, {example}")
        matrix = np.zeros((3, 3))
        for row, text in enumerate(spec):
            name = text.strip().lower()
            sign = -1.0 if name.startswith("-") else 1.0
            name = name.lstrip("+-")
            if name not in NOMINAL_AXES:
                raise ValueError(f"axes {spec!r}: {text!r} is not x, y or z with an optional sign, {example}")
            matrix[row, NOMINAL_AXES.index(name)] = sign
        if sorted(np.flatnonzero(matrix) % 3) != [0, 1, 2]:
            raise ValueError(f"axes {spec!r}: each chip axis x, y, z must appear exactly once, {example}")
        if np.linalg.det(matrix) < 0:
            raise ValueError(
                f"axes {spec!r} is a mirror image (determinant −1); chip and nominal frames are both right-handed, "
                "so flip the sign of one more axis (or swap two axes)"
            )
        return cls(spec=(spec[0], spec[1], spec[2]), matrix=matrix)


IDENTITY_AXES: Final = AxisMap.parse(NOMINAL_AXES)


@dataclass
class DecoderCounts:
    """What the FIFO decoder has seen since it was made.

    Attributes
    ----------
    words
        Complete 7-byte words decoded.
    gyro, acc
        Gyroscope and accelerometer words among them.
    other
        Words with a defined tag this driver does not use (temperature, timestamp, ...), skipped.
    unknown
        Words with an undefined tag (0 or above 19h), skipped.
    unpaired
        Gyroscope or accelerometer words dropped because their partner of the same time slot was lost.
    stray_bytes
        Trailing bytes that did not make a whole word.
    """

    words: int = 0
    gyro: int = 0
    acc: int = 0
    other: int = 0
    unknown: int = 0
    unpaired: int = 0
    stray_bytes: int = 0


class FifoDecoder:
    """Turn raw FIFO bytes into paired (accelerometer, gyroscope) raw samples.

    Words of the same time slot carry the same 2-bit ``TAG_CNT``; a word whose partner is missing (an
    overrun overwrote it) is dropped and counted, so the pairing re-locks by itself. Words not yet
    paired are kept for the next :meth:`feed`.

    Parameters
    ----------
    use_tag_counter
        Pair by ``TAG_CNT``; if False, pair strictly in order.
    """

    def __init__(self, use_tag_counter: bool = True) -> None:
        self.use_tag_counter = use_tag_counter
        self.counts = DecoderCounts()
        self._gyro: deque[tuple[int, tuple[int, int, int]]] = deque()
        self._acc: deque[tuple[int, tuple[int, int, int]]] = deque()

    def reset(self) -> None:
        """Forget words waiting for a partner (after an overrun or a FIFO restart)."""
        self.counts.unpaired += len(self._gyro) + len(self._acc)
        self._gyro.clear()
        self._acc.clear()

    @property
    def pending(self) -> int:
        """Words waiting for their partner."""
        return len(self._gyro) + len(self._acc)

    def feed(self, raw: bytes | bytearray) -> tuple[IntArray, IntArray]:
        """Decode words and return the newly completed samples.

        Parameters
        ----------
        raw
            FIFO bytes, a whole number of 7-byte words (trailing bytes are counted and ignored).

        Returns
        -------
        acc, gyr
            Shape ``(n, 3)`` int16: raw chip-axis counts of the completed samples, oldest first.
        """
        counts = self.counts
        whole = len(raw) - len(raw) % WORD_BYTES
        counts.stray_bytes += len(raw) - whole
        words = np.frombuffer(bytes(raw[:whole]), dtype=np.uint8).reshape(-1, WORD_BYTES)
        values = words[:, 1:].copy().view("<i2").astype(np.int16)
        counts.words += len(words)
        for header, xyz in zip(words[:, 0].tolist(), values.tolist(), strict=True):
            tag, slot = header >> 3, (header >> 1) & 0x3
            if tag == TAG_GYRO_NC:
                counts.gyro += 1
                self._gyro.append((slot, tuple(xyz)))
            elif tag == TAG_ACC_NC:
                counts.acc += 1
                self._acc.append((slot, tuple(xyz)))
            elif 0 < tag <= TAG_LAST_KNOWN:
                counts.other += 1
            else:
                counts.unknown += 1
        acc: list[tuple[int, int, int]] = []
        gyr: list[tuple[int, int, int]] = []
        while self._gyro and self._acc:
            lag = (self._gyro[0][0] - self._acc[0][0]) % 4 if self.use_tag_counter else 0
            if lag == 0:
                gyr.append(self._gyro.popleft()[1])
                acc.append(self._acc.popleft()[1])
                continue
            # The word from the older slot lost its partner: drop it (both if the order is ambiguous).
            if lag in (1, 2):
                self._acc.popleft()
                counts.unpaired += 1
            if lag in (2, 3):
                self._gyro.popleft()
                counts.unpaired += 1
        for waiting in (self._gyro, self._acc):  # a sensor whose partner never comes must not pile up
            while len(waiting) > MAX_PENDING_WORDS:
                waiting.popleft()
                counts.unpaired += 1
        return np.array(acc, dtype=np.int16).reshape(-1, 3), np.array(gyr, dtype=np.int16).reshape(-1, 3)


@dataclass(frozen=True)
class ImuBatch:
    """Samples drained from one chip's FIFO.

    Attributes
    ----------
    time_s
        Shape ``(n,)``: sample times on the host clock (see the module notes).
    acc_mps2, gyr_rads
        Shape ``(n, 3)``: acceleration including gravity and angular rate, nominal frame.
    overrun
        The FIFO overflowed before this read: samples before this batch were lost (a gap in time).
    """

    time_s: FloatArray
    acc_mps2: FloatArray
    gyr_rads: FloatArray
    overrun: bool = False

    def __len__(self) -> int:
        return int(self.time_s.size)


class _Timeline:
    """Nominal-rate timestamps kept within what the host clock allows (see the module notes)."""

    def __init__(self, rate_hz: float, resync_s: float) -> None:
        self.period_s = 1.0 / rate_hz
        self.resync_s = resync_s
        self.resyncs = 0
        self._next_s = math.nan

    def start(self, t0: float) -> None:
        self._next_s = t0 + self.period_s

    def stamp(self, n: int, t_before: float, t_after: float, resync: bool) -> FloatArray:
        period = self.period_s
        if n == 0:
            return np.zeros(0)
        newest = self._next_s + (n - 1) * period
        low, high = t_before - 2.0 * period, t_after
        error = high - newest if newest > high else low - newest if newest < low else 0.0
        forced = resync or math.isnan(newest)
        if forced or abs(error) > self.resync_s:
            self.resyncs += not forced
            first = (t_before - period + t_after) / 2.0 - (n - 1) * period
        else:
            first = self._next_s + min(max(error, -0.5 * period), 0.5 * period)
        times: FloatArray = first + np.arange(n, dtype=np.float64) * period
        self._next_s = float(times[-1]) + period
        return times


class LSM6DSOX:
    """One LSM6DSOX on an I²C bus.

    Parameters
    ----------
    bus
        An open bus (:class:`smbus2.SMBus` or anything with the same methods); the caller owns it.
    address
        7-bit address: 0x6A (SA0 low) or 0x6B (SA0 high).
    bus_number
        Only for messages (``bus 1 address 0x6A``).
    rate_hz
        Output data rate of both sensors and of FIFO batching: one of :data:`ODR_CODES`.
    axes
        Chip axis for nominal x, y, z (see :class:`AxisMap`); default: the chip is mounted in the nominal frame.
    clock
        Host clock for timestamps (seconds, monotonic).
    resync_s
        Re-anchor the timeline when it is off the host clock by more than this.
    use_tag_counter
        Pair gyroscope and accelerometer words by their FIFO time-slot counter (see :class:`FifoDecoder`).

    Attributes
    ----------
    overruns
        FIFO overruns seen.
    decoder
        The FIFO decoder, whose ``counts`` say how many words of each kind were read and skipped.
    """

    def __init__(
        self,
        bus: I2CBus,
        address: int = 0x6A,
        *,
        bus_number: int | str = "?",
        rate_hz: float = 104.0,
        axes: Sequence[str] | AxisMap = NOMINAL_AXES,
        clock: Callable[[], float] = time.monotonic,
        resync_s: float = 0.05,
        use_tag_counter: bool = True,
    ) -> None:
        if float(rate_hz) not in ODR_CODES:
            rates = ", ".join(f"{r:g}" for r in ODR_CODES)
            raise ValueError(f"{where(bus_number, address)}: rate_hz {rate_hz:g} is not one of {rates}")
        self.bus = bus
        self.address = address
        self.bus_number = bus_number
        self.rate_hz = float(rate_hz)
        self.axes = axes if isinstance(axes, AxisMap) else AxisMap.parse(axes)
        self.clock = clock
        self.overruns = 0
        self.decoder = FifoDecoder(use_tag_counter)
        self._timeline = _Timeline(self.rate_hz, resync_s)
        self._acc_scale = self.axes.matrix.T * ACC_LSB_MPS2
        self._gyr_scale = self.axes.matrix.T * GYR_LSB_RADS

    @property
    def where(self) -> str:
        """``bus N address 0xNN``, for messages."""
        return where(self.bus_number, self.address)

    @property
    def resyncs(self) -> int:
        """Times the timeline was re-anchored because it drifted too far (starts and overruns excluded)."""
        return self._timeline.resyncs

    # -- bus access --------------------------------------------------------------------------------

    def _name(self, register: int) -> str:
        return f"{REGISTER_NAMES.get(register, 'register')} (0x{register:02X})"

    def _read(self, register: int, length: int = 1) -> list[int]:
        try:
            if length == 1:
                return [self.bus.read_byte_data(self.address, register)]
            return list(self.bus.read_i2c_block_data(self.address, register, length))
        except OSError as exc:
            raise I2CTransferError(f"{self.where}: reading {self._name(register)} failed: {exc}") from exc

    def _write(self, register: int, value: int) -> None:
        try:
            self.bus.write_byte_data(self.address, register, value)
        except OSError as exc:
            raise I2CTransferError(
                f"{self.where}: writing 0x{value:02X} to {self._name(register)} failed: {exc}"
            ) from exc

    # -- set-up ------------------------------------------------------------------------------------

    def open(self) -> LSM6DSOX:
        """Check the chip, configure it and start the FIFO.

        Returns
        -------
        LSM6DSOX
            ``self``.

        Raises
        ------
        SourceError
            Nothing answers at the address, another chip answers, or the configuration does not stick.
        """
        self.check_identity()
        self.configure()
        self.start()
        return self

    def check_identity(self) -> None:
        """Read WHO_AM_I and refuse anything but an LSM6DSOX (or the register-compatible LSM6DSO).

        Raises
        ------
        SourceError
            Nothing answers (with hints for the wiring) or WHO_AM_I is wrong.
        """
        try:
            value = self.bus.read_byte_data(self.address, WHO_AM_I)
        except OSError as exc:
            raise SourceError(
                f"no device at {self.where} (check wiring, address pin SA0, i2cdetect -y {self.bus_number}): {exc}"
            ) from exc
        if value != WHO_AM_I_VALUE:
            raise SourceError(
                f"{self.where}: WHO_AM_I is 0x{value:02X}, expected 0x{WHO_AM_I_VALUE:02X} (LSM6DSOX); "
                "is another chip at this address?"
            )

    def configure(self) -> None:
        """Software-reset the chip and set ranges, rate and FIFO batching (FIFO left in bypass).

        Raises
        ------
        SourceError
            The reset does not finish or a register does not read back what was written.
        """
        self._write(CTRL2_G, 0x00)  # gyroscope off before a software reset (application note)
        self._write(CTRL3_C, CTRL3_C_SW_RESET)
        for _ in range(RESET_POLLS):
            if not self._read(CTRL3_C)[0] & CTRL3_C_SW_RESET:
                break
            time.sleep(RESET_POLL_S)
        else:
            raise SourceError(f"{self.where}: software reset did not finish (CTRL3_C (0x12) still has SW_RESET set)")
        code = ODR_CODES[self.rate_hz]
        settings = (
            (CTRL3_C, CTRL3_C_BDU | CTRL3_C_IF_INC),
            (CTRL9_XL, CTRL9_XL_RESET | CTRL9_XL_I3C_DISABLE),
            (FIFO_CTRL4, FIFO_MODE_BYPASS),
            (FIFO_CTRL1, 0x00),  # no watermark: the host polls
            (FIFO_CTRL2, 0x00),  # no compression, no stop-on-watermark
            (FIFO_CTRL3, code << 4 | code),  # BDR_GY | BDR_XL = ODR
            (CTRL1_XL, code << 4 | FS_XL_16G << 2),
            (CTRL2_G, code << 4 | FS_G_2000DPS << 2),
        )
        for register, value in settings:
            self._write(register, value)
        for register, value in settings:
            got = self._read(register)[0]
            if got != value:
                raise SourceError(
                    f"{self.where}: {self._name(register)} reads back 0x{got:02X} after writing 0x{value:02X}"
                )

    def start(self) -> None:
        """(Re)start the FIFO empty in continuous mode; timestamps count from now."""
        self._write(FIFO_CTRL4, FIFO_MODE_BYPASS)  # bypass empties the FIFO
        self._write(FIFO_CTRL4, FIFO_MODE_CONTINUOUS)
        self._timeline.start(self.clock())
        self.decoder.reset()

    def power_down(self) -> None:
        """Stop both sensors and the FIFO (the chip then draws a few µA)."""
        self._write(FIFO_CTRL4, FIFO_MODE_BYPASS)
        self._write(CTRL1_XL, 0x00)
        self._write(CTRL2_G, 0x00)

    # -- data --------------------------------------------------------------------------------------

    def read(self) -> ImuBatch:
        """Drain the FIFO.

        Returns
        -------
        ImuBatch
            The complete samples read (possibly none), scaled and mapped to the nominal frame.

        Raises
        ------
        I2CTransferError
            A transfer failed; words already read are lost, which the timeline turns into a small gap.
        """
        t_before = self.clock()
        status = self._read(FIFO_STATUS1, 2)
        t_after = self.clock()
        level = status[0] | (status[1] & FIFO_STATUS2_DIFF_HIGH) << 8
        overrun = bool(status[1] & (FIFO_STATUS2_OVR_IA | FIFO_STATUS2_OVR_LATCHED))
        if overrun:
            self.overruns += 1
            self.decoder.reset()
        raw = bytearray()
        while level > 0:
            words = min(level, WORDS_PER_READ)
            raw += bytes(self._read(FIFO_DATA_OUT_TAG, words * WORD_BYTES))
            level -= words
        acc, gyr = self.decoder.feed(raw)
        times = self._timeline.stamp(len(acc), t_before, t_after, resync=overrun)
        return ImuBatch(times, acc @ self._acc_scale, gyr @ self._gyr_scale, overrun)

    def read_latest(self) -> tuple[FloatArray, FloatArray]:
        """Read the output registers directly (the newest sample, bypassing the FIFO).

        Returns
        -------
        acc_mps2, gyr_rads
            Shape ``(3,)`` each, nominal frame.
        """
        raw = np.frombuffer(bytes(self._read(OUTX_L_G, 12)), dtype="<i2").astype(np.float64)
        return raw[3:] @ self._acc_scale, raw[:3] @ self._gyr_scale
