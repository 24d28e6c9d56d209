"""A synthetic walker through the device: its pipeline, patient and replay trial, as the runtime tests build them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.contract import ModelContract
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig
from forcecast.edge.runtime.pipeline import Pipeline
from forcecast.edge.sources.base import Source
from forcecast.lab.dataset.trial import Stream, Trial, write_trial
from forcecast.lab.sources.synthetic import SyntheticSource

BOTH_LEGS = DeviceConfig(runtime=RuntimeConfig(legs=("l", "r")))
"""A device configuration that predicts both legs (defaults otherwise)."""


def source_pipeline(
    model: Any, contract: ModelContract, source: Source, config: DeviceConfig = BOTH_LEGS, **options: Any
) -> Pipeline:
    """A pipeline for ``source``'s columns, rate and sensor ranges; ``options`` go to :class:`Pipeline` as given."""
    return Pipeline(
        model,
        contract,
        config,
        source.columns,
        source.rate_hz,
        source.acc_range_mps2,
        source.gyr_range_rads,
        **options,
    )


def walker_patient(source: SyntheticSource, limit: float = 0.0) -> PatientConfig:
    """The patient configuration of ``source``'s synthetic walker, cueing above ``limit`` body weights (0: never)."""
    s = source.subject
    return PatientConfig(s.subject_id, s.body_mass_kg, s.height_m, s.hka_deg, s.affected_side, limit)  # type: ignore[arg-type]


def replay_trial(folder: Path, source: Source, subject_id: str, name: str) -> Path:
    """Write all of ``source`` as the CSV trial ``name`` of ``subject_id`` under ``folder`` (the device replays CSV).

    Returns the trial file's path.
    """
    chunks = list(source.chunks())
    stream = Stream(np.concatenate([c.time_s for c in chunks]), source.columns, np.vstack([c.values for c in chunks]))
    write_trial(folder, Trial(subject_id, name, stream, None), file_format="csv", paired=False)
    return folder / "trials" / subject_id / f"{name}.csv"
