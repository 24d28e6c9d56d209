"""Model inputs from sensor data: which channels, in which frame, and the static features.

A forcecast model predicts the GRF of **one leg**. Its inputs name sensors relative to that leg:
``ipsi_<segment>`` (same leg), ``contra_<segment>`` (other leg) and ``pelvis``. A left-leg sample is
mirrored across the sagittal plane so that one model serves both legs: acceleration ``y`` changes sign
(a vector), angular rate ``x`` and ``z`` change sign (a pseudovector). Force needs no mirroring because
``ml`` is already medial-positive on both legs.

Training and the device both call these functions, so a channel can never be mapped differently on
the two sides.

Mirroring assumes the nominal sensor frame (x anterior, y left, z up). A sensor strapped on in any other
orientation, or with a vendor's axis convention, must first be rotated into its segment's frame: models
whose contract says ``alignment = "segment_v1"`` get that from :mod:`forcecast.edge.dsp.segment_alignment`, in
training and on the device, before these functions run.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.schema import FORCE_AXES, SENSOR_AXES, SENSOR_KINDS

LEG_PLACES: Final = ("ipsi_foot", "ipsi_shank", "ipsi_thigh", "contra_foot", "contra_shank", "contra_thigh", "pelvis")
STATIC_FEATURES: Final = ("hka_deg", "hka_known", "ipsi_affected", "contra_affected", "body_mass_kg", "height_m")
"""Static features in model order. ``hka_deg`` is 0 with ``hka_known`` = 0 when alignment is unknown."""
STATIC_UNITS: Final = {
    "hka_deg": "deg, varus positive (0 when unknown)",
    "hka_known": "1 if hka_deg was measured, else 0",
    "ipsi_affected": "1 if this leg is the affected side",
    "contra_affected": "1 if the other leg is the affected side",
    "body_mass_kg": "kg",
    "height_m": "m",
}
OUTPUT_AXES: Final = FORCE_AXES
MIRROR_SIGNS: Final = {
    ("acc", "x"): 1.0,
    ("acc", "y"): -1.0,
    ("acc", "z"): 1.0,
    ("gyr", "x"): -1.0,
    ("gyr", "y"): 1.0,
    ("gyr", "z"): -1.0,
}

FloatArray = NDArray[np.float64]


def other_side(side: str) -> str:
    """``"l"`` ↔ ``"r"``."""
    if side not in ("l", "r"):
        raise ValueError(f"side must be 'l' or 'r', got {side!r}")
    return "r" if side == "l" else "l"


def sensor_place(leg_place: str, side: str) -> str:
    """The dataset place for a leg-relative place, e.g. ``("contra_shank", "l") -> "r_shank"``."""
    if leg_place == "pelvis":
        return "pelvis"
    relation, _, segment = leg_place.partition("_")
    if relation not in ("ipsi", "contra") or segment not in ("foot", "shank", "thigh"):
        raise ValueError(f"unknown leg-relative place {leg_place!r}; use one of {', '.join(LEG_PLACES)}")
    return f"{side if relation == 'ipsi' else other_side(side)}_{segment}"


def input_channels(leg_places: tuple[str, ...]) -> tuple[str, ...]:
    """Model channel names in order, e.g. ``ipsi_shank_acc_x``."""
    for place in leg_places:
        sensor_place(place, "r")  # validates the name
    return tuple(f"{p}_{k}_{a}" for p in leg_places for k in SENSOR_KINDS for a in SENSOR_AXES)


def channel_sources(leg_places: tuple[str, ...], side: str) -> list[tuple[str, float]]:
    """For each model channel: the dataset column it comes from and the mirroring sign."""
    out = []
    for place in leg_places:
        source = sensor_place(place, side)
        for kind in SENSOR_KINDS:
            for axis in SENSOR_AXES:
                sign = MIRROR_SIGNS[(kind, axis)] if side == "l" else 1.0
                out.append((f"{source}_{kind}_{axis}", sign))
    return out


def leg_inputs(columns: tuple[str, ...], values: FloatArray, leg_places: tuple[str, ...], side: str) -> FloatArray:
    """Pick and mirror the model's channels from IMU samples.

    Parameters
    ----------
    columns
        Column names of ``values`` (format v1 IMU columns).
    values
        Samples, shape ``(n, len(columns))``.
    leg_places
        The model's leg-relative places.
    side
        The leg the model predicts for (``"l"`` or ``"r"``).

    Returns
    -------
    ndarray
        Shape ``(n, 6 * len(leg_places))`` in model channel order.

    Raises
    ------
    KeyError
        Naming the first column the model needs that ``columns`` lacks.
    """
    index = {c: i for i, c in enumerate(columns)}
    sources = channel_sources(leg_places, side)
    missing = [c for c, _ in sources if c not in index]
    if missing:
        raise KeyError(f"missing channel(s) {', '.join(missing)}")
    picked = values[:, [index[c] for c, _ in sources]]
    signed: NDArray[np.float64] = picked * np.array([s for _, s in sources])
    return signed


def static_features(
    hka_deg: float | None,
    affected_side: str,
    body_mass_kg: float,
    height_m: float,
    side: str,
) -> FloatArray:
    """The static feature vector (``STATIC_FEATURES`` order) for one leg of one person."""
    ipsi = {"l": "left", "r": "right"}[side]
    contra = {"l": "right", "r": "left"}[side]
    known = hka_deg is not None and np.isfinite(hka_deg)
    return np.array(
        [
            float(hka_deg) if hka_deg is not None and known else 0.0,
            1.0 if known else 0.0,
            1.0 if affected_side == ipsi else 0.0,
            1.0 if affected_side == contra else 0.0,
            body_mass_kg,
            height_m,
        ]
    )


def output_positions(window_end: int, out_len: int, delay: int) -> slice:
    """Sample indices a window predicts: the ``out_len`` samples ending ``delay`` before its end.

    A window covers samples ``[window_end - window, window_end)``; its outputs are the GRF at
    ``[window_end - delay - out_len, window_end - delay)``. ``delay = 0`` is fully causal.
    """
    return slice(window_end - delay - out_len, window_end - delay)
