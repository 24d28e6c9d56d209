"""Bounds on a model contract: what a device can run, so an impossible model is refused by name.

A package can be correctly signed and still describe a model no device can run: a window of a
billion samples (a 22 GiB buffer), an infinite sampling rate, NaN normalisation (every output NaN:
zero steps and no error) or an infinite target std (a crash at the first summary). Every contract is
checked against these bounds when it is built or read, wherever a package is read.

==========================  =====================================  ==========================================
field                       accepted                               why
==========================  =====================================  ==========================================
``rate_hz``                 finite, 10 – 2000 Hz                   IMUs sample 25–1600 Hz; under 10 Hz a step
                                                                   is not resolved
``window``                  1 – 4096 samples                       2 s at 2000 Hz, 41 s at 100 Hz
``out_len`` (hop)           1 – ``window``                         outputs come from one window
``delay``                   0 – ``window - out_len``               outputs lie inside the window
latency                     ``(delay + out_len - 1) / rate_hz``    a GRF more than 2 s late cannot drive
                            ≤ 2 s                                  feedback or live step detection
``leg_places``              1 – 7 known places, none twice         one IMU per place
``static_features``         known features, none twice             see :data:`forcecast.edge.features.STATIC_FEATURES`
normalisation ``mean``      finite, within ±1e6                    sensor, body and force units
normalisation ``std``       finite, 1e-6 – 1e6                     ``x / std`` stays finite in float32
``output_axes``             ``v, ap, ml`` in that order            what the step detector reads
``output_unit``             ``body weight``                        what the records store
``notes``                   text → text                            shown to people only
==========================  =====================================  ==========================================

Tensor shapes are checked against the contract when the model is loaded
(:meth:`forcecast.edge.interpreter.TFLiteModel.check_contract`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from forcecast.edge.features import LEG_PLACES, OUTPUT_AXES

MIN_RATE_HZ: Final = 10.0
MAX_RATE_HZ: Final = 2000.0
MAX_WINDOW: Final = 4096
MAX_LATENCY_S: Final = 2.0
MAX_ABS_MEAN: Final = 1e6
MIN_STD: Final = 1e-6
MAX_STD: Final = 1e6
OUTPUT_UNIT: Final = "body weight"


def normalisation_problems(mean: Sequence[Any], std: Sequence[Any], name: str = "") -> list[str]:
    """What is wrong with normalisation constants (empty if nothing).

    Parameters
    ----------
    mean, std
        The constants, one per feature.
    name
        Prefix for the messages (``"targets."``), so they name the field.
    """
    problems = []
    if len(mean) != len(std):
        problems.append(f"{name}mean has {len(mean)} values but {name}std has {len(std)}")
    for index, value in enumerate(mean):
        if not _finite(value) or abs(value) > MAX_ABS_MEAN:
            problems.append(f"{name}mean[{index}] = {value!r} is not a finite number within ±{MAX_ABS_MEAN:g}")
            break
    for index, value in enumerate(std):
        if not _finite(value) or not MIN_STD <= value <= MAX_STD:
            problems.append(f"{name}std[{index}] = {value!r} is not a finite number in {MIN_STD:g}..{MAX_STD:g}")
            break
    return problems


def timing_problems(rate_hz: float, window: int, out_len: int, delay: int) -> list[str]:
    """What is wrong with a contract's rate, window, hop and delay (empty if nothing)."""
    problems = []
    rate_ok = _finite(rate_hz) and MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ
    if not rate_ok:
        problems.append(f"rate_hz = {rate_hz!r} is outside {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
    if not 1 <= window <= MAX_WINDOW:
        problems.append(f"window = {window} is outside 1..{MAX_WINDOW} samples")
    if not 1 <= out_len <= window:
        problems.append(f"out_len = {out_len} is outside 1..window ({window})")
    if not 0 <= delay <= window - out_len:
        problems.append(f"delay = {delay} is outside 0..window - out_len ({window - out_len})")
    if rate_ok and not problems and (delay + out_len - 1) / rate_hz > MAX_LATENCY_S:
        problems.append(
            f"delay ({delay}) + out_len ({out_len}) - 1 samples at {rate_hz:g} Hz is "
            f"{(delay + out_len - 1) / rate_hz:.2f} s of latency, over {MAX_LATENCY_S:g} s"
        )
    return problems


def layout_problems(
    leg_places: Sequence[str], static_features: Sequence[str], output_axes: Sequence[str], output_unit: str
) -> list[str]:
    """What is wrong with the places, static features and outputs (empty if nothing).

    Unknown place and feature names are reported by :class:`forcecast.edge.contract.ModelContract` itself.
    """
    problems = []
    if not 1 <= len(leg_places) <= len(LEG_PLACES):
        problems.append(f"leg_places has {len(leg_places)} places; 1..{len(LEG_PLACES)} are possible")
    for field, names in (("leg_places", leg_places), ("static_features", static_features)):
        repeated = sorted({n for n in names if list(names).count(n) > 1})
        if repeated:
            problems.append(f"{field}: {', '.join(map(str, repeated))} listed more than once")
    if tuple(output_axes) != OUTPUT_AXES:
        problems.append(f"output_axes = {list(output_axes)} is not {list(OUTPUT_AXES)}")
    if output_unit != OUTPUT_UNIT:
        problems.append(f"output_unit = {output_unit!r} is not {OUTPUT_UNIT!r}")
    return problems


def notes_problems(notes: Any) -> list[str]:
    """``notes`` must map text to text."""
    if not isinstance(notes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in notes.items()):
        return ["notes must map text to text"]
    return []


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False
