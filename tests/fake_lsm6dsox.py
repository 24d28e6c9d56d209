"""A register-level fake of the ST LSM6DSOX and of an smbus2 bus, for testing the driver without hardware.

The fake knows nothing about the driver: it holds a 128-byte register file with the datasheet reset
values, auto-increments the address in multi-byte reads only when CTRL3_C.IF_INC is set (rolling
over from FIFO_DATA_OUT_Z_H 7Eh back to FIFO_DATA_OUT_TAG 78h, each tag read popping one FIFO word),
performs SW_RESET (the bit reads back set once, then clears), and samples a motion signal at the
configured output data rate as a :class:`FakeClock` is advanced by the test. Samples reach the FIFO
only when FIFO_MODE is continuous (or FIFO) and the batch data rates are set, encoded with the
configured full-scale sensitivity and saturated to int16; a full continuous FIFO overwrites its
oldest word and latches the overrun flags.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

REGISTER_COUNT = 128
WHO_AM_I = 0x0F
CTRL1_XL, CTRL2_G, CTRL3_C = 0x10, 0x11, 0x12
FIFO_CTRL3, FIFO_CTRL4 = 0x09, 0x0A
STATUS_REG = 0x1E
OUTX_L_G, OUTX_L_A = 0x22, 0x28
FIFO_STATUS1, FIFO_STATUS2 = 0x3A, 0x3B
FIFO_DATA_OUT_TAG, FIFO_DATA_OUT_Z_H = 0x78, 0x7E

# Non-zero reset values (datasheet register map); everything else resets to 0.
RESET_VALUES = {0x02: 0x3F, WHO_AM_I: 0x6C, CTRL3_C: 0x04, 0x18: 0xE0}
READ_ONLY = {WHO_AM_I, 0x1A, 0x1B, 0x1C, 0x1D, STATUS_REG, *range(0x20, 0x2E), *range(0x35, 0x44), *range(0x78, 0x7F)}

ODR_HZ = {0x1: 12.5, 0x2: 26.0, 0x3: 52.0, 0x4: 104.0, 0x5: 208.0, 0x6: 416.0, 0x7: 833.0}
ACC_MG_PER_LSB = {0b00: 0.061, 0b10: 0.122, 0b11: 0.244, 0b01: 0.488}
GYR_MDPS_PER_LSB = {0b00: 8.75, 0b01: 17.50, 0b10: 35.0, 0b11: 70.0}
GYR_125_MDPS_PER_LSB = 4.375
TAG_GYRO, TAG_ACC = 0x01, 0x02
MODE_BYPASS, MODE_FIFO, MODE_CONTINUOUS = 0b000, 0b001, 0b110

Motion = Callable[[float], tuple[ArrayLike, ArrayLike]]
"""``t -> (acc_g, gyr_dps)``: what the chip feels at time ``t``, chip axes, in g and °/s."""


class FakeClock:
    """A clock the test moves; callable like :func:`time.monotonic`."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now = start_s

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    sleep = advance


def standing(t: float) -> tuple[ArrayLike, ArrayLike]:
    """Still, chip z up: 1 g on +z, no rotation."""
    return (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)


def swinging(t: float) -> tuple[ArrayLike, ArrayLike]:
    """Gravity on +z plus a 1.3 Hz swing on every axis (distinct amplitudes and phases)."""
    w = 2 * math.pi * 1.3
    acc = (0.4 * math.sin(w * t), -0.25 * math.cos(w * t), 1.0 + 0.6 * math.sin(w * t + 0.5))
    gyr = (120.0 * math.cos(w * t), -300.0 * math.sin(w * t), 45.0 * math.sin(2 * w * t))
    return acc, gyr


def encode(values: ArrayLike, lsb: float) -> bytes:
    """Three values as little-endian int16 counts of ``lsb``, saturated like the chip's output."""
    counts = np.clip(np.rint(np.asarray(values, dtype=float) / lsb), -32768, 32767).astype("<i2")
    return counts.tobytes()


class FakeLSM6DSOX:
    """The chip, as seen through its registers.

    Parameters
    ----------
    clock
        Time source; samples are produced lazily up to ``clock()`` whenever the chip is accessed.
    motion
        What the chip measures (chip axes, g and °/s).
    who_am_i
        WHO_AM_I value (0x6C for the real part; change it to fake another chip).
    fifo_capacity
        FIFO size in words (the real part: 3 KB of data = 512 words).
    odr_scale
        Actual / nominal output data rate (the real oscillator is a few percent off).
    gyro_first
        Order of the two words of one time slot in the FIFO.

    Attributes
    ----------
    connected
        False makes the bus answer NACK (``OSError`` 121), as an unplugged chip would.
    samples
        Time of every sample produced so far (FIFO or not).
    """

    def __init__(
        self,
        clock: FakeClock,
        motion: Motion = standing,
        *,
        who_am_i: int = 0x6C,
        fifo_capacity: int = 512,
        odr_scale: float = 1.0,
        gyro_first: bool = True,
    ) -> None:
        self.clock = clock
        self.motion = motion
        self.who_am_i = who_am_i
        self.fifo_capacity = fifo_capacity
        self.odr_scale = odr_scale
        self.gyro_first = gyro_first
        self.connected = True
        self.samples: list[float] = []
        self.batched_times: list[float] = []
        self.power_cycle()

    # -- state -------------------------------------------------------------------------------------

    def power_cycle(self) -> None:
        """Lose power and come back with reset values and an empty FIFO."""
        self.regs = bytearray(REGISTER_COUNT)
        self._load_reset_values()
        self._reset_pending = False
        self.fifo: deque[bytes] = deque()
        self._latch = bytes(7)
        self._overrun_latched = False
        self._overwritten = False
        self._slot = 0
        self._grid: tuple[float, float] | None = None  # (origin, period) of the sample ticks
        self._tick = 0

    def _load_reset_values(self) -> None:
        self.regs[:] = bytes(REGISTER_COUNT)
        for register, value in RESET_VALUES.items():
            self.regs[register] = value
        self.regs[WHO_AM_I] = self.who_am_i

    @property
    def fifo_mode(self) -> int:
        return self.regs[FIFO_CTRL4] & 0x07

    @property
    def if_inc(self) -> bool:
        return bool(self.regs[CTRL3_C] & 0x04)

    def _odr_codes(self) -> tuple[int, int]:
        return self.regs[CTRL1_XL] >> 4, self.regs[CTRL2_G] >> 4

    def _active_code(self) -> int:
        acc, gyr = self._odr_codes()
        if acc and gyr and acc != gyr:
            raise NotImplementedError("fake LSM6DSOX: accelerometer and gyroscope ODRs must be equal when both run")
        code = acc or gyr
        if code and code not in ODR_HZ:
            raise NotImplementedError(f"fake LSM6DSOX: ODR code {code:#x} (low-power rates) not modelled")
        return code

    def _retime(self) -> None:
        """Restart the sample grid when the output data rate changes."""
        self._advance()
        code = self._active_code()
        period = 1.0 / (ODR_HZ[code] * self.odr_scale) if code else None
        if period is None:
            self._grid = None
        elif self._grid is None or not math.isclose(self._grid[1], period):
            self._grid, self._tick = (self.clock(), period), 0

    def _advance(self) -> None:
        """Produce every sample due up to now."""
        if self._grid is None:
            return
        origin, period = self._grid
        now = self.clock()
        while origin + (self._tick + 1) * period <= now:
            self._tick += 1
            self._sample(origin + self._tick * period)

    def _sample(self, t: float) -> None:
        acc_g, gyr_dps = self.motion(t)
        acc_code, gyr_code = self._odr_codes()
        acc_lsb = ACC_MG_PER_LSB[(self.regs[CTRL1_XL] >> 2) & 0x3] * 1e-3
        gyr_ctrl = self.regs[CTRL2_G]
        gyr_lsb = (GYR_125_MDPS_PER_LSB if gyr_ctrl & 0x02 else GYR_MDPS_PER_LSB[(gyr_ctrl >> 2) & 0x3]) * 1e-3
        words: list[tuple[int, bytes]] = []
        self.samples.append(t)
        if gyr_code:
            data = encode(gyr_dps, gyr_lsb)
            self.regs[OUTX_L_G : OUTX_L_G + 6] = data
            self.regs[STATUS_REG] |= 0x02
            words.append((TAG_GYRO, data))
        if acc_code:
            data = encode(acc_g, acc_lsb)
            self.regs[OUTX_L_A : OUTX_L_A + 6] = data
            self.regs[STATUS_REG] |= 0x01
            words.append((TAG_ACC, data))
        if self.fifo_mode not in (MODE_FIFO, MODE_CONTINUOUS):
            if self.fifo_mode != MODE_BYPASS:
                raise NotImplementedError(f"fake LSM6DSOX: FIFO_MODE {self.fifo_mode:03b} not modelled")
            return
        bdr_gy, bdr_xl = self.regs[FIFO_CTRL3] >> 4, self.regs[FIFO_CTRL3] & 0x0F
        batch = []
        for tag, data in words if self.gyro_first else words[::-1]:
            bdr, code = (bdr_gy, gyr_code) if tag == TAG_GYRO else (bdr_xl, acc_code)
            if not bdr:
                continue
            if bdr != code:
                raise NotImplementedError("fake LSM6DSOX: batch data rate must equal the ODR")
            batch.append((tag, data))
        if not batch:
            return
        self.batched_times.append(t)
        for tag, data in batch:
            header = tag << 3 | (self._slot & 0x3) << 1
            header |= bin(header).count("1") & 1  # TAG_PARITY: make the byte's parity even
            self._push(bytes([header]) + data)
        self._slot += 1

    def _push(self, word: bytes) -> None:
        if len(self.fifo) >= self.fifo_capacity:
            if self.fifo_mode == MODE_FIFO:
                return  # FIFO mode stops when full
            self.fifo.popleft()
            self._overrun_latched = True
            self._overwritten = True
        self.fifo.append(word)

    # -- register access ---------------------------------------------------------------------------

    def read_register(self, register: int) -> int:
        """One register read, with the chip's side effects."""
        self._advance()
        if register == FIFO_DATA_OUT_TAG:
            if self.fifo:
                self._latch = self.fifo.popleft()
                self._overwritten = False
            else:
                self._latch = bytes(7)
            return self._latch[0]
        if FIFO_DATA_OUT_TAG < register <= FIFO_DATA_OUT_Z_H:
            return self._latch[register - FIFO_DATA_OUT_TAG]
        if register == FIFO_STATUS1:
            return len(self.fifo) & 0xFF
        if register == FIFO_STATUS2:
            full = len(self.fifo) >= self.fifo_capacity
            value = (len(self.fifo) >> 8) & 0x03
            value |= 0x08 * self._overrun_latched | 0x20 * full | 0x40 * (full and self._overwritten)
            self._overrun_latched = False  # FIFO_OVR_LATCHED clears when read
            return value
        if register == CTRL3_C and self._reset_pending:
            self._reset_pending = False
            return self.regs[CTRL3_C] | 0x01
        if OUTX_L_G <= register < OUTX_L_G + 6:
            self.regs[STATUS_REG] &= ~0x02
        elif OUTX_L_A <= register < OUTX_L_A + 6:
            self.regs[STATUS_REG] &= ~0x01
        return self.regs[register]

    def write_register(self, register: int, value: int) -> None:
        """One register write, with the chip's side effects."""
        if not 0 <= value <= 0xFF:
            raise ValueError(f"fake LSM6DSOX: byte value {value} out of range")
        self._advance()
        if register in READ_ONLY:
            return
        if register == CTRL3_C and value & 0x01:
            self._load_reset_values()
            self.fifo.clear()
            self._overrun_latched = self._overwritten = False
            self._grid = None
            self._reset_pending = True
            return
        old_mode = self.fifo_mode
        self.regs[register] = value & 0x7F if register == CTRL3_C else value  # BOOT bit self-clears
        if register in (CTRL1_XL, CTRL2_G):
            self._retime()
        if register == FIFO_CTRL4 and self.fifo_mode == MODE_BYPASS and old_mode != MODE_BYPASS:
            self.fifo.clear()  # bypass mode empties the FIFO
            self._overrun_latched = self._overwritten = False

    def read_block(self, register: int, length: int) -> list[int]:
        """A multi-byte read: auto-increment only with IF_INC, 7Eh rolls over to 78h."""
        out = []
        for _ in range(length):
            out.append(self.read_register(register))
            if self.if_inc:
                register = FIFO_DATA_OUT_TAG if register == FIFO_DATA_OUT_Z_H else (register + 1) % REGISTER_COUNT
        return out


class FakeBus:
    """The smbus2 methods the driver uses, routed to fake chips by address.

    Parameters
    ----------
    chips
        Address -> chip.
    bus_number
        For messages.

    Attributes
    ----------
    transfers
        Transactions so far (reads and writes).
    closed
        :meth:`close` was called.
    """

    def __init__(self, chips: Mapping[int, FakeLSM6DSOX] | None = None, bus_number: int = 1) -> None:
        self.chips = dict(chips or {})
        self.bus_number = bus_number
        self.transfers = 0
        self.closed = False

    def _chip(self, i2c_addr: int) -> FakeLSM6DSOX:
        if self.closed:
            raise OSError(9, "Bad file descriptor")
        self.transfers += 1
        chip = self.chips.get(i2c_addr)
        if chip is None or not chip.connected:
            raise OSError(121, "Remote I/O error")
        return chip

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._chip(i2c_addr).read_register(register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._chip(i2c_addr).write_register(register, value)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if length > 32:
            raise ValueError("Desired block length over 32 bytes")  # as smbus2 says
        return self._chip(i2c_addr).read_block(register, length)

    def close(self) -> None:
        self.closed = True


class FakeI2C:
    """Several fake buses and a ``bus_factory`` for :class:`forcecast.edge.sources.i2c.I2CSource`."""

    def __init__(self, buses: Mapping[int, FakeBus]) -> None:
        self.buses = dict(buses)
        self.opened: list[int] = []

    def open(self, bus_number: int) -> FakeBus:
        if bus_number not in self.buses:
            raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{bus_number}")
        self.opened.append(bus_number)
        return self.buses[bus_number]
