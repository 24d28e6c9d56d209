"""A device pipeline fed by a synthetic walker's source, as the runtime, alignment and full-disk tests build it."""

from __future__ import annotations

from typing import Any

from forcecast.edge.contract import ModelContract
from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig
from forcecast.edge.runtime.pipeline import Pipeline
from forcecast.edge.sources.base import Source
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
