"""What a real IMU adds to ideal motion.

Its own anti-alias filter and rate, bias, scale error, noise, slow gyro drift, 16-bit quantisation
and saturation, with figures typical of MEMS parts such as the LSM6DSOX or ICM-42688-P at ±16 g and
±2000 °/s.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.synth.population import SensorMount

FloatArray = NDArray[np.float64]

ACC_RANGE = 16.0 * GRAVITY_MPS2
GYR_RANGE = np.deg2rad(2000.0)
ACC_LSB = ACC_RANGE / 32768.0
GYR_LSB = GYR_RANGE / 32768.0
ACC_NOISE = 0.03
"""m/s² rms at the output rate (sensor noise plus skin-mounting micro-motion)."""
GYR_NOISE = 0.003
"""rad/s rms at the output rate."""
GYR_DRIFT = 2e-5
"""rad/s per √sample: random walk of the gyro bias."""


def rate_ratio(source_hz: float, target_hz: float) -> tuple[int, int]:
    """Integer up/down factors for polyphase resampling from ``source_hz`` to ``target_hz``."""
    ratio = Fraction(target_hz / source_hz).limit_denominator(2000)
    if abs(float(ratio) - target_hz / source_hz) > 1e-9:
        raise ValueError(f"cannot resample {source_hz} Hz to {target_hz} Hz with a rational ratio")
    return ratio.numerator, ratio.denominator


def measure(
    acc: FloatArray,
    gyr: FloatArray,
    mount: SensorMount,
    source_hz: float,
    target_hz: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Turn ideal signals at ``source_hz`` into what the sensor outputs at ``target_hz``.

    The chip's digital low-pass and decimation are modelled by polyphase resampling (which
    filters before it decimates), so nothing above the output Nyquist frequency aliases in.
    Sample ``k`` of the output is at time ``k / target_hz`` from the first input sample.
    """
    up, down = rate_ratio(source_hz, target_hz)
    acc_out = signal.resample_poly(acc, up, down, axis=0)
    gyr_out = signal.resample_poly(gyr, up, down, axis=0)
    n = acc_out.shape[0]
    drift = np.cumsum(rng.normal(0.0, GYR_DRIFT, (n, 3)), axis=0)
    acc_out = acc_out * np.asarray(mount.acc_scale) + np.asarray(mount.acc_bias) + rng.normal(0.0, ACC_NOISE, (n, 3))
    gyr_out = (
        gyr_out * np.asarray(mount.gyr_scale) + np.asarray(mount.gyr_bias) + drift + rng.normal(0.0, GYR_NOISE, (n, 3))
    )
    acc_out = np.clip(np.round(acc_out / ACC_LSB), -32768, 32767) * ACC_LSB
    gyr_out = np.clip(np.round(gyr_out / GYR_LSB), -32768, 32767) * GYR_LSB
    return acc_out, gyr_out
