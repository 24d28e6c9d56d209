"""``forcecast data import``: a folder of lab files -> a dataset of format v1.

Input layout: ``SRC/subjects.csv`` (``subject_id, body_mass_kg, height_m, hka_deg, affected_side``;
mass and HKA may be blank) and ``SRC/<subject_id>/<trial>.c3d|.mot|.sto|.csv`` (folders starting
with ``_`` or ``.`` are ignored). Per trial: read the file, find the walking direction, find
swing from the foot markers (else the gyroscopes), give each clean plate contact to its foot,
estimate and correct the IMU lag, and write each leg's force (known, 0 N in swing, NaN unknown) with
the IMU as an ``.imu``/``.force`` pair.

Trials without walking: quiet standing (static) weighs the subject and, unless ``keep_static`` is off
(``--skip-static``), is kept as an IMU-only trial (``<trial_id>.imu.csv``, no force file) because the
``segment_v1`` alignment takes each sensor's up axis from standing; it is never a training window.
Range-of-motion and other non-walking trials are skipped (their rotations would spoil the alignment's
medio-lateral axis); :mod:`forcecast.lab.dataset.importers.standing` tells the two apart from the IMU.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from forcecast.edge.errors import OutputExistsError
from forcecast.edge.schema import AFFECTED_SIDES, all_force_columns
from forcecast.lab.dataset.importers import contacts as contact_rules
from forcecast.lab.dataset.importers import mass as mass_rules
from forcecast.lab.dataset.importers.c3d import C3DError, read_c3d
from forcecast.lab.dataset.importers.csv_table import read_csv_table, table_recording
from forcecast.lab.dataset.importers.gait import swing_from_gyro, swing_from_markers, walking_direction
from forcecast.lab.dataset.importers.mapping import Mapping, MappingError
from forcecast.lab.dataset.importers.opensim import TableFormatError, read_storage
from forcecast.lab.dataset.importers.recording import Recording
from forcecast.lab.dataset.importers.standing import StandingCheck, check_quiet_standing
from forcecast.lab.dataset.importers.sync import combine_scores, force_onsets, lag_scores, shift_imu
from forcecast.lab.dataset.problems import DatasetError, Problem
from forcecast.lab.dataset.subjects import MASS_RANGE_KG, SUBJECTS_FILE, Subject, write_subjects
from forcecast.lab.dataset.trial import TRIALS_DIR, Stream, Trial, write_trial

SUFFIXES = (".c3d", ".mot", ".sto", ".csv")
REPORT_FILE = "import.json"
MIN_OWN_LAG_CONTACTS = 4
"""A trial with fewer clean contacts takes the lag pooled over its subject's trials (one session)."""
MASS_SOURCE_COLUMN = "body_mass_source"
"""Extra column of ``subjects.csv``: ``measured``, ``estimated_standing`` or ``estimated_strides``."""
IMPORTED, STATIC_KEPT, STATIC, SKIPPED = "imported", "static_kept", "static", "skipped"
"""Trial outcomes: a walking trial written; a quiet-standing trial written IMU-only for the sensor alignment;
a static trial not written (``--skip-static``, not quiet, no IMU); any other file not written."""
WRITTEN = (IMPORTED, STATIC_KEPT)
KEPT_FOR_ALIGNMENT = "static: kept for sensor alignment (IMU only, no force: never a training window)"

Progress = Callable[[Iterator[tuple[str, Path]], int], Iterator[tuple[str, Path]]]


@dataclass
class TrialOutcome:
    """What happened to one lab file (``status``: ``imported``, ``static_kept``, ``static`` or ``skipped``)."""

    subject_id: str
    source: str
    trial_id: str = ""
    status: str = "imported"
    reason: str = ""
    direction: str = ""
    lag: dict[str, float | int | None] = field(default_factory=dict)
    lag_applied_ms: float | None = None
    clean_contacts: dict[str, int] = field(default_factory=dict)
    unclean_contacts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """The whole import: each file's outcome and each subject's body mass."""

    out: Path
    trials: list[TrialOutcome]
    subjects: list[dict[str, object]]

    @property
    def imported(self) -> list[TrialOutcome]:
        """Walking trials written to the dataset."""
        return [t for t in self.trials if t.status == IMPORTED]

    @property
    def static_kept(self) -> list[TrialOutcome]:
        """Quiet-standing trials written IMU-only, for the sensor alignment."""
        return [t for t in self.trials if t.status == STATIC_KEPT]

    def as_dict(self) -> dict[str, object]:
        """Plain data (for ``--json`` and ``import.json``)."""
        return {
            "out": str(self.out),
            "imported": len(self.imported),
            "static_kept": len(self.static_kept),
            "skipped": len(self.trials) - len(self.imported) - len(self.static_kept),
            "trials": [asdict(t) for t in self.trials],
            "subjects": self.subjects,
        }


@dataclass
class _SubjectEvidence:
    standing: list[mass_rules.MassEstimate] = field(default_factory=list)
    contact_weights_n: list[float] = field(default_factory=list)


def import_lab_data(
    src: Path,
    mapping: Mapping,
    out: Path,
    imu_lag_ms: float | None = None,
    progress: Progress | None = None,
    keep_static: bool = True,
) -> ImportReport:
    """Import every lab file under ``src`` into the dataset folder ``out``.

    Parameters
    ----------
    src
        Folder with ``subjects.csv`` and one folder of lab files per subject.
    mapping
        The checked mapping file.
    out
        Dataset folder to write (created; must not be ``src``).
    imu_lag_ms
        ``None`` estimates each trial's IMU lag and corrects it (falling back to the subject's
        other trials, then to 0, when a trial has no usable contact); a number applies that lag.
    progress
        Optional wrapper around the file iterator.
    keep_static
        Keep quiet-standing trials as IMU-only trials (for the ``segment_v1`` alignment); ``False``
        (``--skip-static``) only weighs the subject with them.

    Raises
    ------
    DatasetError
        If ``subjects.csv`` is missing or wrong, or nothing could be imported.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise NotADirectoryError(f"{src}: not a folder")
    if out.resolve() == src.resolve():
        raise FileExistsError(f"--out must differ from the source folder ({out})")
    lab_subjects = read_lab_subjects(src / SUBJECTS_FILE)
    _prepare_out(out)
    files = sorted(
        (d.name, f)
        for d in src.iterdir()
        if d.is_dir() and not d.name.startswith(("_", "."))
        for f in d.iterdir()
        if f.suffix.lower() in SUFFIXES
    )
    outcomes: list[TrialOutcome] = []
    evidence: dict[str, _SubjectEvidence] = {}
    used_ids: set[tuple[str, str]] = set()
    out.mkdir(parents=True, exist_ok=True)
    pending: list[_Pending] = []
    statics: list[_Static] = []
    items: Iterator[tuple[str, Path]] = iter(files)
    for subject_id, path in progress(items, len(files)) if progress else items:
        if (pending or statics) and (pending + statics)[-1].outcome.subject_id != subject_id:
            session_lag_s = _finish_subject(pending, statics, mapping, imu_lag_ms, evidence, out, used_ids)
            _write_statics(statics, pending, keep_static, session_lag_s, out, used_ids)
            pending, statics = [], []
        outcome = TrialOutcome(subject_id, str(path.relative_to(src)))
        outcomes.append(outcome)
        if subject_id not in lab_subjects:
            outcome.status, outcome.reason = "skipped", f"subject {subject_id!r} is not listed in {SUBJECTS_FILE}"
            continue
        reason = mapping.trials.wanted(path.name)
        if reason is not None:
            outcome.status, outcome.reason = "skipped", reason
            continue
        subject_evidence = evidence.setdefault(subject_id, _SubjectEvidence())
        try:
            recording = read_recording(path, mapping)
        except (C3DError, TableFormatError, MappingError) as exc:
            outcome.status, outcome.reason = "skipped", str(exc)
            continue
        except (ValueError, IndexError, OSError) as exc:  # damage the readers did not foresee: skip, say so
            outcome.status, outcome.reason = "skipped", f"cannot be read: {type(exc).__name__}: {exc}"
            continue
        outcome.notes += recording.notes
        try:
            prepared = _prepare_trial(recording, mapping, outcome, subject_evidence)
        except ValueError as exc:  # e.g. markers or plates too damaged to find gait events
            outcome.status, outcome.reason = "skipped", f"cannot be analysed: {exc}"
            continue
        if prepared is not None:
            prepared.stem = path.stem
            if isinstance(prepared, _Static):
                statics.append(prepared)
            else:
                pending.append(prepared)
    if pending or statics:
        session_lag_s = _finish_subject(pending, statics, mapping, imu_lag_ms, evidence, out, used_ids)
        _write_statics(statics, pending, keep_static, session_lag_s, out, used_ids)
    subjects = _write_subjects(out, lab_subjects, outcomes, evidence)
    report = ImportReport(out, outcomes, subjects)
    (out / REPORT_FILE).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.imported:
        reasons = Counter(t.reason for t in outcomes)
        raise DatasetError(
            [Problem(str(src), f"no trial imported; {n} × {reason}") for reason, n in reasons.most_common(5)]
            or [Problem(str(src), f"no lab files ({', '.join(SUFFIXES)}) in subject folders")]
        )
    return report


def _prepare_out(out: Path) -> None:
    """Refuse a folder with other content; clear a previous import so no stale trial survives."""
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / REPORT_FILE).is_file():
        raise OutputExistsError(
            f"--out {out} is not empty and holds no previous import ({REPORT_FILE}): choose a new folder"
        )
    shutil.rmtree(out / TRIALS_DIR, ignore_errors=True)
    for name in (SUBJECTS_FILE, REPORT_FILE):
        (out / name).unlink(missing_ok=True)


def read_recording(path: Path, mapping: Mapping) -> Recording:
    """Read one lab file by its suffix (C3D, OpenSim ``.mot``/``.sto``, CSV)."""
    suffix = path.suffix.lower()
    if suffix == ".c3d":
        return read_c3d(path, mapping)
    if suffix in (".mot", ".sto"):
        return table_recording(read_storage(path), mapping, time_label="time")
    return table_recording(read_csv_table(path), mapping)


@dataclass
class _Pending:
    """A walking trial read and analysed, waiting for its subject's lag estimate."""

    outcome: TrialOutcome
    recording: Recording
    direction: np.ndarray
    swing_markers: dict[str, np.ndarray | None]
    contacts: list[contact_rules.Contact]
    lag_rows: list[np.ndarray]
    standing: StandingCheck | None = None
    stem: str = ""


@dataclass
class _Static:
    """A trial without walking, waiting for its subject's walking trials to be written."""

    outcome: TrialOutcome
    recording: Recording
    standing: StandingCheck | None
    stem: str = ""


def _prepare_trial(
    recording: Recording, mapping: Mapping, outcome: TrialOutcome, evidence: _SubjectEvidence
) -> _Pending | _Static | None:
    """Direction, swing from markers, clean contacts and the lag evidence of one trial.

    Returns a :class:`_Static` for a trial without walking direction whose feet do not travel or whose
    IMU shows quiet standing (it weighs the subject), and ``None`` for a trial that cannot be used (the
    outcome says why). A trial with a direction (e.g. set in the mapping) is analysed as walking; if it
    then has no known force and its IMU shows quiet standing, :func:`_finish_subject` makes it static.
    """
    lab = mapping.lab
    direction, how = walking_direction(recording, lab.walking_direction, lab.up_axis)
    standing = check_quiet_standing(recording.imu) if recording.imu is not None else None
    quiet = standing is not None and standing.quiet
    if direction is None:
        is_static = how.startswith("static") or quiet
        outcome.status = STATIC if is_static else SKIPPED
        outcome.reason = (
            how if how.startswith("static") or not quiet else f"static: the IMU shows quiet standing ({how})"
        )
        if is_static:
            _weigh(recording, outcome, evidence)
        return _Static(outcome, recording, standing) if is_static else None
    outcome.direction = f"{how}: ({direction[0]:+.2f}, {direction[1]:+.2f})"
    if recording.imu is None:
        outcome.status, outcome.reason = "skipped", "no IMU channels mapped: a format v1 trial needs IMU data"
        return None
    if recording.force_time_s.size == 0:
        outcome.status, outcome.reason = "skipped", "no force data (no plates, no mapped force columns)"
        return None
    swing_markers = {s: swing_from_markers(recording, s, direction) for s in ("l", "r")}
    found = contact_rules.assign_contacts(recording, swing_markers, lab.force_threshold_n, lab.plate_margin_mm / 1000.0)
    outcome.clean_contacts = {s: sum(c.side == s for c in found) for s in ("l", "r")}
    outcome.unclean_contacts = dict(Counter(c.reason for c in found if c.side is None))
    rows = lag_scores(recording.imu, _onsets(recording, found, lab.force_threshold_n))
    outcome.lag = combine_scores(rows).as_dict()
    return _Pending(outcome, recording, direction, swing_markers, found, rows, standing)


def _weigh(recording: Recording, outcome: TrialOutcome, evidence: _SubjectEvidence) -> None:
    """Body mass evidence from quiet standing on the plates, if the trial has it."""
    weight = _standing_mass(recording)
    if weight is not None:
        evidence.standing.append(weight)
        outcome.notes.append(f"quiet standing on the plates: {weight.mass_kg:.1f} kg")


def _finish_subject(
    pending: list[_Pending],
    statics: list[_Static],
    mapping: Mapping,
    imu_lag_ms: float | None,
    evidence: dict[str, _SubjectEvidence],
    out: Path,
    used_ids: set[tuple[str, str]],
) -> float:
    """Correct each trial's lag (its own estimate, or the subject's pooled one) and write the trials.

    A trial without any known force whose IMU shows quiet standing joins ``statics``. Returns the
    session's lag in seconds (``imu_lag_ms``, else the pooled estimate, else 0), for its static trials.
    """
    pooled = combine_scores([row for p in pending for row in p.lag_rows])
    for item in pending:
        outcome = item.outcome
        own = combine_scores(item.lag_rows)
        if imu_lag_ms is not None:
            lag_s = imu_lag_ms / 1000.0
        elif own.contacts >= MIN_OWN_LAG_CONTACTS:
            lag_s = own.lag_s
        elif pooled.ok:
            lag_s = pooled.lag_s
            outcome.notes.append(
                f"IMU lag from all {pooled.contacts} contacts of the subject's trials ({own.contacts} in this one)"
            )
        else:
            lag_s = 0.0
            outcome.notes.append(
                "IMU lag not estimable (no clean contact with a foot/shank accelerometer): not corrected"
            )
        outcome.lag_applied_ms = round(1000.0 * lag_s, 1)
        subject_evidence = evidence.setdefault(outcome.subject_id, _SubjectEvidence())
        trial = _finish_trial(item, mapping, lag_s, subject_evidence)
        if trial is None:
            if item.standing is not None and item.standing.quiet:
                outcome.status = STATIC
                outcome.reason = "static: no force known and the IMU shows quiet standing"
                _weigh(item.recording, outcome, subject_evidence)
                statics.append(_Static(outcome, item.recording, item.standing, item.stem))
            continue
        trial_id = _trial_id(item.stem, outcome.subject_id, used_ids)
        outcome.trial_id = trial_id
        write_trial(out, Trial(outcome.subject_id, trial_id, trial.imu, trial.force), paired=True)
    if imu_lag_ms is not None:
        return imu_lag_ms / 1000.0
    return pooled.lag_s if pooled.ok else 0.0


def _write_statics(
    statics: list[_Static],
    pending: list[_Pending],
    keep: bool,
    lag_s: float,
    out: Path,
    used_ids: set[tuple[str, str]],
) -> None:
    """Write a subject's quiet-standing trials IMU-only (after its walking trials, which they serve).

    Their IMU clock is moved by the session's lag ``lag_s`` like the walking trials' (no contact of their own).
    """
    walking_written = any(p.outcome.status == IMPORTED for p in pending)
    for item in statics:
        outcome, standing, imu = item.outcome, item.standing, item.recording.imu
        why_not = _why_static_not_kept(keep, standing, walking_written)
        if why_not or imu is None or standing is None:
            outcome.reason += f"; not kept for sensor alignment: {why_not}"
            continue
        trial_id = _trial_id(item.stem, outcome.subject_id, used_ids)
        write_trial(out, Trial(outcome.subject_id, trial_id, shift_imu(imu, lag_s), None), paired=True)
        outcome.trial_id, outcome.status = trial_id, STATIC_KEPT
        outcome.lag_applied_ms = round(1000.0 * lag_s, 1)
        outcome.notes.append(outcome.reason)  # why it was found static
        outcome.reason = f"{KEPT_FOR_ALIGNMENT}; {standing.describe()}"


def _why_static_not_kept(keep: bool, standing: StandingCheck | None, walking_written: bool) -> str:
    """Why a static trial is not kept for the sensor alignment (empty: it is kept)."""
    if not keep:
        return "--skip-static"
    if standing is None:
        return "no IMU channels mapped"
    if not standing.quiet:
        return standing.reason
    if not walking_written:
        return "no walking trial of this subject was imported (nothing to align)"
    return ""


def _finish_trial(item: _Pending, mapping: Mapping, lag_s: float, evidence: _SubjectEvidence) -> Trial | None:
    lab, recording = mapping.lab, item.recording
    assert recording.imu is not None
    imu = shift_imu(recording.imu, lag_s)
    swing_imu = {s: swing_from_gyro(imu, s) for s in ("l", "r")}
    shifted = replace(recording, imu=imu)
    swing = contact_rules.swing_on_force_time(shifted, item.swing_markers, swing_imu)
    legs = contact_rules.leg_forces(
        shifted, item.contacts, swing, item.direction, lab.force_threshold_n, lab.force_coverage == "everywhere"
    )
    _collect_contact_weights(shifted, item.contacts, swing, evidence)
    if lab.force_coverage == "everywhere":
        _collect_foot_force_weights(shifted, swing, evidence, lab.force_threshold_n)
    force = Stream(recording.force_time_s, all_force_columns(), np.hstack([legs["l"], legs["r"]]), recording.source)
    if not np.isfinite(force.values[:, [0, 3]]).any():
        item.outcome.status = "skipped"
        item.outcome.reason = "no sample of either leg's force is known (no clean contact, no swing)"
        return None
    return Trial("", "", imu, force)


def _onsets(recording: Recording, found: list[contact_rules.Contact], threshold_n: float) -> dict[str, np.ndarray]:
    t = recording.force_time_s
    onsets: dict[str, list[float]] = {"l": [], "r": []}
    rate = 1.0 / float(np.median(np.diff(t)))
    lead = round(0.1 * rate)
    for contact in found:
        if contact.side is None:
            continue
        plate = next(p for p in recording.plates if p.number == contact.plate)
        lo = max(0, contact.start - lead)
        times = force_onsets(t[lo : contact.stop], plate.force_n[lo : contact.stop, 2], threshold_n)
        onsets[contact.side] += list(times[:1])
    for side, lab_force in recording.foot_force.items():
        onsets[side] += list(force_onsets(t, lab_force[:, 2], threshold_n))
    return {s: np.asarray(v) for s, v in onsets.items() if v}


def _standing_mass(recording: Recording) -> mass_rules.MassEstimate | None:
    forces = [p.force_n[:, 2] for p in recording.plates] + [f[:, 2] for f in recording.foot_force.values()]
    if not forces or recording.force_time_s.size < 2:
        return None
    return mass_rules.from_standing(recording.force_time_s, np.sum(forces, axis=0))


def _collect_contact_weights(
    recording: Recording,
    found: list[contact_rules.Contact],
    swing: dict[str, np.ndarray],
    evidence: _SubjectEvidence,
) -> None:
    t = recording.force_time_s
    for contact in found:
        if contact.side is None or contact.side not in swing:
            continue
        stride = mass_rules.stride_time_s(t, swing[contact.side])
        if stride is None:
            continue
        plate = next(p for p in recording.plates if p.number == contact.plate)
        v = plate.force_n[contact.start : contact.stop, 2]
        evidence.contact_weights_n.append(mass_rules.contact_body_weight(t[contact.start : contact.stop], v, stride))


def _collect_foot_force_weights(
    recording: Recording, swing: dict[str, np.ndarray], evidence: _SubjectEvidence, threshold_n: float
) -> None:
    from forcecast.lab.dataset.importers.gait import runs

    t = recording.force_time_s
    for side, lab_force in recording.foot_force.items():
        if side not in swing:
            continue
        stride = mass_rules.stride_time_s(t, swing[side])
        if stride is None:
            continue
        starts, stops = runs(lab_force[:, 2] > threshold_n)
        for a, b in list(zip(starts, stops, strict=True))[1:-1]:  # whole stances only
            evidence.contact_weights_n.append(mass_rules.contact_body_weight(t[a:b], lab_force[a:b, 2], stride))


def _trial_id(stem: str, subject_id: str, used: set[tuple[str, str]]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "trial"
    trial_id, n = base, 2
    while (subject_id, trial_id) in used:
        trial_id, n = f"{base}_{n}", n + 1
    used.add((subject_id, trial_id))
    return trial_id


def _write_subjects(
    out: Path,
    lab_subjects: dict[str, dict[str, str]],
    outcomes: list[TrialOutcome],
    evidence: dict[str, _SubjectEvidence],
) -> list[dict[str, object]]:
    with_trials = sorted({t.subject_id for t in outcomes if t.status == IMPORTED})
    rows: list[Subject] = []
    summary: list[dict[str, object]] = []
    for subject_id in with_trials:
        raw = lab_subjects[subject_id]
        info: dict[str, object] = {"subject_id": subject_id}
        mass_text = raw.get("body_mass_kg", "").strip()
        if mass_text:
            mass, source = float(mass_text), "measured"
        else:
            found = evidence.get(subject_id, _SubjectEvidence())
            estimate = (
                max(found.standing, key=lambda e: e.support)
                if found.standing
                else mass_rules.from_strides(found.contact_weights_n)
            )
            if estimate is None or not MASS_RANGE_KG[0] <= estimate.mass_kg <= MASS_RANGE_KG[1]:
                shutil.rmtree(out / TRIALS_DIR / subject_id, ignore_errors=True)
                for t in outcomes:
                    if t.subject_id == subject_id and t.status in WRITTEN:
                        t.status, t.reason = SKIPPED, "body mass unknown and not estimable from force"
                info.update({"body_mass_kg": None, MASS_SOURCE_COLUMN: "unknown"})
                summary.append(info)
                continue
            mass, source = estimate.mass_kg, estimate.method
            info["mass_support"] = estimate.support
        hka = raw.get("hka_deg", "").strip()
        extra = {
            k: v
            for k, v in raw.items()
            if k not in ("subject_id", "body_mass_kg", "height_m", "hka_deg", "affected_side")
        }
        extra[MASS_SOURCE_COLUMN] = source
        rows.append(
            Subject(
                subject_id,
                round(mass, 1),
                float(raw["height_m"]),
                float(hka) if hka else None,
                raw["affected_side"].strip(),
                extra,
            )
        )
        info.update({"body_mass_kg": round(mass, 1), MASS_SOURCE_COLUMN: source})
        summary.append(info)
    write_subjects(out / SUBJECTS_FILE, rows)
    return summary


def read_lab_subjects(path: Path) -> dict[str, dict[str, str]]:
    """Read the lab's ``subjects.csv`` (body mass and HKA may be blank), checking every value.

    Raises
    ------
    DatasetError
        Naming the file, row and column of each problem.
    """
    name = str(path)
    if not path.is_file():
        raise DatasetError(
            [
                Problem(
                    name,
                    "file not found: list subject_id, body_mass_kg (blank if unknown), "
                    "height_m, hka_deg (blank if unknown), affected_side",
                )
            ]
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("subject_id", "height_m", "affected_side") if c not in table.columns]
    if missing:
        raise DatasetError([Problem(name, f"missing required column(s): {', '.join(missing)}")])
    problems: list[Problem] = []
    out: dict[str, dict[str, str]] = {}
    for row, raw in enumerate(table.to_dict("records"), start=1):
        subject_id = raw["subject_id"].strip()
        for column in ("height_m", "body_mass_kg", "hka_deg"):
            text = str(raw.get(column, "")).strip()
            if column != "height_m" and not text:
                continue
            try:
                float(text)
            except ValueError:
                problems.append(Problem(name, f"not a number: {text!r}", row, column))
        if raw["affected_side"].strip() not in AFFECTED_SIDES:
            problems.append(
                Problem(
                    name, f"{raw['affected_side']!r} is not one of {', '.join(AFFECTED_SIDES)}", row, "affected_side"
                )
            )
        if not subject_id or subject_id in out:
            problems.append(Problem(name, f"empty or duplicate subject_id {subject_id!r}", row, "subject_id"))
        out[subject_id] = {str(k): str(v) for k, v in raw.items()}
    if problems:
        raise DatasetError(problems)
    return out


def render_report(report: ImportReport) -> str:
    """Human summary: trials imported, kept static and skipped (with reasons), lag, clean contacts, body mass."""
    lines = []
    for t in report.trials:
        if t.status == STATIC_KEPT:
            lines.append(
                f"  {t.source:<32} -> {t.subject_id}/{t.trial_id}: {t.reason}; "
                f"IMU lag applied {t.lag_applied_ms:+.0f} ms (the session's)"
            )
        elif t.status == IMPORTED:
            lag = t.lag.get("lag_ms")
            spread = t.lag.get("spread_ms")
            estimate = "not estimable" if lag is None else f"{lag:+.0f} ms" + (f" ±{spread:.0f}" if spread else "")
            unclean = sum(t.unclean_contacts.values())
            lines.append(
                f"  {t.source:<32} -> {t.subject_id}/{t.trial_id}: clean contacts l {t.clean_contacts.get('l', 0)} "
                f"r {t.clean_contacts.get('r', 0)}, unclean {unclean}; IMU lag {estimate} over "
                f"{t.lag.get('contacts', 0)} contact(s), applied {t.lag_applied_ms:+.0f} ms"
            )
        else:
            lines.append(f"  {t.source:<32} {t.reason if t.status == STATIC else t.status + ': ' + t.reason}")
        lines += [f"      note: {note}" for note in t.notes if not note.startswith("IMU channels were")]
    for s in report.subjects:
        mass = s.get("body_mass_kg")
        lines.append(
            f"  subject {s['subject_id']}: body mass "
            + (f"{mass:.1f} kg ({s[MASS_SOURCE_COLUMN]})" if mass is not None else "unknown: its trials are left out")
        )
    n_imported, n_static = len(report.imported), len(report.static_kept)
    lines.append(
        f"imported {n_imported} walking trial(s), kept {n_static} static trial(s) for sensor alignment (IMU only), "
        f"skipped {len(report.trials) - n_imported - n_static}; wrote {report.out} "
        f"(details in {report.out / REPORT_FILE})"
    )
    return "\n".join(lines)
