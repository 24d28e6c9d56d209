"""Golden input/output pairs: prove a model runs here as it did where it was packaged.

Outputs are compared in **output steps**, as integers: a value ``v`` is ``round(v / step)`` steps, where
``step`` is the output tensor's quantisation scale for an int8 model (so the comparison is exactly the
int8 output codes) and :data:`FLOAT_OUTPUT_STEP` for a float model. A model passes when

* every output element is within ``tolerance_steps`` (default :data:`TOLERANCE_STEPS`) of its golden value, and
* the mean absolute difference over all elements of all pairs is at most ``mean_tolerance_steps``
  (default :data:`MEAN_TOLERANCE_STEPS`), and every output is finite and of the golden shape.

Why these numbers: a legitimate change of runtime or CPU (x86 AVX vs ARM NEON, XNNPACK vs reference
kernels, tflite-runtime vs LiteRT) rounds a few intermediate int8 values the other way, which moves an
output by one step, rarely two (measured: tests/reliability/test_rel_model_lifecycle.py). A wrong model
(another build, other weights) or a damaged one moves many outputs by several steps. Integers make the
verdict exact: two steps are two steps on every machine, never 2.0000001 against a tolerance of 2.

Old packages wrote one float ``tolerance`` per pair (two output steps, compared in float); it is still
read: its steps are ``round(tolerance / step)``, raised to at least :data:`TOLERANCE_STEPS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forcecast.edge.interpreter import TFLiteModel

TOLERANCE_STEPS = 3
"""Default largest difference of one output element, in output steps."""
MEAN_TOLERANCE_STEPS = 1.0
"""Default largest mean absolute difference over every golden output element, in output steps."""
FLOAT_OUTPUT_STEP = 2.0**-12
"""One output step of a float model, in the output's unit (BW): about 0.17 N for a 70 kg person."""


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of running every golden pair.

    Attributes
    ----------
    passed, failed
        Pairs within / beyond their per-element tolerance (or that could not run).
    worst_error
        Largest absolute output difference, in the output's unit (BW).
    messages
        One line per failure, naming the pair.
    worst_steps
        Largest absolute difference of one element, in output steps.
    mean_steps
        Mean absolute difference over all compared elements, in output steps.
    mean_limit
        The mean tolerance it was held to (in steps).
    """

    passed: int
    failed: int
    worst_error: float
    messages: list[str]
    worst_steps: int = 0
    mean_steps: float = 0.0
    mean_limit: float = MEAN_TOLERANCE_STEPS

    @property
    def ok(self) -> bool:
        """All pairs within tolerance, the mean within its limit, and at least one pair."""
        return self.failed == 0 and self.passed > 0 and self.mean_steps <= self.mean_limit


def output_step(model: TFLiteModel) -> float:
    """One output step of ``model``: its output tensor's scale (int8), else :data:`FLOAT_OUTPUT_STEP`."""
    scale = next(iter(model.outputs.values())).scale
    return float(scale) if scale > 0 else FLOAT_OUTPUT_STEP


def golden_rule(pair: dict[str, Any], model_step: float) -> tuple[float, int, float]:
    """``(step, tolerance_steps, mean_tolerance_steps)`` of one pair, new fields or the old float tolerance.

    Raises
    ------
    ValueError
        If a field is missing, not a number, or out of range (the message names it).
    """
    if "output_step" in pair or "tolerance_steps" in pair:
        step = _number(pair, "output_step")
        steps = _number(pair, "tolerance_steps")
        mean = _number(pair, "mean_tolerance_steps") if "mean_tolerance_steps" in pair else MEAN_TOLERANCE_STEPS
        if step <= 0 or steps < 0 or steps != int(steps) or mean < 0:
            raise ValueError(
                f"output_step must be > 0, tolerance_steps a whole number ≥ 0 and mean_tolerance_steps ≥ 0 "
                f"(got {step}, {steps}, {mean})"
            )
        return step, int(steps), mean
    old = _number(pair, "tolerance")
    if old < 0:
        raise ValueError(f"tolerance must be ≥ 0, got {old}")
    return model_step, max(round(old / model_step), TOLERANCE_STEPS), MEAN_TOLERANCE_STEPS


def _number(pair: dict[str, Any], key: str) -> float:
    if key not in pair:
        raise ValueError(f"field {key!r} missing")
    value = pair[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"field {key!r} must be a finite number, got {value!r}")
    return float(value)


def to_steps(values: np.ndarray, step: float) -> np.ndarray:
    """Values as whole output steps (int64)."""
    return np.rint(np.asarray(values, dtype=np.float64) / step).astype(np.int64)


def run_golden(model: TFLiteModel, golden: list[dict[str, Any]]) -> SelfTestResult:
    """Feed each pair's inputs and compare the outputs in output steps (see the module docstring)."""
    if not isinstance(golden, list) or not golden:
        return SelfTestResult(0, 0, 0.0, ["the package has no golden pairs"])
    passed, failed, worst, worst_steps, messages = 0, 0, 0.0, 0, []
    total_steps, elements, mean_limit = 0, 0, MEAN_TOLERANCE_STEPS
    model_step = output_step(model)
    for index, pair in enumerate(golden):
        try:
            if not isinstance(pair, dict):
                raise TypeError("a golden pair must be a JSON object")
            step, allowed, mean = golden_rule(pair, model_step)
            mean_limit = min(mean_limit, mean) if index else mean
            feed = {n: np.asarray(v, dtype=np.float32) for n, v in pair["inputs"].items()}
            got = np.asarray(next(iter(model(**feed).values())), dtype=np.float64)
            expected = np.asarray(pair["output"], dtype=np.float64)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            failed += 1
            messages.append(f"pair {index}: could not run: {exc}")
            continue
        if got.shape != expected.shape:
            failed += 1
            messages.append(f"pair {index}: output shape {got.shape}, golden {expected.shape}")
            continue
        if not np.all(np.isfinite(got)):
            failed += 1
            messages.append(f"pair {index}: the model's output is not finite")
            continue
        difference = np.abs(to_steps(got, step) - to_steps(expected, step))
        pair_worst = int(difference.max()) if difference.size else 0
        worst_steps = max(worst_steps, pair_worst)
        worst = max(worst, float(np.max(np.abs(got - expected))) if got.size else 0.0)
        total_steps += int(difference.sum())
        elements += difference.size
        if pair_worst <= allowed:
            passed += 1
        else:
            failed += 1
            messages.append(
                f"pair {index}: an output is {pair_worst} steps off (tolerance {allowed} steps of {step:.6g})"
            )
    mean_steps = total_steps / elements if elements else 0.0
    if elements and mean_steps > mean_limit:
        messages.append(f"mean difference {mean_steps:.3f} steps exceeds {mean_limit:g} steps over {elements} outputs")
    return SelfTestResult(passed, failed, worst, messages, worst_steps, mean_steps, mean_limit)
