"""The device pipeline, from sensor chunks to step records.

Source → quality guard → calibration → anti-aliased resampling → per-leg inference → step
detection → per-step metrics → store, listeners and biofeedback.

Everything after the source runs in the caller's thread, chunk by chunk; nothing here blocks except
the source itself (a live sensor or a paced replay) and the store's commit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.dsp.resample import CausalResampler
from forcecast.edge.dsp.segment_alignment import SegmentAlignment, StreamAligner, settings_for
from forcecast.edge.features import channel_sources, static_features
from forcecast.edge.records import EventRecord, EventType, Record, RecordKind, StepRecord, SummaryRecord
from forcecast.edge.runtime.calibration import Calibration, CalibrationError, estimate, identity
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig
from forcecast.edge.runtime.feedback import Cue, FeedbackGate
from forcecast.edge.runtime.inference import LegPredictor, Model, Streaming
from forcecast.edge.runtime.patient_state import PatientState
from forcecast.edge.runtime.quality import QualityEvent, StreamGuard
from forcecast.edge.runtime.step_metrics import step_metrics
from forcecast.edge.runtime.steps import StepDetector
from forcecast.edge.runtime.storage_guard import Sink, StorageGuard
from forcecast.edge.schema import GRAVITY_MPS2, SENSOR_AXES, SENSOR_KINDS, imu_column
from forcecast.edge.sources.base import Source

FloatArray = NDArray[np.float64]
HISTORY_S = 8.0
"""Resampled input kept to prime a model that takes over while running (longer than any model window)."""
Listener = Callable[[str, dict[str, Any]], None]
"""Called with a record kind (``step``, ``summary``, ``event``, ``grf``) and its payload."""


def needed_columns(contract: ModelContract, legs: tuple[str, ...], available: tuple[str, ...]) -> tuple[str, ...]:
    """The IMU columns the model needs for ``legs``, in pipeline order.

    Raises
    ------
    ContractError
        Naming what the model needs that ``available`` (the source's or the sensors' columns) lacks.
    """
    places: list[str] = []
    for leg in legs:
        for column, _ in channel_sources(contract.leg_places, leg):
            place = column.rsplit("_", 2)[0]
            if place not in places:
                places.append(place)
    columns = tuple(imu_column(p, k, a) for p in places for k in SENSOR_KINDS for a in SENSOR_AXES)
    missing = [c for c in columns if c not in available]
    if missing:
        raise ContractError(
            f"the model ({', '.join(contract.leg_places)}) for leg(s) {', '.join(legs)} needs "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}, which the sensors do not provide "
            f"(they give places {', '.join(dict.fromkeys(c.rsplit('_', 2)[0] for c in available)) or 'none'})"
        )
    return columns


@dataclass
class RunReport:
    """What a run did, for the CLI and the benchmark."""

    wall_s: float = 0.0
    stream_s: float = 0.0
    samples: int = 0
    inferences: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    cues: int = 0
    cue_latency_ms: list[float] = field(default_factory=list)
    compute_ms: list[float] = field(default_factory=list)
    storage: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (latency lists reduced to medians and maxima)."""

        def stats(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            return {
                "median": round(float(np.median(values)), 3),
                "p99": round(float(np.percentile(values, 99)), 3),
                "max": round(float(np.max(values)), 3),
            }

        return {
            "wall_s": round(self.wall_s, 3),
            "stream_s": round(self.stream_s, 3),
            "real_time_factor": round(self.stream_s / self.wall_s, 1) if self.wall_s > 0 else None,
            "samples": self.samples,
            "inferences": self.inferences,
            "steps": self.steps,
            "quality": self.quality,
            "calibration": self.calibration,
            "cues": self.cues,
            "cue_latency_ms": stats(self.cue_latency_ms),
            "inference_ms": stats(self.compute_ms),
            "storage": self.storage,
        }


class Pipeline:
    """Run a model over a source with a device configuration.

    Parameters
    ----------
    model
        The interpreter (``TFLiteModel``) or any callable with the same interface.
    contract
        The model's contract.
    config
        The device configuration (legs, calibration, quality limits, patient).
    columns, rate_hz, acc_range_mps2, gyr_range_rads
        What the source delivers (see :class:`forcecast.edge.sources.base.Source`).
    sink
        Record store (or None).
    cue
        Biofeedback output (or None).
    model_version
        Written into every step record.
    patient
        Overrides ``config.patient`` (e.g. the subject of a replayed trial).
    listeners
        Called for every record, and for every run of GRF samples (kind ``grf``) — the BLE live stream.
        Each GRF sample is given once, in time order (see :mod:`forcecast.edge.runtime.inference`).
    time_origin_unix
        Unix time of sensor time 0, which dates every record (``t_unix``). Default: taken at the first
        chunk, as "its first sample was just read" (right for live sources; a replay is dated as if
        recorded from now on).
    patient_state
        The patient values a profile may change while running (default: ``patient`` as version 0); read at
        every chunk, the feedback limit at every block.
    """

    def __init__(
        self,
        model: Model,
        contract: ModelContract,
        config: DeviceConfig,
        columns: tuple[str, ...],
        rate_hz: float,
        acc_range_mps2: float,
        gyr_range_rads: float,
        sink: Sink | None = None,
        cue: Cue | None = None,
        model_version: str = "",
        patient: PatientConfig | None = None,
        listeners: list[Listener] | None = None,
        time_origin_unix: float | None = None,
        patient_state: PatientState | None = None,
    ) -> None:
        self.contract = contract
        self.time_origin_unix = time_origin_unix
        self.config = config
        self.patient_state = patient_state or PatientState(patient or config.patient)
        self.patient = self.patient_state.patient
        self._patient_generation = self.patient_state.generation
        self.sink = sink
        # Storage that fails (a full disk) never stops the pipeline: records wait in memory, then a storage_full event.
        self.storage = StorageGuard(sink) if sink is not None else None
        self.listeners = listeners or []
        self.model_version = model_version
        runtime = config.runtime
        self.columns = needed_columns(contract, runtime.legs, columns)
        source_index = {c: i for i, c in enumerate(columns)}
        self._pick = np.array([source_index[c] for c in self.columns])
        self.guard = StreamGuard(
            self.columns, rate_hz, acc_range_mps2, gyr_range_rads, runtime.max_gap_s, runtime.clock_jump_s
        )
        self.resampler = CausalResampler(rate_hz, contract.rate_hz, len(self.columns), max_gap_s=runtime.max_gap_s)
        self.body_weight_n = self.patient.body_mass_kg * GRAVITY_MPS2
        self.predictors = self._predictors(model, contract)
        self._history: deque[tuple[FloatArray, FloatArray]] = deque()
        self._last_out: dict[str, float] = {}
        self._switch: tuple[Model, ModelContract, str, Callable[[], None] | None] | None = None
        self._switch_lock = threading.Lock()
        self._on_switched: Callable[[], None] | None = None
        self._retired: list[LegPredictor] = []
        self.detectors = {leg: StepDetector() for leg in runtime.legs}
        self.feedback = FeedbackGate(self.patient_state.feedback_limit_bw, cue)
        self.calibration: Calibration | None = None if runtime.calibration_s > 0 else identity(self.columns)
        # Segment alignment (when the contract asks for it): learnt while walking, frozen once converged;
        # until then the gravity calibration alone applies and steps are flagged ``alignment_pending``.
        self.aligner = (
            StreamAligner(self.columns, contract.rate_hz, settings_for(contract.alignment))
            if contract.alignment != "none"
            else None
        )
        self.alignment: dict[str, SegmentAlignment] | None = None
        self._aligned_since: float | None = None
        self._align_rows: list[FloatArray] = []  # fed to the aligner once a second (its cost is per call)
        self._calibration_rows: list[tuple[FloatArray, FloatArray]] = []
        self._calibration_start: float | None = None
        self._recent_events: deque[QualityEvent] = deque(maxlen=256)
        self._last_peak: dict[str, tuple[float, float]] = {}
        self._summary_start: float | None = None
        self._summary: dict[str, Any] = self._empty_summary()
        self.report = RunReport(steps=dict.fromkeys(runtime.legs, 0))
        self.newest_input_s = float("nan")
        self._last_t: float | None = None

    def _predictors(self, model: Model, contract: ModelContract) -> dict[str, LegPredictor]:
        p = self.patient
        runtime = self.config.runtime
        streaming = Streaming.for_model(contract, runtime.stream_hop, runtime.stream_lag)
        return {
            leg: LegPredictor(
                model,
                contract,
                self.columns,
                leg,
                static_features(p.hka_deg, p.affected_side, p.body_mass_kg, p.height_m, leg)
                if contract.static_features
                else None,
                streaming,
            )
            for leg in runtime.legs
        }

    def can_switch_to(self, contract: ModelContract) -> bool:
        """Whether a model with ``contract`` can take over while running.

        It must run at the same rate and alignment, on sensors already in use, with outputs the streaming
        settings can use (``runtime.stream_hop`` at most its ``out_len``).
        """
        runtime = self.config.runtime
        try:
            needed = needed_columns(contract, runtime.legs, self.columns)
            Streaming.for_model(contract, runtime.stream_hop, runtime.stream_lag)
        except ContractError:
            return False
        return (
            contract.rate_hz == self.contract.rate_hz
            and contract.alignment == self.contract.alignment
            and set(needed) <= set(self.columns)
        )

    def switch_model(
        self,
        model: Model,
        contract: ModelContract,
        model_version: str,
        on_running: Callable[[], None] | None = None,
    ) -> None:
        """Hand over to another model at the next chunk (any thread); ``on_running`` after its first inference.

        The new model is primed with the last seconds of resampled input, so its output continues where
        the old one's ended and no stance is cut by the switch.

        Raises
        ------
        ContractError
            If the model cannot take over while running (see :meth:`can_switch_to`).
        """
        if not self.can_switch_to(contract):
            raise ContractError(
                f"model {model_version} needs another rate, alignment or other sensors than the running model, "
                "or gives fewer outputs per inference than runtime.stream_hop; "
                "it can only start with the runtime"
            )
        with self._switch_lock:
            self._switch = (model, contract, model_version, on_running)

    def push(self, time_s: FloatArray, values: FloatArray) -> None:
        """Process one chunk from the source."""
        if self._switch is not None:
            self._apply_switch()
        if self.patient_state.generation != self._patient_generation:
            self._take_patient()
        self.report.samples += time_s.size
        if self.time_origin_unix is None and time_s.size:
            self.time_origin_unix = time.time() - float(time_s[0])
        t, x, events = self.guard.clean(time_s, values[:, self._pick])
        if events:
            self._emit_events(events)
        if t.size == 0:
            return
        if self.calibration is None:
            self._collect_calibration(t, x)
            return
        self._process(t, x)

    def finish(self) -> RunReport:
        """Flush the last summary and return the report."""
        if self.calibration is None and self._calibration_rows:
            self._calibrate()
        closing = self.guard.flush()
        if closing:
            self._emit_events(closing)
        for leg, predictor in self.predictors.items():  # samples that waited for windows the stream did not bring
            waiting_t, waiting_grf = predictor.flush()
            self._deliver(leg, predictor, waiting_t, waiting_grf)
        self._store_cues()
        if self.aligner is not None:
            self.report.calibration["alignment"] = self._alignment_report()
        if self.storage is not None:
            self.storage.retry_now()  # the last summary tries to commit whatever storage failures held back
        self._write_summary(force=True)
        self.report.quality = dict(self.guard.counters.events)
        if self.storage is not None:
            self.report.storage = self.storage.stats()
        for predictor in [*self._retired, *self.predictors.values()]:
            self.report.inferences += predictor.inferences
            self.report.compute_ms.extend(1000 * s for s in predictor.compute_s)
        return self.report

    def _collect_calibration(self, t: FloatArray, x: FloatArray) -> None:
        if self._calibration_start is None:
            self._calibration_start = float(t[0])
        self._calibration_rows.append((t, x))
        if t[-1] - self._calibration_start >= self.config.runtime.calibration_s:
            self._calibrate()

    def _calibrate(self) -> None:
        rows = self._calibration_rows
        self._calibration_rows = []
        t = np.concatenate([r[0] for r in rows])
        x = np.vstack([r[1] for r in rows])
        try:
            # With segment alignment any mounting is fine: the tilt limit only guards nominal-frame models.
            self.calibration = estimate(
                self.columns,
                x,
                self.config.runtime.align_gravity,
                **({"max_tilt_deg": None} if self.aligner is not None else {}),
            )
            self.report.calibration = {"calibrated": True, "places": self.calibration.describe()}
        except CalibrationError as exc:
            self.calibration = identity(self.columns)
            self.report.calibration = {"calibrated": False, "reason": str(exc)}
            skipped = EventRecord(event=EventType.CALIBRATION_SKIPPED, detail=str(exc))
            self._store(RecordKind.EVENT, [(float(t[0]), skipped)])
        # The pose itself is not predicted on: it holds no steps, and catching up on it at once would
        # only produce results seconds late. Prediction starts with the next chunk. Segment alignment
        # learns gravity from it (at the model rate, as from the rest of the stream).
        if self.aligner is not None:
            _, grid_x = self.resampler.push(t, self.calibration.apply(x))
            self.aligner.update(grid_x)
        self._last_t = float(t[-1])

    def _process(self, t: FloatArray, x: FloatArray) -> None:
        assert self.calibration is not None
        self.newest_input_s = float(t[-1])
        self.report.stream_s += self._span(t)
        grid_t, grid_x = self.resampler.push(t, self.calibration.apply(x))
        if grid_t.size == 0:
            return
        if self.aligner is not None:
            grid_x = self._align(grid_t, grid_x)
        self._remember(grid_t, grid_x)
        for leg, predictor in self.predictors.items():
            out_t, grf = predictor.push(grid_t, grid_x)
            self._deliver(leg, predictor, out_t, grf)
        self._store_cues()
        self._write_summary()
        if self._on_switched is not None and any(p.inferences for p in self.predictors.values()):
            on_switched, self._on_switched = self._on_switched, None
            on_switched()

    def _deliver(self, leg: str, predictor: LegPredictor, out_t: FloatArray, grf: FloatArray) -> None:
        """Hand one leg's new GRF samples to the live stream, the feedback, the summary and the step detector."""
        if out_t.size and out_t[0] <= self._last_out.get(leg, -np.inf):  # overlap after a model switch
            keep = out_t > self._last_out[leg]
            out_t, grf = out_t[keep], grf[keep]
        if out_t.size == 0:
            return
        self._last_out[leg] = float(out_t[-1])
        compute = predictor.last_push_compute_s
        self._notify("grf", {"leg": leg, "time_s": out_t, "grf_bw": grf})
        self.feedback.check(leg, out_t, grf[:, 0], self.newest_input_s, compute)
        self._accumulate_summary(leg, out_t, grf)
        for stance in self.detectors[leg].push(out_t, grf):
            self._record_step(leg, stance)

    def _store_cues(self) -> None:
        if self.feedback.events:
            new = self.feedback.events[self.report.cues :]
            self.report.cues = len(self.feedback.events)
            self.report.cue_latency_ms.extend(e.latency_ms for e in new)
            self._store(
                RecordKind.EVENT,
                [
                    (
                        e.time_s,
                        EventRecord(
                            event=EventType.CUE,
                            leg=e.leg,
                            time_s=e.time_s,
                            force_bw=e.force_bw,
                            limit_bw=e.limit_bw,
                            latency_ms=e.latency_ms,
                        ),
                    )
                    for e in new
                ],
            )

    def _align(self, grid_t: FloatArray, grid_x: FloatArray) -> FloatArray:
        """Learn the segment alignment until it converges, then rotate every chunk with the frozen estimate."""
        assert self.aligner is not None
        if self.alignment is None:
            self._align_rows.append(grid_x)
            if sum(rows.shape[0] for rows in self._align_rows) < self.contract.rate_hz:
                return grid_x
            self.aligner.update(np.vstack(self._align_rows))
            self._align_rows = []
            results = self.aligner.results()
            if not all(r.converged for r in results.values()):
                return grid_x
            self.alignment = results
            self._aligned_since = float(grid_t[0])
            self.report.calibration["alignment"] = self._alignment_report()
            detail = ", ".join(
                f"{p} (gravity from {r.gravity_from}, {r.walking_s:.0f} s walking)" for p, r in results.items()
            )
            self._store(
                RecordKind.EVENT, [(float(grid_t[0]), EventRecord(event=EventType.ALIGNMENT_CONVERGED, detail=detail))]
            )
        return self.aligner.apply(grid_x, self.alignment)

    def _alignment_report(self) -> dict[str, Any]:
        assert self.aligner is not None
        results = self.alignment or self.aligner.results()
        return {
            "converged": self.alignment is not None,
            "since_s": self._aligned_since,
            "places": {p: r.describe() for p, r in results.items()},
        }

    def _remember(self, grid_t: FloatArray, grid_x: FloatArray) -> None:
        """Keep the last :data:`HISTORY_S` of resampled input, to prime a model that takes over."""
        self._history.append((grid_t, grid_x))
        while len(self._history) > 1 and grid_t[-1] - self._history[1][0][0] > HISTORY_S:
            self._history.popleft()

    def _take_patient(self) -> None:
        """A profile was applied while running: its body mass and static features count from this chunk on."""
        self._patient_generation, self.patient, applied = self.patient_state.take()
        p = self.patient
        self.body_weight_n = p.body_mass_kg * GRAVITY_MPS2
        for leg, predictor in self.predictors.items():
            predictor.set_static(static_features(p.hka_deg, p.affected_side, p.body_mass_kg, p.height_m, leg))
        at = self.newest_input_s if np.isfinite(self.newest_input_s) else 0.0
        self._store(RecordKind.EVENT, [(at, event) for event in applied])

    def _apply_switch(self) -> None:
        with self._switch_lock:
            switch, self._switch = self._switch, None
        if switch is None:
            return
        model, contract, model_version, on_running = switch
        predictors = self._predictors(model, contract)
        if self._history:
            t = np.concatenate([h[0] for h in self._history])
            x = np.vstack([h[1] for h in self._history])
            for predictor in predictors.values():
                predictor.push(t, x)  # its outputs for this stretch were already given by the old model
        self._retired.extend(self.predictors.values())
        previous = self.model_version
        self.predictors, self.contract, self.model_version = predictors, contract, model_version
        self._on_switched = on_running
        at = self.newest_input_s if np.isfinite(self.newest_input_s) else 0.0
        switched = EventRecord(event=EventType.MODEL_SWITCHED, from_version=previous, to_version=model_version)
        self._store(RecordKind.EVENT, [(at, switched)])

    def _record_step(self, leg: str, stance: Any) -> None:
        metrics = StepRecord.from_payload(step_metrics(stance, self.body_weight_n))
        lookback = self.contract.window / self.contract.rate_hz
        flags = sorted(
            {e.kind for e in self._recent_events if e.end_s >= stance.ic_s - lookback and e.start_s <= stance.tc_s}
            | (
                {"alignment_pending"}
                if self.aligner is not None
                and (self._aligned_since is None or stance.ic_s - lookback < self._aligned_since)
                else set()
            )
        )
        other = "l" if leg == "r" else "r"
        asymmetry = None
        peak1 = metrics.peak1_bw
        if peak1 is not None and other in self._last_peak and stance.ic_s - self._last_peak[other][0] < 2.0:
            right, left = (peak1, self._last_peak[other][1])
            if leg == "l":
                right, left = left, right
            asymmetry = round((right - left) / max(right, left), 4) if max(right, left) > 0 else None
        if peak1 is not None:
            self._last_peak[leg] = (stance.ic_s, peak1)
        record = replace(
            metrics,
            leg=leg,
            asymmetry_peak1=asymmetry,
            flags=tuple(flags),
            calibrated=bool(self.report.calibration.get("calibrated", False)),
            patient_id=self.patient.patient_id,
            model_version=self.model_version,
        )
        self.report.steps[leg] += 1
        self._summary["steps"][leg] += 1
        self._store(RecordKind.STEP, [(stance.ic_s, record)])

    def _emit_events(self, events: list[QualityEvent]) -> None:
        self._recent_events.extend(events)
        self._store(
            RecordKind.EVENT,
            [
                (
                    e.start_s,
                    EventRecord(
                        event=EventType(e.kind),
                        start_s=e.start_s,
                        end_s=e.end_s,
                        samples=e.samples,
                        detail=e.detail,
                    ),
                )
                for e in events
            ],
        )

    def _empty_summary(self) -> dict[str, Any]:
        legs = self.config.runtime.legs
        return {
            "steps": dict.fromkeys(legs, 0),
            "samples": dict.fromkeys(legs, 0),
            "sum_v": dict.fromkeys(legs, 0.0),
            "max_v": dict.fromkeys(legs, 0.0),
        }

    def _accumulate_summary(self, leg: str, t: FloatArray, grf: FloatArray) -> None:
        if self._summary_start is None:
            self._summary_start = float(t[0])
        s = self._summary
        s["samples"][leg] += int(t.size)
        s["sum_v"][leg] += float(grf[:, 0].sum())
        s["max_v"][leg] = max(s["max_v"][leg], float(grf[:, 0].max()))

    def _write_summary(self, force: bool = False) -> None:
        start = self._summary_start
        if start is None or not np.isfinite(self.newest_input_s):
            return
        if not force and self.newest_input_s - start < self.config.runtime.summary_period_s:
            return
        s = self._summary
        legs = self.config.runtime.legs
        summary = SummaryRecord(
            start_s=round(start, 3),
            end_s=round(self.newest_input_s, 3),
            steps=s["steps"],
            grf_samples=s["samples"],
            mean_v_bw={g: round(s["sum_v"][g] / s["samples"][g], 4) if s["samples"][g] else None for g in legs},
            max_v_bw={g: round(s["max_v"][g], 4) for g in legs},
            quality_events=dict(self.guard.counters.events),
            cues=self.report.cues,
            patient_id=self.patient.patient_id,
        )
        self._store(RecordKind.SUMMARY, [(start, summary)])
        self._summary_start = None
        self._summary = self._empty_summary()

    def _store(self, kind: RecordKind, records: list[tuple[float, Record]]) -> None:
        """Date records, commit them, then tell listeners their payloads (with each one's seq once stored)."""
        origin = self.time_origin_unix or 0.0
        dated: list[tuple[float, Record]] = [(t, self._stamped(r, origin + t)) for t, r in records]
        seqs = self.storage.append(kind.label, list(dated)) if self.storage is not None else [None] * len(dated)
        for seq, (_, record) in zip(seqs, dated, strict=True):
            payload = record.to_payload()
            self._notify(kind.label, payload if seq is None else {"seq": seq, **payload})
        outage = self.storage.take_outage() if self.storage is not None else None
        if outage is not None:  # storage is back: say when it failed and what it cost
            self._store(RecordKind.EVENT, [(outage.end_s, outage.event())])

    def _stamped(self, record: Record, t_unix: float) -> Record:
        """The record with its wall-clock time, and the current patient where it names none (events, e.g. cues)."""
        if record.patient_id is None:
            return replace(record, t_unix=round(t_unix, 3), patient_id=self.patient.patient_id)
        return replace(record, t_unix=round(t_unix, 3))

    def _notify(self, kind: str, payload: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(kind, payload)

    def _span(self, t: FloatArray) -> float:
        previous = self._last_t
        self._last_t = float(t[-1])
        if previous is None:
            return float(t[-1] - t[0])
        return float(t[-1] - previous) if t[-1] - previous < self.config.runtime.clock_jump_s else float(t[-1] - t[0])


def run_source(
    pipeline: Pipeline, source: Source, max_stream_s: float | None = None, tick: Callable[[], None] | None = None
) -> RunReport:
    """Drive ``pipeline`` with every chunk of ``source`` until it ends (or ``max_stream_s`` of data)."""
    started = time.perf_counter()
    first: float | None = None
    try:
        for chunk in source.chunks():
            pipeline.push(chunk.time_s, chunk.values)
            if tick is not None:
                tick()
            if first is None and chunk.time_s.size:
                first = float(chunk.time_s[0])
            if (
                max_stream_s is not None
                and first is not None
                and chunk.time_s.size
                and chunk.time_s[-1] - first >= max_stream_s
            ):
                break
    finally:
        source.close()
    report = pipeline.finish()
    report.wall_s = time.perf_counter() - started
    return report
