"""The virtual gait lab: subjects walk on an instrumented split-belt treadmill wearing IMUs.

Each walking trial is generated at the force-plate rate (1 kHz) with one second of margin on either
side (so filters settle), then the IMUs are "recorded" at the subject's IMU rate and the force at
1 kHz, and both are cut to the trial. They are written as an ``.imu``/``.force`` pair on one clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from forcecast.edge.schema import GRAVITY_MPS2, all_force_columns, all_imu_columns
from forcecast.lab.dataset.subjects import write_subjects
from forcecast.lab.dataset.trial import Stream, Trial, write_trial
from forcecast.lab.synth.body import SegmentAngles, imu_signals, standing_angles, walking_angles
from forcecast.lab.synth.config import SPEED_FACTORS, SynthConfig
from forcecast.lab.synth.forces import impact_kernel, impulse_train, stance_force
from forcecast.lab.synth.gait import leg_gait, stride_timing
from forcecast.lab.synth.population import VirtualSubject, make_subject
from forcecast.lab.synth.sensors import measure

FloatArray = NDArray[np.float64]
MARGIN_S = 1.0
PLATE_THRESHOLD_N = 20.0
"""Force below this on the vertical axis is set to 0 N on all axes, as lab software does for swing."""
PLATE_NOISE_N = (1.5, 0.8, 0.8)
GENERATOR_VERSION = 1


def walking_trial(subject: VirtualSubject, condition: str, config: SynthConfig) -> Trial:
    """One treadmill walking trial of ``config.duration_s`` at a speed condition."""
    rng = np.random.default_rng([subject.seed, list(SPEED_FACTORS).index(condition) + 1])
    fs = config.force_rate_hz
    n = round((config.duration_s + 2 * MARGIN_S) * fs)
    t = -MARGIN_S + np.arange(n) / fs
    speed = subject.comfortable_speed_mps * SPEED_FACTORS[condition]
    timing = stride_timing(subject, speed, t[0], t[-1], rng)
    gaits = {side: leg_gait(subject, side, speed, rng) for side in ("l", "r")}

    phases: dict[str, FloatArray] = {}
    forces_bw: dict[str, FloatArray] = {}
    impacts: dict[str, FloatArray] = {}
    kernel = impact_kernel(fs)
    for side in ("l", "r"):
        phase, stride = timing.phase(side, t)
        phases[side] = phase
        force = stance_force(gaits[side], phase, stride, rng)
        strikes = timing.heel_strikes[side]
        amplitude = gaits[side].impact_bw * np.exp(rng.normal(0.0, 0.2, strikes.size))
        impacts[side] = impulse_train(t, strikes, amplitude)
        transient = np.convolve(impacts[side], kernel)[:n]
        force[:, 0] += np.where(force[:, 0] > 0, transient, 0.0)
        forces_bw[side] = force
    body_weight = subject.body_mass_kg * GRAVITY_MPS2
    com = _com_acceleration(forces_bw, body_weight, subject.body_mass_kg)
    extra = _impact_accelerations(impacts, fs)
    angles = walking_angles(phases, gaits)
    wobble = None
    if config.soft_tissue:
        tissue_rng = np.random.default_rng([subject.seed, list(SPEED_FACTORS).index(condition) + 1, 0x7155])
        wobble, tissue_acc = _soft_tissue(impacts, fs, config.soft_tissue, config.places, tissue_rng)
        extra = {p: extra.get(p, 0.0) + tissue_acc[p] for p in tissue_acc}
    return _record(subject, config, t, angles, com, extra, forces_bw, body_weight, rng, condition, wobble)


def static_trial(subject: VirtualSubject, config: SynthConfig) -> Trial:
    """Quiet standing (calibration pose): weight on both feet, a little postural sway."""
    rng = np.random.default_rng([subject.seed, 0])
    fs = config.force_rate_hz
    n = round((config.static_s + 2 * MARGIN_S) * fs)
    t = -MARGIN_S + np.arange(n) / fs
    sway = _slow_noise(rng, n, fs, cutoff_hz=0.5, rms=0.4)
    share = {"l": 0.5 + 0.03 * (subject.leg_severity("r") - subject.leg_severity("l")), "r": 0.0}
    share["r"] = 1.0 - share["l"]
    forces_bw = {}
    for side in ("l", "r"):
        v = share[side] + _slow_noise(rng, n, fs, cutoff_hz=1.0, rms=0.008)
        ap = 0.01 * sway / 0.4 + _slow_noise(rng, n, fs, cutoff_hz=1.0, rms=0.002)
        ml = 0.02 + _slow_noise(rng, n, fs, cutoff_hz=1.0, rms=0.003)
        forces_bw[side] = np.column_stack([v, ap, ml])
    body_weight = subject.body_mass_kg * GRAVITY_MPS2
    com = _com_acceleration(forces_bw, body_weight, subject.body_mass_kg)
    angles = standing_angles(n, {s: subject.leg_hka_deg(s) for s in ("l", "r")}, sway)
    return _record(subject, config, t, angles, com, {}, forces_bw, body_weight, rng, "static")


def generate_dataset(
    out: Path,
    config: SynthConfig,
    progress: Callable[[Iterable[tuple[VirtualSubject, str]], int], Iterator[tuple[VirtualSubject, str]]] | None = None,
) -> list[VirtualSubject]:
    """Write a whole synthetic dataset (format v1) to ``out``.

    Parameters
    ----------
    out
        Dataset folder (created; existing synthetic files are overwritten).
    config
        What to generate.
    progress
        Optional wrapper around the work iterator (e.g. tqdm), given the number of trials.

    Returns
    -------
    list of VirtualSubject
        The subjects generated, hidden parameters included.
    """
    out.mkdir(parents=True, exist_ok=True)
    subjects = subjects_for(config)
    rows = [s.as_subject() for s in subjects]
    rows = [r if s.mass_known else replace(r, body_mass_kg=float("nan")) for s, r in zip(subjects, rows, strict=True)]
    write_subjects(out / "subjects.csv", rows)  # unknown masses are written blank
    conditions = (["static"] if config.static_s > 0 else []) + [f"walk_{s}" for s in config.speeds]
    work = [(s, c) for s in subjects for c in conditions]
    items: Iterable[tuple[VirtualSubject, str]] = progress(work, len(work)) if progress else work
    for subject, condition in items:
        if condition == "static":
            trial = static_trial(subject, config)
        else:
            trial = walking_trial(subject, condition.removeprefix("walk_"), config)
        write_trial(out, trial, file_format=config.file_format, paired=True)
    meta = {
        "generator": "forcecast synthetic gait lab",
        "generator_version": GENERATOR_VERSION,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return subjects


def _record(
    subject: VirtualSubject,
    config: SynthConfig,
    t: FloatArray,
    angles: SegmentAngles,
    com: FloatArray,
    extra: dict[str, FloatArray],
    forces_bw: dict[str, FloatArray],
    body_weight: float,
    rng: np.random.Generator,
    condition: str,
    wobble: dict[str, FloatArray] | None = None,
) -> Trial:
    """Measure with the IMUs and the force plates and cut the margins off."""
    fs = config.force_rate_hz
    ideal = imu_signals(subject, angles, com, extra, fs, config.places, wobble)
    imu_blocks = []
    imu_time: FloatArray | None = None
    for place in config.places:
        acc, gyr = measure(*ideal[place], subject.mounts[place], fs, subject.imu_rate_hz, rng)
        times = t[0] + np.arange(acc.shape[0]) / subject.imu_rate_hz
        keep = (times >= -1e-9) & (times <= t[-1] - MARGIN_S + 1e-9)
        imu_blocks += [acc[keep], gyr[keep]]
        imu_time = np.round(times[keep] * subject.imu_rate_hz) / subject.imu_rate_hz
    assert imu_time is not None
    force_keep = (t >= -1e-9) & (t <= t[-1] - MARGIN_S + 1e-9)
    force_time = np.round(t[force_keep] * fs) / fs
    plate = []
    for side in ("l", "r"):
        newtons = forces_bw[side][force_keep] * body_weight
        loaded = newtons[:, 0] > 0
        newtons = newtons + rng.normal(0.0, PLATE_NOISE_N, newtons.shape) * loaded[:, None]
        newtons[newtons[:, 0] < PLATE_THRESHOLD_N] = 0.0
        plate.append(newtons)
    trial_id = condition if condition == "static" else f"walk_{condition}"
    imu = Stream(imu_time, all_imu_columns(config.places), np.hstack(imu_blocks), f"{subject.subject_id}/{trial_id}")
    force = Stream(force_time, all_force_columns(), np.hstack(plate), f"{subject.subject_id}/{trial_id}")
    return Trial(subject.subject_id, trial_id, imu, force)


def _com_acceleration(forces_bw: dict[str, FloatArray], body_weight: float, mass: float) -> FloatArray:
    """Centre-of-mass acceleration from both feet's forces (lab axes x fwd, y left, z up).

    Medial is +y for the right foot and -y for the left. The trial mean is removed: on a treadmill
    the body stays in place on average, so any residual imbalance is taken up elsewhere.
    """
    right, left = forces_bw["r"], forces_bw["l"]
    total = np.column_stack([right[:, 1] + left[:, 1], right[:, 2] - left[:, 2], right[:, 0] + left[:, 0]])
    accel = total * body_weight / mass
    return accel - accel.mean(axis=0)


def _impact_accelerations(impacts: dict[str, FloatArray], fs: float) -> dict[str, FloatArray]:
    """Heel-strike shock waves on the foot and shank and soft-tissue wobble on the thigh.

    Amplitudes scale with the impact on the force plate (harder strikes shake more): a shank sees a
    few g at walking speeds, the foot more, the thigh a damped wobble of its soft tissue.
    """
    tau = np.arange(0.0, 0.25, 1.0 / fs)
    shapes = {
        "foot": (400.0, 40.0, 0.010),
        "shank": (350.0, 30.0, 0.012),
        "thigh": (40.0, 12.0, 0.050),
    }
    out: dict[str, FloatArray] = {}
    for side, train in impacts.items():
        for segment, (gain, freq_hz, decay_s) in shapes.items():
            kernel = gain * np.exp(-tau / decay_s) * np.sin(2.0 * np.pi * freq_hz * tau)
            wave = np.convolve(train, kernel)[: train.size]
            out[f"{side}_{segment}"] = np.column_stack([-0.4 * wave, np.zeros_like(wave), wave])
    return out


SOFT_TISSUE = {
    "thigh": (11.0, 0.060, 20.0, 60.0, 1.5),
    "shank": (18.0, 0.030, 10.0, 40.0, 1.0),
    "foot": (30.0, 0.015, 5.0, 20.0, 0.5),
    "pelvis": (9.0, 0.050, 8.0, 15.0, 0.8),
}
"""Per segment: oscillation frequency (Hz), decay (s), rotation (° per body weight of impact), acceleration
(m/s² per body weight of impact), slow-wobble rms (°). The thigh's soft tissue is loosest, the foot's firmest
[Wakeling & Nigg 2001, J Appl Physiol 90:412; Forner-Cordero et al. 2008, Gait Posture 28:1]."""


def _soft_tissue(
    impacts: dict[str, FloatArray], fs: float, scale: float, places: tuple[str, ...], rng: np.random.Generator
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Soft-tissue motion of each sensor against its bone: rotation vectors (rad) and accelerations (m/s²).

    A slow wobble (band-limited to 3 Hz) plus, after every heel strike of the sensor's own leg (either leg
    for the pelvis), a damped oscillation about a direction drawn per sensor and trial.
    """
    n = next(iter(impacts.values())).size
    tau = np.arange(0.0, 0.4, 1.0 / fs)
    wobble: dict[str, FloatArray] = {}
    accel: dict[str, FloatArray] = {}
    for place in places:
        segment = place.rsplit("_", 1)[-1]
        freq_hz, decay_s, rot_deg, acc_gain, slow_deg = SOFT_TISSUE[segment]
        train = impacts["l"] + impacts["r"] if place == "pelvis" else impacts[place[0]]
        ring = np.convolve(train, np.exp(-tau / decay_s) * np.sin(2.0 * np.pi * freq_hz * tau))[:n]
        rot_axis, acc_axis = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 3)))
        slow = np.column_stack([_slow_noise(rng, n, fs, cutoff_hz=3.0, rms=slow_deg) for _ in range(3)])
        wobble[place] = np.deg2rad(scale * (slow + rot_deg * ring[:, None] * rot_axis))
        accel[place] = scale * acc_gain * ring[:, None] * acc_axis
    return wobble, accel


def _slow_noise(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float, rms: float) -> FloatArray:
    """Band-limited random signal with the given rms (postural sway, force fluctuations)."""
    sos = signal.butter(2, cutoff_hz, fs=fs, output="sos")
    raw = signal.sosfiltfilt(sos, rng.normal(size=n + 2000))[1000:-1000]
    return raw * (rms / max(float(np.std(raw)), 1e-12))


def subjects_for(config: SynthConfig) -> list[VirtualSubject]:
    """The virtual subjects ``config`` describes (without generating any trial)."""
    return [make_subject(config, i) for i in range(1, config.subjects + 1)]
