"""The one-to-one step matching the step-detection accuracy tests rely on (tests/step_matching.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from step_matching import StepMatch, check_detection, match_events


def test_a_detector_reporting_every_step_twice_fails():
    truth = np.arange(20) * 1.1 + 0.3
    doubled = np.sort(np.concatenate([truth + 0.01, truth + 0.03]))
    match = match_events(truth, doubled, tolerance_s=0.15)
    assert match.recall == 1.0 and match.precision == 0.5 and len(match.extra) == 20
    with pytest.raises(AssertionError, match=r"precision 0\.500"):
        check_detection(match, min_precision=0.9, min_recall=0.9)
    check_detection(match_events(truth, truth + 0.01, 0.15), min_precision=1.0, min_recall=1.0)


def test_one_detection_matches_one_true_step_only():
    match = match_events([1.0, 1.1], [1.05], tolerance_s=0.15)
    assert len(match.pairs) == 1 and len(match.missed) == 1 and match.extra == ()
    assert match.recall == 0.5 and match.precision == 1.0
    with pytest.raises(AssertionError, match=r"recall 0\.500"):
        check_detection(match, min_precision=0.9, min_recall=0.9)


def test_the_assignment_maximises_matches_where_nearest_first_would_not():
    # nearest-first gives 1.0 -> 1.04 and leaves 1.1 nothing within 0.08; the best assignment matches both
    match = match_events([1.0, 1.1], [0.93, 1.04], tolerance_s=0.08)
    assert match.pairs == ((0, 0), (1, 1)) and match.missed == () and match.extra == ()


def test_detections_beyond_the_tolerance_are_false_positives_and_nothing_is_handled():
    match = match_events([1.0], [1.2], tolerance_s=0.15)
    assert match.pairs == () and match.missed == (0,) and match.extra == (0,)
    assert match.precision == 0.0 and match.recall == 0.0
    empty = match_events([], [], 0.1)
    assert empty.precision == 1.0 and empty.recall == 1.0
    assert match_events([], [1.0], 0.1).precision == 0.0 and match_events([1.0], [], 0.1).recall == 0.0
    both = match + match_events([2.0], [2.01], 0.15)
    assert (len(both.pairs), len(both.missed), len(both.extra)) == (1, 1, 1)


@pytest.mark.parametrize(
    ("truth", "detected", "tolerance", "message"),
    [([1.0], [1.0], 0.0, "tolerance_s"), ([1.0], [1.0], float("nan"), "tolerance_s"), ([np.nan], [1.0], 0.1, "finite")],
)
def test_bad_input_is_refused(truth, detected, tolerance, message):
    with pytest.raises(ValueError, match=message):
        match_events(truth, detected, tolerance)


def most_pairs(truth: list[float], detected: list[float], tolerance: float) -> int:
    """The largest one-to-one matching, by trying every assignment (small inputs only)."""
    best = 0
    small, large = (truth, detected) if len(truth) <= len(detected) else (detected, truth)
    for chosen in itertools.permutations(range(len(large)), len(small)):
        pairs = zip(range(len(small)), chosen, strict=True)
        best = max(best, sum(abs(small[i] - large[j]) <= tolerance for i, j in pairs))
    return best


times = st.lists(st.floats(0.0, 3.0, allow_nan=False), max_size=5)


@settings(max_examples=200, deadline=None)
@given(times, times, st.floats(0.01, 1.0))
def test_matching_is_one_to_one_within_tolerance_and_as_large_as_possible(truth, detected, tolerance):
    match = match_events(truth, detected, tolerance)
    assert isinstance(match, StepMatch)
    rows = [t for t, _ in match.pairs]
    cols = [d for _, d in match.pairs]
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert all(abs(truth[t] - detected[d]) <= tolerance for t, d in match.pairs)
    assert sorted(rows + list(match.missed)) == list(range(len(truth)))
    assert sorted(cols + list(match.extra)) == list(range(len(detected)))
    assert len(match.pairs) == most_pairs(truth, detected, tolerance)
