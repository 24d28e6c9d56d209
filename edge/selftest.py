"""Golden input/output pairs: prove a model runs here exactly as it did where it was packaged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.interpreter import TFLiteModel


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of running every golden pair."""

    passed: int
    failed: int
    worst_error: float
    messages: list[str]

    @property
    def ok(self) -> bool:
        """All pairs within tolerance (and at least one pair)."""
        return self.failed == 0 and self.passed > 0


def run_golden(model: TFLiteModel, golden: list[dict[str, Any]]) -> SelfTestResult:
    """Feed each pair's inputs and compare outputs within the pair's tolerance."""
    passed, failed, worst, messages = 0, 0, 0.0, []
    if not golden:
        return SelfTestResult(0, 0, 0.0, ["the package has no golden pairs"])
    for index, pair in enumerate(golden):
        try:
            got = next(iter(model(**{n: np.asarray(v, dtype=np.float32) for n, v in pair["inputs"].items()}).values()))
        except (ValueError, KeyError, TypeError) as exc:
            failed += 1
            messages.append(f"pair {index}: could not run: {exc}")
            continue
        error = float(np.max(np.abs(got - np.asarray(pair["output"], dtype=np.float32))))
        worst = max(worst, error)
        if error <= float(pair["tolerance"]):
            passed += 1
        else:
            failed += 1
            messages.append(f"pair {index}: max error {error:.5f} exceeds tolerance {float(pair['tolerance']):.5f}")
    return SelfTestResult(passed, failed, worst, messages)
