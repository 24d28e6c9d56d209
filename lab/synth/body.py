"""Segment kinematics and what body-worn IMUs feel: specific force and angular rate.

The body is a pelvis with two legs of thigh, shank and foot (segment lengths from Winter's
anthropometric table: thigh 0.245 H, shank 0.246 H). Sagittal segment angles follow normative
joint-angle curves (Kadaba et al. 1990; Perry & Burnfield 2010), scaled with speed and stiffened on
an OA knee (less stance knee flexion: Mündermann et al. 2005; Astephen et al. 2008). Frontal-plane
shank tilt follows knee alignment, and some varus knees show a *thrust* in early stance
(Chang et al. 2004).

The pelvis moves with the centre of mass, whose acceleration is the sum of both feet's ground
reaction forces divided by body mass (Newton's second law), so the pelvis accelerometer and the
force plates tell one consistent story. Each sensor measures ``R_sᵀ (a + g ẑ)`` and ``ω`` in its own
frame, where ``R_s`` includes a per-session mounting misalignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.synth.curves import periodic_pchip, smooth_warp
from forcecast.lab.synth.gait import LegGait
from forcecast.lab.synth.population import SensorMount, VirtualSubject

FloatArray = NDArray[np.float64]

# Normative sagittal curves over the (warped) gait cycle, degrees; toe-off at 0.62.
HIP_FLEXION = periodic_pchip(
    [(0.0, 24), (0.10, 21), (0.30, 7), (0.50, -9), (0.56, -10), (0.62, -6), (0.75, 14), (0.87, 27)]
)
KNEE_FLEXION = periodic_pchip(
    [
        (0.0, 4),
        (0.03, 7),
        (0.14, 18),
        (0.30, 9),
        (0.42, 4),
        (0.50, 8),
        (0.62, 38),
        (0.72, 62),
        (0.80, 52),
        (0.90, 20),
        (0.97, 4),
    ]
)
FOOT_PITCH = periodic_pchip(
    [
        (0.0, 20),
        (0.05, 8),
        (0.11, 0),
        (0.38, 0),
        (0.50, -12),
        (0.60, -38),
        (0.66, -52),
        (0.75, -30),
        (0.85, 0),
        (0.93, 18),
        (0.97, 22),
    ]
)
_HIP_MEAN = float(np.mean(HIP_FLEXION(np.linspace(0, 1, 1000, endpoint=False))))
_KNEE_REST_DEG = 4.0
JOINT_MOTION_CUTOFF_HZ = 12.0

SEGMENTS = ("pelvis", "l_thigh", "r_thigh", "l_shank", "r_shank", "l_foot", "r_foot")


@dataclass(frozen=True)
class SegmentAngles:
    """Orientation of every segment over time: pitch, roll, yaw in degrees, shape ``(n, 3)``.

    Pitch is sagittal inclination with the distal end (or the toes) forward/up positive; roll is
    adduction (distal end towards the midline) positive; yaw is internal rotation positive.
    """

    angles: dict[str, FloatArray]


def walking_angles(
    phases: dict[str, FloatArray],
    gaits: dict[str, LegGait],
) -> SegmentAngles:
    """Segment angles of both legs and the pelvis during walking.

    Parameters
    ----------
    phases
        Phase in the stride per sample for ``l`` and ``r`` (0 at that leg's heel strike).
    gaits
        Each leg's pattern.
    """
    out: dict[str, FloatArray] = {}
    for side in ("l", "r"):
        p, g = phases[side], gaits[side]
        w = smooth_warp(p, g.duty) % 1.0
        hip = _HIP_MEAN + (HIP_FLEXION(w) - _HIP_MEAN) * g.hip_scale
        swing_weight = 0.5 * (1.0 + np.tanh((w - 0.47) / 0.04))
        knee_scale = g.knee_stance_scale * (1.0 - swing_weight) + g.knee_swing_scale * swing_weight
        knee = _KNEE_REST_DEG + (KNEE_FLEXION(w) - _KNEE_REST_DEG) * knee_scale
        cycle = 2.0 * np.pi * w
        thrust = g.thrust_deg * np.exp(-0.5 * ((p - 0.07) / 0.025) ** 2)
        out[f"{side}_thigh"] = np.column_stack([hip, 2.0 * np.sin(cycle), 3.0 * np.sin(cycle)])
        out[f"{side}_shank"] = np.column_stack(
            [
                hip - knee,
                0.5 * g.hka_deg + thrust + 1.5 * np.sin(cycle + 0.5),
                4.0 * np.sin(cycle + 0.3),
            ]
        )
        out[f"{side}_foot"] = np.column_stack(
            [
                FOOT_PITCH(w),
                3.0 * np.sin(cycle + 1.0),
                -7.0 - 2.0 * np.sin(cycle),
            ]
        )
    right_cycle = 2.0 * np.pi * phases["r"]
    severity = max(gaits["l"].severity, gaits["r"].severity)
    out["pelvis"] = np.column_stack(
        [
            2.0 * np.sin(2.0 * right_cycle),
            4.0 * (1.0 + 0.5 * severity) * np.sin(right_cycle),
            5.0 * np.cos(right_cycle),
        ]
    )
    return SegmentAngles(out)


def standing_angles(n: int, hka_deg: dict[str, float], sway: FloatArray) -> SegmentAngles:
    """Quiet standing: segments upright, shanks tilted by alignment, with a little postural sway.

    ``sway`` has shape ``(n,)`` in degrees and moves the whole body like an inverted pendulum.
    """
    out = {"pelvis": np.column_stack([sway, 0.3 * sway, np.zeros(n)])}
    for side in ("l", "r"):
        out[f"{side}_thigh"] = np.column_stack([sway, np.zeros(n), np.zeros(n)])
        out[f"{side}_shank"] = np.column_stack([sway, np.full(n, 0.5 * hka_deg[side]), np.zeros(n)])
        out[f"{side}_foot"] = np.column_stack([np.zeros(n), np.zeros(n), np.full(n, -7.0)])
    return SegmentAngles(out)


def band_limited(angles: SegmentAngles, rate_hz: float, cutoff_hz: float = JOINT_MOTION_CUTOFF_HZ) -> SegmentAngles:
    """Zero-phase low-pass of every angle: voluntary segment motion has little power above ~10 Hz."""
    sos = signal.butter(2, cutoff_hz, fs=rate_hz, output="sos")
    return SegmentAngles({k: signal.sosfiltfilt(sos, v, axis=0) for k, v in angles.angles.items()})


def rotation_matrices(pitch_deg: FloatArray, roll_deg: FloatArray, yaw_deg: FloatArray) -> FloatArray:
    """``Rz(yaw) Rx(roll) Ry(-pitch)`` per sample, shape ``(n, 3, 3)`` (lab frame: x fwd, y left, z up)."""
    p, r, y = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (pitch_deg, roll_deg, yaw_deg))
    cz, sz = np.cos(y), np.sin(y)
    cx, sx = np.cos(r), np.sin(r)
    cy, sy = np.cos(-p), np.sin(-p)
    out = np.empty((p.size, 3, 3))
    out[:, 0, 0] = cz * cy - sz * sx * sy
    out[:, 0, 1] = -sz * cx
    out[:, 0, 2] = cz * sy + sz * sx * cy
    out[:, 1, 0] = sz * cy + cz * sx * sy
    out[:, 1, 1] = cz * cx
    out[:, 1, 2] = sz * sy - cz * sx * cy
    out[:, 2, 0] = -cx * sy
    out[:, 2, 1] = sx
    out[:, 2, 2] = cx * cy
    return out


def segment_rotations(angles: SegmentAngles) -> dict[str, FloatArray]:
    """World orientation of each segment; left-leg roll and yaw are mirrored to lab axes."""
    pelvis = angles.angles["pelvis"]
    out = {"pelvis": rotation_matrices(pelvis[:, 0], pelvis[:, 1], pelvis[:, 2])}
    for name, a in angles.angles.items():
        if name == "pelvis":
            continue
        sign = 1.0 if name.startswith("r_") else -1.0
        out[name] = rotation_matrices(a[:, 0], sign * a[:, 1], sign * a[:, 2] + pelvis[:, 2])
    return out


def sensor_positions(rotations: dict[str, FloatArray], height_m: float) -> dict[str, FloatArray]:
    """Sensor positions relative to the pelvis centre (shape ``(n, 3)`` each)."""
    thigh, shank = 0.245 * height_m, 0.246 * height_m
    hip_half_width = 0.055 * height_m
    pelvis = rotations["pelvis"]
    positions = {"pelvis": pelvis @ np.array([-0.12, 0.0, 0.0])}
    for side, lateral in (("r", -1.0), ("l", 1.0)):
        hip = pelvis @ np.array([0.0, lateral * hip_half_width, 0.0])
        r_thigh, r_shank, r_foot = (rotations[f"{side}_{s}"] for s in ("thigh", "shank", "foot"))
        knee = hip + r_thigh @ np.array([0.0, 0.0, -thigh])
        ankle = knee + r_shank @ np.array([0.0, 0.0, -shank])
        positions[f"{side}_thigh"] = hip + r_thigh @ np.array([0.01, lateral * 0.07, -0.5 * thigh])
        positions[f"{side}_shank"] = knee + r_shank @ np.array([0.03, lateral * 0.04, -0.35 * shank])
        positions[f"{side}_foot"] = ankle + r_foot @ np.array([0.07, 0.0, -0.01])
    return positions


def mounting_rotation(misalignment_deg: tuple[float, float, float]) -> FloatArray:
    """Fixed rotation of a sensor relative to its segment's anatomical frame."""
    roll, pitch, yaw = misalignment_deg
    return rotation_matrices(np.array([pitch]), np.array([roll]), np.array([yaw]))[0]


def mount_matrix(mount: SensorMount) -> FloatArray:
    """The sensor's axes in its segment's frame (columns): ``v_segment = mount_matrix @ v_sensor``."""
    if mount.placement is not None:
        return np.asarray(mount.placement, dtype=np.float64)
    return mounting_rotation(mount.misalignment_deg)


def small_rotations(angles_rad: FloatArray) -> FloatArray:
    """Rotation matrices ``(n, 3, 3)`` of rotation vectors ``(n, 3)`` (Rodrigues; angle = vector norm)."""
    theta = np.linalg.norm(angles_rad, axis=1)
    safe = np.where(theta > 0, theta, 1.0)
    k = angles_rad / safe[:, None]
    skew = np.zeros((angles_rad.shape[0], 3, 3))
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    skew[:, 1, 0], skew[:, 2, 0], skew[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    sin, cos = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    return np.eye(3) + sin * skew + (1.0 - cos) * (skew @ skew)


def imu_signals(
    subject: VirtualSubject,
    angles: SegmentAngles,
    com_acceleration: FloatArray,
    extra_acceleration: dict[str, FloatArray],
    rate_hz: float,
    places: tuple[str, ...],
    wobble: dict[str, FloatArray] | None = None,
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Ideal (noise-free, unbiased) accelerometer and gyroscope signals of each sensor.

    Parameters
    ----------
    subject
        Provides height and the sensor mountings.
    angles
        Segment angles over time.
    com_acceleration
        Acceleration of the centre of mass in the lab frame, shape ``(n, 3)``.
    extra_acceleration
        Per place, accelerations added in the lab frame (impact transients, soft tissue).
    rate_hz
        Sampling rate of the inputs.
    places
        Which sensors to compute.
    wobble
        Per place, soft-tissue rotation of the sensor against its segment as rotation vectors in
        radians, shape ``(n, 3)`` (segment frame); the gyroscope sees its rate, the accelerometer its tilt.

    Returns
    -------
    dict
        ``place -> (acc (n, 3) in m/s², gyr (n, 3) in rad/s)`` in each sensor's frame.
    """
    dt = 1.0 / rate_hz
    rotations = segment_rotations(band_limited(angles, rate_hz))
    positions = sensor_positions(rotations, subject.height_m)
    gravity = np.array([0.0, 0.0, GRAVITY_MPS2])
    out = {}
    for place in places:
        relative = positions[place]
        accel = np.gradient(np.gradient(relative, dt, axis=0), dt, axis=0) + com_acceleration
        if place in extra_acceleration:
            accel = accel + extra_acceleration[place]
        mount = mount_matrix(subject.mounts[place])
        if wobble is not None and place in wobble:
            sensor = rotations[place] @ small_rotations(wobble[place]) @ mount
        else:
            sensor = rotations[place] @ mount
        specific_force = np.sum(sensor * (accel + gravity)[:, :, None], axis=1)
        change = np.gradient(sensor, dt, axis=0)
        # ω in the sensor frame is the skew part of Rᵀ dR/dt; only three of its entries are needed.
        gyro = np.column_stack(
            [
                np.sum(sensor[:, :, 2] * change[:, :, 1], axis=1),
                np.sum(sensor[:, :, 0] * change[:, :, 2], axis=1),
                np.sum(sensor[:, :, 1] * change[:, :, 0], axis=1),
            ]
        )
        out[place] = (specific_force, gyro)
    return out
