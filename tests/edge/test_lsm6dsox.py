"""The LSM6DSOX driver and I2CSource against a register-level fake of the chip (tests/fake_lsm6dsox.py)."""

import math
import subprocess
import sys
from dataclasses import dataclass
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pytest
from fake_lsm6dsox import (
    CTRL1_XL,
    CTRL2_G,
    CTRL3_C,
    FIFO_CTRL3,
    FIFO_CTRL4,
    FIFO_STATUS1,
    FakeBus,
    FakeClock,
    FakeI2C,
    FakeLSM6DSOX,
    standing,
    swinging,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.runtime.config import SensorConfig
from forcecast.edge.schema import GRAVITY_MPS2, all_imu_columns
from forcecast.edge.sources.base import Chunk, SourceError
from forcecast.edge.sources.i2c import I2CSource, open_smbus
from forcecast.edge.sources.lsm6dsox import (
    ACC_LSB_MPS2,
    ACC_RANGE_MPS2,
    GYR_LSB_RADS,
    GYR_RANGE_RADS,
    LSM6DSOX,
    TAG_ACC_NC,
    TAG_GYRO_NC,
    AxisMap,
    FifoDecoder,
    I2CTransferError,
)

RATE = 104.0
PERIOD = 1.0 / RATE


def make_driver(motion=standing, *, address=0x6A, rate_hz=RATE, axes=("x", "y", "z"), **chip_options):
    clock = FakeClock()
    chip = FakeLSM6DSOX(clock, motion, **chip_options)
    bus = FakeBus({address: chip})
    driver = LSM6DSOX(bus, address, bus_number=1, rate_hz=rate_hz, axes=axes, clock=clock)
    return clock, chip, bus, driver


def expected(motion, times):
    """The motion at ``times`` in format-v1 units, chip axes."""
    acc, gyr = zip(*(motion(t) for t in times), strict=True)
    return np.asarray(acc, float) * GRAVITY_MPS2, np.radians(np.asarray(gyr, float))


# -- identity and configuration ----------------------------------------------------------------------


def test_wrong_chip_is_refused_by_who_am_i():
    _, _, _, driver = make_driver(who_am_i=0x69)
    with pytest.raises(SourceError) as info:
        driver.open()
    assert str(info.value) == (
        "bus 1 address 0x6A: WHO_AM_I is 0x69, expected 0x6C (LSM6DSOX); is another chip at this address?"
    )


def test_absent_chip_names_bus_address_and_wiring_hints():
    clock = FakeClock()
    bus = FakeBus({0x6B: FakeLSM6DSOX(clock)})
    with pytest.raises(SourceError, match=r"^no device at bus 1 address 0x6A \(check wiring, address pin SA0, "):
        LSM6DSOX(bus, 0x6A, bus_number=1, clock=clock).open()
    with pytest.raises(SourceError, match=r"i2cdetect -y 1\): \[Errno 121\] Remote I/O error"):
        LSM6DSOX(bus, 0x6A, bus_number=1, clock=clock).open()


@pytest.mark.parametrize(("rate_hz", "code"), [(52.0, 0x3), (104.0, 0x4), (208.0, 0x5)])
def test_open_leaves_the_registers_configured(rate_hz, code):
    _, chip, _, driver = make_driver(rate_hz=rate_hz)
    chip.regs[0x0D] = 0xFF  # INT1_CTRL left over from someone else: the software reset must clear it
    chip.regs[0x14] = 0x60  # CTRL5_C rounding
    driver.open()
    assert chip.regs[CTRL1_XL] == code << 4 | 0b01 << 2  # ODR_XL, FS_XL = ±16 g
    assert chip.regs[CTRL2_G] == code << 4 | 0b11 << 2  # ODR_G, FS_G = ±2000 dps, FS_125 off
    assert chip.regs[CTRL3_C] == 0x44  # BDU | IF_INC, SW_RESET and BOOT clear
    assert chip.regs[0x18] & 0x02  # CTRL9_XL: I3C disabled
    assert chip.regs[0x07] == chip.regs[0x08] == 0x00  # no watermark, no compression
    assert chip.regs[FIFO_CTRL3] == code << 4 | code  # BDR_GY = BDR_XL = ODR
    assert chip.regs[FIFO_CTRL4] == 0b110  # continuous
    assert chip.regs[0x0D] == 0x00 and chip.regs[0x14] == 0x00


def test_unsupported_rate_is_refused():
    clock = FakeClock()
    with pytest.raises(ValueError, match=r"bus 1 address 0x6A: rate_hz 100 is not one of 12.5, 26, 52, 104"):
        LSM6DSOX(FakeBus(), 0x6A, bus_number=1, rate_hz=100.0, clock=clock)


class StuckInReset(FakeLSM6DSOX):
    def read_register(self, register):
        value = super().read_register(register)
        return value | 0x01 if register == CTRL3_C else value


def test_a_reset_that_never_finishes_is_reported():
    clock = FakeClock()
    driver = LSM6DSOX(FakeBus({0x6A: StuckInReset(clock)}), 0x6A, bus_number=1, clock=clock)
    with pytest.raises(SourceError, match=r"bus 1 address 0x6A: software reset did not finish"):
        driver.open()


def test_the_fake_batches_nothing_until_the_fifo_is_configured():
    clock = FakeClock()
    chip = FakeLSM6DSOX(clock, swinging)
    bus = FakeBus({0x6A: chip})
    bus.write_byte_data(0x6A, CTRL1_XL, 0x44)
    bus.write_byte_data(0x6A, CTRL2_G, 0x4C)
    clock.advance(1.0)
    assert bus.read_byte_data(0x6A, FIFO_STATUS1) == 0  # sensors run, FIFO in bypass
    assert chip.regs[0x28:0x2E] != bytes(6)  # ... but the output registers update
    bus.write_byte_data(0x6A, FIFO_CTRL4, 0b110)
    clock.advance(1.0)
    assert bus.read_byte_data(0x6A, FIFO_STATUS1) == 0  # continuous, but no batch data rate
    bus.write_byte_data(0x6A, FIFO_CTRL3, 0x44)
    clock.advance(0.1)
    assert bus.read_byte_data(0x6A, FIFO_STATUS1) == 20  # 10 slots x (gyro + acc)


def test_without_auto_increment_a_burst_rereads_one_register():
    clock = FakeClock()
    chip = FakeLSM6DSOX(clock)
    bus = FakeBus({0x6A: chip})
    assert bus.read_i2c_block_data(0x6A, 0x0F, 3) == [0x6C, 0x00, 0x00]  # IF_INC is set at reset
    bus.write_byte_data(0x6A, CTRL3_C, 0x40)
    assert bus.read_i2c_block_data(0x6A, 0x0F, 3) == [0x6C, 0x6C, 0x6C]


# -- data ------------------------------------------------------------------------------------------


def test_standing_still_reads_gravity_on_z():
    clock, _, _, driver = make_driver(standing)
    driver.open()
    clock.advance(0.5)
    batch = driver.read()
    assert len(batch) == 52 and not batch.overrun
    np.testing.assert_allclose(batch.acc_mps2, np.tile([0.0, 0.0, GRAVITY_MPS2], (52, 1)), atol=ACC_LSB_MPS2)
    np.testing.assert_array_equal(batch.gyr_rads, 0.0)


@pytest.mark.parametrize("gyro_first", [True, False])
def test_fifo_samples_equal_the_motion_within_one_lsb(gyro_first):
    clock, chip, _, driver = make_driver(swinging, gyro_first=gyro_first)
    driver.open()
    batches = []
    for _ in range(100):  # 2 s in 20 ms polls
        clock.advance(0.02)
        batches.append(driver.read())
    times = np.concatenate([b.time_s for b in batches])
    acc = np.concatenate([b.acc_mps2 for b in batches])
    gyr = np.concatenate([b.gyr_rads for b in batches])
    assert times.size == len(chip.batched_times) >= 207
    np.testing.assert_allclose(times, chip.batched_times, rtol=0, atol=1e-9)
    want_acc, want_gyr = expected(swinging, chip.batched_times)
    np.testing.assert_allclose(acc, want_acc, rtol=0, atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(gyr, want_gyr, rtol=0, atol=GYR_LSB_RADS)
    assert driver.decoder.counts.unpaired == driver.decoder.counts.unknown == 0


def test_read_latest_reads_the_output_registers():
    clock, chip, _, driver = make_driver(swinging)
    driver.open()
    clock.advance(0.25)
    acc, gyr = driver.read_latest()
    want_acc, want_gyr = expected(swinging, chip.samples[-1:])
    np.testing.assert_allclose(acc, want_acc[0], atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(gyr, want_gyr[0], atol=GYR_LSB_RADS)


def tilted(t):
    """Chip x points up, chip z backwards: gravity on chip +x."""
    return (1.0, 0.2, 0.3), (10.0, 20.0, 30.0)


def test_axis_mapping_turns_chip_axes_into_the_nominal_frame():
    clock, _, _, driver = make_driver(tilted, axes=("-z", "y", "x"))
    driver.open()
    clock.advance(0.1)
    batch = driver.read()
    np.testing.assert_allclose(batch.acc_mps2[0], np.array([-0.3, 0.2, 1.0]) * GRAVITY_MPS2, atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(batch.gyr_rads[0], np.radians([-30.0, 20.0, 10.0]), atol=GYR_LSB_RADS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (("x", "x", "z"), "each chip axis x, y, z must appear exactly once"),
        (("x", "y", "w"), "'w' is not x, y or z"),
        (("x", "y"), "need three strings"),
        (("x", "-y", "z"), "mirror image"),
    ],
)
def test_bad_axis_mappings_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        AxisMap.parse(spec)


def test_axis_mapping_accepts_rotations():
    assert AxisMap.parse(("-y", "+x", "z")).matrix.tolist() == [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    assert np.linalg.det(AxisMap.parse(("x", "-y", "-z")).matrix) == 1


def violent(t):
    return (20.0, -20.0, 0.5), (3000.0, -3000.0, 0.0)


def test_saturated_samples_read_full_scale():
    clock, _, _, driver = make_driver(violent)
    driver.open()
    clock.advance(0.05)
    batch = driver.read()
    np.testing.assert_allclose(batch.acc_mps2[0, :2], [32767 * ACC_LSB_MPS2, -32768 * ACC_LSB_MPS2])
    np.testing.assert_allclose(batch.gyr_rads[0, :2], [32767 * GYR_LSB_RADS, -32768 * GYR_LSB_RADS])
    assert np.abs(batch.acc_mps2[0, 0]) >= 0.99 * ACC_RANGE_MPS2  # the runtime's saturation test holds
    assert np.abs(batch.gyr_rads[0, 0]) >= 0.99 * GYR_RANGE_RADS


# -- overrun and timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [512, 511])
def test_fifo_overrun_is_reported_as_a_gap(capacity):
    clock, chip, _, driver = make_driver(swinging, fifo_capacity=capacity)
    driver.open()
    clock.advance(0.2)
    before = driver.read()
    clock.advance(10.0)  # nobody reads: continuous mode overwrites the oldest words
    after = driver.read()
    assert after.overrun and driver.overruns == 1
    assert len(after) == capacity // 2
    # Words kept are the newest: they still equal the motion at their true times.
    true_times = chip.batched_times[-len(after) :]
    want_acc, want_gyr = expected(swinging, true_times)
    np.testing.assert_allclose(after.acc_mps2, want_acc, atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(after.gyr_rads, want_gyr, atol=GYR_LSB_RADS)
    assert driver.decoder.counts.unpaired == capacity % 2  # an odd capacity leaves an orphaned word
    # The lost samples are a gap in time; the newest sample is stamped near its true time.
    assert after.time_s[0] - before.time_s[-1] > 7.0
    assert abs(after.time_s[-1] - true_times[-1]) < PERIOD
    assert np.allclose(np.diff(after.time_s), PERIOD)
    clock.advance(0.02)
    assert not driver.read().overrun  # FIFO_OVR_LATCHED cleared by the read


@pytest.mark.parametrize("odr_scale", [0.97, 1.03])
def test_timestamps_follow_an_oscillator_that_is_off_nominal(odr_scale):
    clock, chip, _, driver = make_driver(standing, odr_scale=odr_scale)
    driver.open()
    times = []
    for i in range(1500):  # 30 s, with an occasional late poll
        clock.advance(0.02 if i % 100 else 0.3)
        times.append(driver.read().time_s)
    times = np.concatenate(times)
    assert times.size == len(chip.batched_times)
    steps = np.diff(times)
    assert steps.min() > 0.45 * PERIOD and steps.max() < 1.55 * PERIOD
    assert np.abs(times - chip.batched_times).max() < 2.5 * PERIOD
    assert driver.resyncs == 0


def test_a_long_stall_reanchors_the_timeline():
    clock, chip, _, driver = make_driver(standing, fifo_capacity=10_000)
    driver.open()
    clock.advance(0.1)
    driver.read()
    chip.odr_scale = 0.9  # oscillator slows while nobody looks: 10 % fewer samples than expected
    chip.write_register(CTRL1_XL, 0x00)
    chip.write_register(CTRL2_G, 0x00)
    chip.write_register(CTRL1_XL, 0x44)
    chip.write_register(CTRL2_G, 0x4C)
    clock.advance(5.0)
    batch = driver.read()
    assert driver.resyncs == 1
    assert abs(batch.time_s[-1] - chip.batched_times[-1]) < PERIOD


# -- the FIFO decoder --------------------------------------------------------------------------------


def word(tag, slot, xyz=(1, 2, 3)):
    return bytes([tag << 3 | (slot & 3) << 1]) + np.asarray(xyz, "<i2").tobytes()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_decoder_survives_random_bytes(raw, use_tag_counter):
    decoder = FifoDecoder(use_tag_counter)
    acc, gyr = decoder.feed(raw)
    counts = decoder.counts
    assert acc.shape == gyr.shape == (acc.shape[0], 3) and acc.dtype == np.int16
    assert counts.words == len(raw) // 7 and counts.stray_bytes == len(raw) % 7
    assert counts.gyro + counts.acc + counts.other + counts.unknown == counts.words
    assert len(acc) <= min(counts.gyro, counts.acc)
    assert len(acc) * 2 + counts.unpaired + decoder.pending == counts.gyro + counts.acc


@settings(max_examples=200, deadline=None)
@given(
    slots=st.integers(1, 40),
    junk=st.lists(
        st.tuples(
            st.integers(0, 200), st.sampled_from([0x00, 0x03, 0x04, 0x1A, 0x1F]), st.binary(min_size=6, max_size=6)
        ),
        max_size=15,
    ),
    cuts=st.lists(st.integers(0, 300), max_size=5),
)
def test_decoder_pairs_valid_words_among_other_tags(slots, junk, cuts):
    words = []
    for slot in range(slots):
        words.append(word(TAG_GYRO_NC, slot, (slot, -slot, 7)))
        words.append(word(TAG_ACC_NC, slot, (-slot, slot, 9)))
    for position, tag, data in junk:
        words.insert(min(position, len(words)), bytes([tag << 3]) + data)
    raw = b"".join(words)
    decoder = FifoDecoder()
    pieces = []
    for cut in [0, *sorted({min(c, len(words)) for c in cuts}), len(words)]:
        pieces.append(cut * 7)
    acc, gyr = [], []
    for start, end in pairwise(pieces):
        a, g = decoder.feed(raw[start:end])
        acc.append(a)
        gyr.append(g)
    acc, gyr = np.concatenate(acc), np.concatenate(gyr)
    ramp = np.arange(slots)
    np.testing.assert_array_equal(gyr, np.column_stack([ramp, -ramp, np.full(slots, 7)]))
    np.testing.assert_array_equal(acc, np.column_stack([-ramp, ramp, np.full(slots, 9)]))
    assert decoder.counts.unknown + decoder.counts.other == len(junk)
    assert decoder.counts.unpaired == 0


def test_decoder_does_not_hoard_words_without_partners():
    decoder = FifoDecoder()
    for slot in range(100):
        decoder.feed(word(TAG_GYRO_NC, slot))
    assert decoder.pending <= 8 and decoder.counts.unpaired == 100 - decoder.pending


def test_decoder_drops_the_word_whose_partner_was_lost():
    decoder = FifoDecoder()
    raw = word(TAG_ACC_NC, 0, (9, 9, 9)) + word(TAG_GYRO_NC, 1) + word(TAG_ACC_NC, 1) + word(TAG_GYRO_NC, 2)
    acc, gyr = decoder.feed(raw)
    assert acc.tolist() == gyr.tolist() == [[1, 2, 3]]
    assert decoder.counts.unpaired == 1 and decoder.pending == 1
    acc, _ = decoder.feed(word(TAG_ACC_NC, 2, (4, 5, 6)))
    assert acc.tolist() == [[4, 5, 6]]


# -- I2CSource ---------------------------------------------------------------------------------------


def pelvis_motion(t):
    return (0.0, 0.0, 1.0), (5.0, -5.0, 2.0)


def ramp(t):
    """acc x = seconds since 1000 s in g: a sample says when it was taken."""
    return ((t - 1000.0) % 15.0, 0.0, 1.0), (0.0, 0.0, 0.0)


@dataclass
class Rig:
    clock: FakeClock
    shank: FakeLSM6DSOX
    pelvis: FakeLSM6DSOX
    i2c: FakeI2C
    source: I2CSource


def two_chip_source(shank_motion=swinging, pelvis_motion=pelvis_motion, *, pelvis_bus=1, **options):
    """r_shank at bus 1 address 0x6A, pelvis at bus ``pelvis_bus`` address 0x6B."""
    clock = FakeClock()
    shank = FakeLSM6DSOX(clock, shank_motion, **options.pop("shank_options", {}))
    pelvis = FakeLSM6DSOX(clock, pelvis_motion, **options.pop("pelvis_options", {}))
    buses = {1: FakeBus({0x6A: shank}, 1)}
    buses.setdefault(pelvis_bus, FakeBus(bus_number=pelvis_bus)).chips[0x6B] = pelvis
    fake_i2c = FakeI2C(buses)
    sensors = [SensorConfig("pelvis", bus=pelvis_bus, address=0x6B), SensorConfig("r_shank", bus=1, address=0x6A)]
    source = I2CSource(sensors, bus_factory=fake_i2c.open, clock=clock, sleep=clock.advance, **options)
    return Rig(clock, shank, pelvis, fake_i2c, source)


def collect(chunks):
    chunks = list(chunks)
    for chunk in chunks:
        assert isinstance(chunk, Chunk)
    return np.concatenate([c.time_s for c in chunks]), np.concatenate([c.values for c in chunks])


@pytest.mark.parametrize("pelvis_bus", [1, 3])
def test_two_chips_give_aligned_chunks_with_the_right_columns(pelvis_bus):
    rig = two_chip_source(pelvis_bus=pelvis_bus, axes={"pelvis": ("y", "-x", "z")})
    source = rig.source
    assert source.columns == all_imu_columns(("r_shank", "pelvis"))
    assert source.rate_hz == RATE and source.acc_range_mps2 == ACC_RANGE_MPS2
    assert source.gyr_range_rads == GYR_RANGE_RADS
    assert sorted(set(rig.i2c.opened)) == sorted({1, pelvis_bus}) and len(rig.i2c.opened) == len({1, pelvis_bus})
    chunks = list(islice(source.chunks(), 100))
    source.close()
    assert all(0 < c.time_s.size <= 3 for c in chunks)
    times, values = collect(chunks)
    assert np.all(np.diff(times) > 0) and np.allclose(np.diff(times), PERIOD)
    assert not np.isnan(values).any()
    n = times.size
    np.testing.assert_allclose(times, rig.shank.batched_times[:n], atol=1e-9)
    want_acc, want_gyr = expected(swinging, rig.shank.batched_times[:n])
    np.testing.assert_allclose(values[:, 0:3], want_acc, atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(values[:, 3:6], want_gyr, atol=GYR_LSB_RADS)
    np.testing.assert_allclose(values[:, 6:9], np.tile([0, 0, GRAVITY_MPS2], (n, 1)), atol=ACC_LSB_MPS2)
    np.testing.assert_allclose(values[:, 9:12], np.tile(np.radians([-5.0, -5.0, 2.0]), (n, 1)), atol=GYR_LSB_RADS)


def test_a_chip_running_fast_is_kept_aligned():
    rig = two_chip_source(ramp, ramp, pelvis_options={"odr_scale": 1.02})
    source = rig.source
    times, values = collect(islice(source.chunks(), 500))  # 10 s: the pelvis chip makes ~20 extra samples
    shank_taken = values[:, 0] / GRAVITY_MPS2 + 1000.0
    pelvis_taken = values[:, 6] / GRAVITY_MPS2 + 1000.0
    assert np.abs(shank_taken - times).max() < 0.001
    assert np.abs(pelvis_taken - times).max() < 2 * PERIOD
    assert source.stats()[1].skew_drops >= 15
    source.close()


def test_close_stops_the_chunks_and_releases_the_hardware():
    rig = two_chip_source()
    source = rig.source
    seen = 0
    for _ in source.chunks():
        seen += 1
        if seen == 5:
            source.close()
    assert seen == 5
    assert all(bus.closed for bus in rig.i2c.buses.values())
    assert rig.shank.regs[CTRL1_XL] == rig.shank.regs[CTRL2_G] == rig.pelvis.regs[CTRL1_XL] == 0  # powered down
    assert list(source.chunks()) == []
    source.close()  # twice is fine


def test_an_overrun_in_the_source_is_a_gap_in_time():
    rig = two_chip_source()
    source = rig.source
    chunks = source.chunks()
    first = [next(chunks) for _ in range(10)]
    rig.clock.advance(10.0)  # the consumer stalls
    after = [next(chunks) for _ in range(10)]
    source.close()
    times, values = collect(first + after)
    steps = np.diff(times)
    assert steps.max() > 7.0 and np.sum(steps > 1.5 * PERIOD) == 1
    assert not np.isnan(values).any()
    stats = source.stats()
    assert [s.overruns for s in stats] == [1, 1]
    n_after = sum(c.time_s.size for c in after)
    np.testing.assert_allclose(times[-n_after:], rig.shank.batched_times[-n_after:], atol=PERIOD)


def test_a_lost_chip_gives_nan_columns_and_comes_back():
    rig = two_chip_source(reopen_s=0.5)
    source = rig.source
    chunks = source.chunks()
    before = [next(chunks) for _ in range(10)]
    rig.pelvis.connected = False
    lost = [next(chunks) for _ in range(20)]
    stats = source.stats()[1]
    assert stats.missing and stats.bus_errors >= 5
    rig.pelvis.power_cycle()  # plugged back in: registers at reset values
    rig.pelvis.connected = True
    back = [next(chunks) for _ in range(40)]
    source.close()
    times, values = collect(before + lost + back)
    assert np.all(np.diff(times) > 0) and np.diff(times).max() < 1.5 * PERIOD  # the shank kept going
    assert not np.isnan(values[:, :6]).any()
    pelvis_nan = np.isnan(values[:, 6:]).any(axis=1)
    assert np.array_equal(np.isnan(values[:, 6:]).all(axis=1), pelvis_nan)
    assert 8 <= pelvis_nan.sum() < 0.8 * 104  # missing after 0.1 s, reopened after 0.5 s more
    assert not pelvis_nan[-50:].any()
    assert source.stats()[1].reopens == 1 and not source.stats()[1].missing
    np.testing.assert_allclose(values[-50:, 6:9], np.tile([0, 0, GRAVITY_MPS2], (50, 1)), atol=ACC_LSB_MPS2)


def test_when_every_chip_is_lost_the_source_gives_up():
    rig = two_chip_source(error_timeout_s=1.0)
    source = rig.source
    chunks = source.chunks()
    next(chunks)
    rig.shank.connected = rig.pelvis.connected = False
    with pytest.raises(SourceError, match=r"no IMU delivered data for 1\.\d s: r_shank \(bus 1 address 0x6A\): .*"):
        for _ in chunks:
            pass
    assert all(bus.closed for bus in rig.i2c.buses.values())


def test_a_chip_that_reset_itself_is_reinitialised():
    rig = two_chip_source(reopen_s=0.2)
    source = rig.source
    chunks = source.chunks()
    [next(chunks) for _ in range(5)]
    rig.pelvis.write_register(CTRL3_C, 0x01)  # brown-out: configuration lost, FIFO empty, no error on the bus
    [next(chunks) for _ in range(40)]
    stats = source.stats()[1]
    assert stats.reopens == 1 and not stats.missing and stats.bus_errors == 0
    source.close()


def test_open_errors_name_the_place_and_release_the_buses():
    clock = FakeClock()
    bus = FakeBus({0x6A: FakeLSM6DSOX(clock), 0x6B: FakeLSM6DSOX(clock, who_am_i=0x6A)})
    sensors = [SensorConfig("r_shank", address=0x6A), SensorConfig("pelvis", address=0x6B)]
    with pytest.raises(SourceError, match=r"^sensor pelvis: bus 1 address 0x6B: WHO_AM_I is 0x6A, expected 0x6C"):
        I2CSource(sensors, bus_factory=lambda n: bus, clock=clock)
    assert bus.closed


def test_a_missing_bus_is_reported():
    clock = FakeClock()
    fake_i2c = FakeI2C({1: FakeBus({0x6A: FakeLSM6DSOX(clock)})})
    sensors = [SensorConfig("r_shank", address=0x6A), SensorConfig("pelvis", bus=3, address=0x6A)]
    with pytest.raises(SourceError, match=r"sensor pelvis: cannot open I2C bus 3 \(/dev/i2c-3\): .*No such file"):
        I2CSource(sensors, bus_factory=fake_i2c.open, clock=clock)
    assert fake_i2c.buses[1].closed


@pytest.mark.parametrize(
    ("sensors", "options", "message"),
    [
        ([], {}, "at least one sensor"),
        ([SensorConfig("pelvis"), SensorConfig("pelvis", address=0x6B)], {}, "pelvis is configured twice"),
        ([SensorConfig("pelvis"), SensorConfig("r_shank")], {}, "two sensors at bus 1 address 0x6A"),
        ([SensorConfig("pelvis")], {"axes": {"r_shank": ("x", "y", "z")}}, "axes given for 'r_shank'"),
        ([SensorConfig("pelvis")], {"axes": {"pelvis": ("x", "-y", "z")}}, "sensor pelvis: axes .* mirror"),
        ([SensorConfig("pelvis")], {"rate_hz": 100.0}, "rate_hz 100 is not one of"),
    ],
)
def test_bad_source_configurations_are_refused(sensors, options, message):
    with pytest.raises(SourceError, match=message):
        I2CSource(sensors, bus_factory=lambda n: FakeBus(), **options)


def test_a_failing_read_is_a_transfer_error_naming_the_register():
    _, chip, _, driver = make_driver()
    driver.open()
    chip.connected = False
    with pytest.raises(I2CTransferError, match=r"bus 1 address 0x6A: reading FIFO_STATUS1 \(0x3A\) failed"):
        driver.read()


def test_modules_import_without_smbus2(monkeypatch):
    code = "import sys; sys.modules['smbus2'] = None; import forcecast.edge.sources.i2c, forcecast.edge.sources.lsm6dsox"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    monkeypatch.setitem(sys.modules, "smbus2", None)
    with pytest.raises(SourceError, match="needs smbus2"):
        open_smbus(1)


def test_ranges_match_the_configured_full_scale():
    assert math.isclose(ACC_RANGE_MPS2, 16 * GRAVITY_MPS2)
    assert math.isclose(GYR_RANGE_RADS, math.radians(2000))
