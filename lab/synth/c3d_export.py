"""The synthetic lab as an overground gait lab exporting C3D files, as a commercial optical system would.

Each virtual subject walks passes along a walkway of force plates (type 4, with calibration
matrices, corners and origins in the lab frame) in the +x or −x direction. The per-foot forces and
IMU signals come from the treadmill lab (:func:`forcecast.lab.synth.lab.walking_trial`); what is added here
is what an overground lab does to them:

- feet land where the walking speed puts them, so only some steps land cleanly on a plate; others
  are partly off a plate (the plate sees that share of the force) or share a plate with the other foot;
- heel and toe markers per foot at the point rate (100 Hz), with gaps written as 0 or NaN;
- IMU channels as analog channels with vendor labels (``DelsysTrignoBase 1: Sensor 4IM ACC Pitch``),
  vendor units (g, deg/s), held from sample to sample at the analog rate (sample-and-hold), and
  delayed by a per-session lag (a wireless-sensor delay of 0–110 ms);
- EMG channels that the mapping must not pick up;
- a quiet-standing trial with both feet on one plate, and a ``subjects.csv`` with body mass left blank
  (for all subjects, or as the synth config's ``unknown_mass_fraction`` says).

Next to the C3D files it writes the mapping file that imports them and, under ``_truth/``, the
source trials in format v1 with the true body mass and a ``truth.json`` of lags and plate layout,
for tests and accuracy figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import tomli_w
from numpy.typing import NDArray

from forcecast.edge.schema import GRAVITY_MPS2
from forcecast.lab.dataset.subjects import write_subjects
from forcecast.lab.dataset.trial import Trial, write_trial
from forcecast.lab.synth.config import SPEED_FACTORS, SynthConfig
from forcecast.lab.synth.lab import static_trial, subjects_for, walking_trial
from forcecast.lab.synth.population import VirtualSubject

FloatArray = NDArray[np.float64]
AXIS_WORDS = {"x": "Pitch", "y": "Roll", "z": "Yaw"}
KIND_WORDS = {"acc": "ACC", "gyr": "GYRO"}
VENDOR_UNITS = {"acc": ("g", 1.0 / GRAVITY_MPS2), "gyr": ("deg/s", 180.0 / np.pi)}
PLATE_NOISE_N = 0.3
TRUTH_DIR = "_truth"
"""Folder (inside the output) with the source trials in format v1 and ``truth.json``; importers skip ``_`` folders."""
HEEL_HEIGHT_M, TOE_HEIGHT_M = 0.05, 0.03


class SubjectTruth(TypedDict):
    """One virtual subject's truth: its session's IMU lag, its true body mass, each trial's walking direction."""

    lag_ms: float
    body_mass_kg: float
    trials: dict[str, dict[str, float]]


class OvergroundTruth(TypedDict):
    """What :func:`write_overground_dataset` writes to ``_truth/truth.json``."""

    plates: list[list[list[float]]]
    subjects: dict[str, SubjectTruth]


@dataclass(frozen=True)
class OvergroundConfig:
    """The overground lab around the synthetic walkers.

    Attributes
    ----------
    passes
        Walking passes per subject (speeds cycle through the synth config's ``speeds``).
    pass_s
        Length of each pass.
    plates
        Number of force plates in a row along x, starting at x = 0.
    plate_length_m, plate_width_m
        Plate size along and across the walkway.
    analog_rate_hz, point_rate_hz
        Analog (plates, IMU, EMG) and marker rates.
    lags_ms
        IMU lag per subject (cycled); empty draws one per subject: 0 ms for half the sessions,
        20–110 ms for the others.
    marker_gaps
        Gaps (3–15 frames) per marker per trial, written alternately as zeros and NaN.
    static
        Write a quiet-standing trial per subject (both feet on plate 2).
    mass_known
        Write every subject's body mass into the lab's ``subjects.csv`` (``True``), none (``False``:
        the importer must estimate them all), or follow each subject's ``mass_known`` of the synth
        config (``None``: the hard preset leaves a quarter blank).
    seed
        Seed of the overground randomness (start positions, lags, marker gaps).
    """

    passes: int = 4
    pass_s: float = 6.0
    plates: int = 5
    plate_length_m: float = 0.6
    plate_width_m: float = 0.4
    analog_rate_hz: float = 1000.0
    point_rate_hz: float = 100.0
    lags_ms: tuple[float, ...] = ()
    marker_gaps: int = 2
    static: bool = True
    mass_known: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.passes <= 100:
            raise ValueError(f"passes must be 1..100, got {self.passes}")
        if not 3.0 <= self.pass_s <= 30.0:
            raise ValueError(f"pass_s must be 3..30 s, got {self.pass_s}")
        if not 1 <= self.plates <= 12:
            raise ValueError(f"plates must be 1..12, got {self.plates}")
        if self.analog_rate_hz % self.point_rate_hz:
            raise ValueError("analog_rate_hz must be a whole multiple of point_rate_hz")
        if any(not 0.0 <= lag <= 250.0 for lag in self.lags_ms):
            raise ValueError(f"lags_ms must lie in 0..250 ms, got {list(self.lags_ms)}")


@dataclass(frozen=True)
class _Foot:
    """Where one foot is over a pass: heel and toe marker positions on the marker clock."""

    heel: FloatArray
    toe: FloatArray


def write_overground_dataset(
    out: Path,
    config: SynthConfig,
    lab: OvergroundConfig,
    progress: Callable[[Iterable[tuple[VirtualSubject, int]], int], Iterator[tuple[VirtualSubject, int]]] | None = None,
) -> OvergroundTruth:
    """Write raw C3D files, ``subjects.csv`` and ``mapping.toml`` to ``out`` (plus ``_truth/``).

    Returns
    -------
    dict
        The truth written to ``_truth/truth.json`` (lags, masses, plate layout, trials).
    """
    out.mkdir(parents=True, exist_ok=True)
    subjects = subjects_for(config)
    rng = np.random.default_rng([lab.seed, 0xC3D])
    truth: OvergroundTruth = {"plates": _plate_corners(lab).tolist(), "subjects": {}}
    truth_root = out / TRUTH_DIR
    truth_root.mkdir(parents=True, exist_ok=True)
    write_subjects(truth_root / "subjects.csv", [s.as_subject() for s in subjects])
    _write_lab_subjects(out / "subjects.csv", subjects, lab.mass_known)
    (out / "mapping.toml").write_text(mapping_toml(config.places))
    work = [(s, k) for s in subjects for k in range(lab.passes + (1 if lab.static else 0))]
    items: Iterable[tuple[VirtualSubject, int]] = progress(work, len(work)) if progress else work
    lags = {s.subject_id: _session_lag(lab, i, rng) for i, s in enumerate(subjects)}
    for subject, k in items:
        record = truth["subjects"].setdefault(
            subject.subject_id, {"lag_ms": lags[subject.subject_id], "body_mass_kg": subject.body_mass_kg, "trials": {}}
        )
        trial_rng = np.random.default_rng([lab.seed, int(subject.subject_id[1:]), k])
        if k == lab.passes:
            trial = static_trial(subject, replace(config, static_s=max(config.static_s, 4.0)))
            trial_id = "static01"
            feet, plate_force = _standing(trial, lab)
            direction = 1.0
        else:
            condition = config.speeds[k % len(config.speeds)]
            walker = replace(subject, seed=subject.seed + 7919 * (k + 1))
            trial = walking_trial(walker, condition, replace(config, duration_s=lab.pass_s))
            trial_id = f"walk{k + 1:02d}"
            direction = 1.0 if k % 2 == 0 else -1.0
            speed = subject.comfortable_speed_mps * SPEED_FACTORS[condition]
            start = (
                -float(trial_rng.uniform(1.6, 2.4))
                if direction > 0
                else lab.plates * lab.plate_length_m + float(trial_rng.uniform(1.6, 2.4))
            )
            feet, plate_force = _walk(trial, lab, speed, direction, start, subject.height_m, trial_rng)
        write_trial(truth_root, Trial(subject.subject_id, trial_id, trial.imu, trial.force), paired=True)
        path = out / subject.subject_id / f"{trial_id}.c3d"
        _write_c3d(path, trial, feet, plate_force, lab, lags[subject.subject_id] / 1000.0, trial_rng)
        record["trials"][trial_id] = {"direction": direction}
    (truth_root / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def mapping_toml(places: tuple[str, ...]) -> str:
    """The mapping file for the synthetic C3D files (sensor ``n`` is the ``n``-th place), written by tomli-w."""
    channels = [
        {
            "pattern": f"*Sensor {n}IM {KIND_WORDS[kind]} {AXIS_WORDS[axis]}",
            "channel": f"{place}_{kind}_{axis}",
            "unit": VENDOR_UNITS[kind][0],
        }
        for n, place in enumerate(places, start=1)
        for kind in ("acc", "gyr")
        for axis in "xyz"
    ]
    mapping = {
        "lab": {"up_axis": "z", "walking_direction": "auto", "force_coverage": "plates"},
        "markers": {"l_heel": "LHEE", "l_toe": "LTOE", "r_heel": "RHEE", "r_toe": "RTOE"},
        "trials": {"exclude": ["*ROM*"]},
        "channel": channels,
    }
    return "# forcecast mapping for the synthetic overground lab's C3D files\n" + tomli_w.dumps(mapping)


def _session_lag(lab: OvergroundConfig, index: int, rng: np.random.Generator) -> float:
    if lab.lags_ms:
        return float(lab.lags_ms[index % len(lab.lags_ms)])
    return 0.0 if rng.random() < 0.5 else float(np.round(rng.uniform(20.0, 110.0), 1))


def _plate_corners(lab: OvergroundConfig) -> FloatArray:
    """Corners ``(plates, 4, 3)`` in metres; corner order makes the plate's x axis the lab's y."""
    out = []
    half = lab.plate_width_m / 2.0
    for i in range(lab.plates):
        x0, x1 = i * lab.plate_length_m, (i + 1) * lab.plate_length_m
        out.append([[x1, half, 0.0], [x1, -half, 0.0], [x0, -half, 0.0], [x0, half, 0.0]])
    return np.asarray(out)


def _stances(force: FloatArray) -> list[tuple[int, int]]:
    loaded = np.concatenate([[False], force > 0.0, [False]]).astype(np.int8)
    edges = np.diff(loaded)
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _walk(
    trial: Trial,
    lab: OvergroundConfig,
    speed: float,
    direction: float,
    start: float,
    height_m: float,
    rng: np.random.Generator,
) -> tuple[dict[str, _Foot], list[FloatArray]]:
    """Foot markers and each plate's force (lab frame, with CoP) for one pass."""
    assert trial.force is not None
    t_force = trial.force.time_s
    t_marker = np.arange(0.0, t_force[-1] + 1e-9, 1.0 / lab.point_rate_hz)
    foot_length = 0.152 * height_m
    corners = _plate_corners(lab)
    plates = [np.zeros((t_force.size, 6)) for _ in range(lab.plates)]  # force xyz, cop weighted xyz
    feet = {}
    for side in ("l", "r"):
        v, ap, ml = (trial.force.column(f"{side}_grf_{a}") for a in ("v", "ap", "ml"))
        lateral = (0.06 if side == "l" else -0.06) * direction
        stances = _stances(v)
        mids = [0.5 * (t_force[a] + t_force[b - 1]) for a, b in stances]
        places = [start + direction * speed * m for m in mids]
        ys = [lateral + float(rng.normal(0.0, 0.012)) for _ in stances]
        heel, toe = _foot_track(t_marker, t_force, stances, places, ys, direction, foot_length)
        feet[side] = _Foot(heel, toe)
        medial_y = (-1.0 if side == "l" else 1.0) * direction  # medial direction in lab y
        for (a, b), x_mid, y in zip(stances, places, ys, strict=True):
            heel_x = x_mid - direction * 0.25 * foot_length
            toe_x = heel_x + direction * foot_length
            s = (t_force[a:b] - t_force[a]) / max(t_force[b - 1] - t_force[a], 1e-9)
            cop_x = heel_x + (toe_x - heel_x) * (0.1 + 0.8 * s)
            force = np.column_stack([direction * ap[a:b], medial_y * ml[a:b], v[a:b]])
            lo, hi = min(heel_x, toe_x), max(heel_x, toe_x)
            for p, plate in enumerate(plates):
                px0, px1 = corners[p, 2, 0], corners[p, 0, 0]
                overlap = max(0.0, min(hi, px1) - max(lo, px0)) / (hi - lo)
                inside_y = abs(y) <= lab.plate_width_m / 2.0
                if overlap <= 0.0 or not inside_y:
                    continue
                share = force * overlap
                plate[a:b, :3] += share
                plate[a:b, 3] += np.clip(cop_x, px0, px1) * share[:, 2]
                plate[a:b, 4] += y * share[:, 2]
    return feet, [_finish_plate(p) for p in plates]


def _foot_track(
    t_marker: FloatArray,
    t_force: FloatArray,
    stances: list[tuple[int, int]],
    places: list[float],
    ys: list[float],
    direction: float,
    foot_length: float,
) -> tuple[FloatArray, FloatArray]:
    """Heel and toe marker paths: still in stance (heel rising late), a smooth arc in swing."""
    heel = np.zeros((t_marker.size, 3))
    toe = np.zeros((t_marker.size, 3))
    key_t, key_x, key_y = [], [], []
    for (a, b), x, y in zip(stances, places, ys, strict=True):
        key_t += [t_force[a], t_force[b - 1]]
        key_x += [x, x]
        key_y += [y, y]
    key_t_arr, key_x_arr, key_y_arr = np.asarray(key_t), np.asarray(key_x), np.asarray(key_y)
    # Between stances (swing) a smooth step from one foothold to the next; before the first and
    # after the last the foot keeps its foothold.
    idx = np.clip(np.searchsorted(key_t_arr, t_marker, side="right") - 1, 0, key_t_arr.size - 1)
    nxt = np.clip(idx + 1, 0, key_t_arr.size - 1)
    span = np.maximum(key_t_arr[nxt] - key_t_arr[idx], 1e-9)
    u = np.clip((t_marker - key_t_arr[idx]) / span, 0.0, 1.0)
    in_swing = (idx % 2 == 1) & (nxt != idx)
    smooth = np.where(in_swing, 0.5 - 0.5 * np.cos(np.pi * u), 0.0)
    centre_x = key_x_arr[idx] + smooth * (key_x_arr[nxt] - key_x_arr[idx])
    centre_y = key_y_arr[idx] + smooth * (key_y_arr[nxt] - key_y_arr[idx])
    lift = np.where(in_swing, np.sin(np.pi * u), 0.0)
    late_stance = np.where(~in_swing & (idx % 2 == 0), np.clip((u - 0.6) / 0.4, 0.0, 1.0), 0.0) ** 2
    heel[:, 0] = centre_x - direction * 0.25 * foot_length
    toe[:, 0] = heel[:, 0] + direction * foot_length
    heel[:, 1] = toe[:, 1] = centre_y
    heel[:, 2] = HEEL_HEIGHT_M + 0.10 * lift + 0.08 * late_stance
    toe[:, 2] = TOE_HEIGHT_M + 0.05 * lift
    return heel, toe


def _standing(trial: Trial, lab: OvergroundConfig) -> tuple[dict[str, _Foot], list[FloatArray]]:
    """Quiet standing with both feet on plate 2 (or 1 if there is one plate)."""
    assert trial.force is not None
    t_force = trial.force.time_s
    t_marker = np.arange(0.0, t_force[-1] + 1e-9, 1.0 / lab.point_rate_hz)
    number = min(1, lab.plates - 1)
    centre_x = (number + 0.5) * lab.plate_length_m
    plates = [np.zeros((t_force.size, 6)) for _ in range(lab.plates)]
    feet = {}
    for side, y in (("l", 0.09), ("r", -0.09)):
        heel = np.tile([centre_x - 0.1, y, HEEL_HEIGHT_M], (t_marker.size, 1))
        toe = np.tile([centre_x + 0.14, y, TOE_HEIGHT_M], (t_marker.size, 1))
        feet[side] = _Foot(heel, toe)
        v = trial.force.column(f"{side}_grf_v")
        plates[number][:, 2] += v
        plates[number][:, 3] += centre_x * v
        plates[number][:, 4] += y * v
    return feet, [_finish_plate(p) for p in plates]


def _finish_plate(accumulated: FloatArray) -> FloatArray:
    """Force (3) and CoP (3) per sample from summed force and Fz-weighted CoP."""
    out = np.zeros_like(accumulated)
    out[:, :3] = accumulated[:, :3]
    fz = accumulated[:, 2]
    loaded = fz > 1e-6
    out[loaded, 3] = accumulated[loaded, 3] / fz[loaded]
    out[loaded, 4] = accumulated[loaded, 4] / fz[loaded]
    return out


def _write_lab_subjects(path: Path, subjects: list[VirtualSubject], mass_known: bool | None) -> None:
    lines = ["subject_id,body_mass_kg,height_m,hka_deg,affected_side,group"]
    for s in subjects:
        row = s.as_subject()
        known = getattr(s, "mass_known", True) if mass_known is None else mass_known
        mass = f"{row.body_mass_kg:.1f}" if known else ""
        hka = "" if row.hka_deg is None else f"{row.hka_deg:.1f}"
        lines.append(f"{row.subject_id},{mass},{row.height_m:.3f},{hka},{row.affected_side},{s.group}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _write_c3d(
    path: Path,
    trial: Trial,
    feet: dict[str, _Foot],
    plates: list[FloatArray],
    lab: OvergroundConfig,
    lag_s: float,
    rng: np.random.Generator,
) -> None:
    import ezc3d

    assert trial.force is not None
    ratio = int(lab.analog_rate_hz // lab.point_rate_hz)
    n_frames = feet["l"].heel.shape[0]
    n_analog = n_frames * ratio
    t_analog = np.arange(n_analog) / lab.analog_rate_hz
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = np.array([lab.point_rate_hz])
    labels = ("LHEE", "LTOE", "RHEE", "RTOE")
    c3d["parameters"]["POINT"]["LABELS"]["value"] = labels
    c3d.add_parameter("POINT", "UNITS", ["mm"])
    points = np.ones((4, 4, n_frames))
    for j, (side, part) in enumerate((("l", "heel"), ("l", "toe"), ("r", "heel"), ("r", "toe"))):
        xyz = getattr(feet[side], part) * 1000.0
        for g in range(lab.marker_gaps):
            start = int(rng.integers(0, max(1, n_frames - 16)))
            stop = start + int(rng.integers(3, 16))
            xyz[start:stop] = 0.0 if g % 2 == 0 else np.nan
        points[:3, j, :] = xyz.T
    c3d["data"]["points"] = points

    analog_labels: list[str] = []
    channels: list[FloatArray] = []
    corners = _plate_corners(lab)
    cal = np.eye(6) + np.diag([0.01, -0.01, 0.0, 0.0, 0.0], 1) + np.diag([0.005, 0.0, -0.004, 0.0, 0.0], -1)
    for p, plate in enumerate(plates):
        force = np.vstack([np.interp(t_analog, trial.force.time_s, plate[:, i]) for i in range(6)]).T
        force[:, :3] += rng.normal(0.0, PLATE_NOISE_N, (n_analog, 3))
        raw = _plate_raw(force, corners[p] * 1000.0, cal)
        for i, name in enumerate(("Fx", "Fy", "Fz", "Mx", "My", "Mz")):
            analog_labels.append(f"Force.{name}{p + 1}")
            channels.append(raw[:, i])
    imu = trial.imu
    for n, place in enumerate(dict.fromkeys(c.rsplit("_", 2)[0] for c in imu.columns), start=1):
        for kind in ("acc", "gyr"):
            unit_factor = VENDOR_UNITS[kind][1]
            for axis in "xyz":
                values = imu.column(f"{place}_{kind}_{axis}") * unit_factor
                index = np.searchsorted(imu.time_s + lag_s, t_analog, side="right") - 1
                analog_labels.append(f"DelsysTrignoBase 1: Sensor {n}IM {KIND_WORDS[kind]} {AXIS_WORDS[axis]}")
                channels.append(values[np.clip(index, 0, values.size - 1)])
        analog_labels.append(f"DelsysTrignoBase 1: Sensor {n}EMG{n}")
        channels.append(rng.normal(0.0, 2e-5, n_analog))
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = np.array([lab.analog_rate_hz])
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(analog_labels)
    c3d.add_parameter("ANALOG", "UNITS", [_unit(label) for label in analog_labels])
    c3d["data"]["analogs"] = np.asarray(channels)[None, :, :]
    _int_parameter(c3d, "USED", np.array([len(plates)]))
    _int_parameter(c3d, "TYPE", np.full(len(plates), 4))
    _int_parameter(c3d, "ZERO", np.array([1, 0]))
    _int_parameter(c3d, "CHANNEL", np.arange(1, 6 * len(plates) + 1).reshape(len(plates), 6).T)
    c3d.add_parameter("FORCE_PLATFORM", "CORNERS", np.transpose(corners * 1000.0, (2, 1, 0)))
    c3d.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, len(plates))))
    c3d.add_parameter("FORCE_PLATFORM", "CAL_MATRIX", np.repeat(cal[:, :, None], len(plates), axis=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))


def _plate_raw(force_cop: FloatArray, corners_mm: FloatArray, cal: FloatArray) -> FloatArray:
    """Raw (pre-calibration) channels of a type-4 plate from lab force (N) and CoP (m)."""
    x_axis = corners_mm[0] - corners_mm[1]
    y_axis = corners_mm[0] - corners_mm[3]
    x_axis, y_axis = x_axis / np.linalg.norm(x_axis), y_axis / np.linalg.norm(y_axis)
    rotation = np.column_stack([x_axis, y_axis, np.cross(x_axis, y_axis)])
    force_plate = force_cop[:, :3] @ rotation
    arm = (force_cop[:, 3:] * 1000.0 - corners_mm.mean(axis=0)) @ rotation
    arm[:, 2] = 0.0
    loaded = force_cop[:, 2] > 1e-6
    arm[~loaded] = 0.0
    moment = np.cross(arm, force_plate)
    return np.linalg.solve(cal, np.hstack([force_plate, moment]).T).T


def _int_parameter(c3d: Any, name: str, values: NDArray[np.int64]) -> None:  # an ezc3d.c3d (untyped)
    """Add an integer FORCE_PLATFORM parameter (ezc3d's add_parameter would store floats)."""
    import ezc3d

    parameter = ezc3d.ezc3d.Parameter(name, "")
    parameter.set(ezc3d.ezc3d.VecInt([int(v) for v in values.reshape(-1, order="F")]), list(values.shape))
    c3d._storage["parameters"].add_parameter("FORCE_PLATFORM", parameter)


def _unit(label: str) -> str:
    if label.startswith("Force.F"):
        return "N"
    if label.startswith("Force.M"):
        return "Nmm"
    if " ACC " in label:
        return "g"
    if " GYRO " in label:
        return "deg/s"
    return "V"
