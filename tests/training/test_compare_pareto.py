"""The Pareto front of the model comparison: exactly the points nothing else beats on latency and error."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from forcecast.training.pareto import dominates, pareto_front

coordinate = st.one_of(st.integers(0, 6).map(float), st.floats(0, 100, allow_nan=False))
point = st.tuples(coordinate, coordinate)
maybe_missing = st.one_of(point, st.tuples(st.just(math.nan), coordinate), st.tuples(coordinate, st.just(math.inf)))


@given(st.lists(maybe_missing, max_size=40))
def test_the_front_is_exactly_the_points_nothing_dominates(points: list[tuple[float, float]]) -> None:
    front = pareto_front(points)
    assert len(front) == len(set(front))
    finite = [i for i, p in enumerate(points) if all(math.isfinite(c) for c in p)]
    for i in front:  # no point on the front is dominated
        assert i in finite
        assert not any(dominates(points[j], points[i]) for j in finite)
    for i in set(finite) - set(front):  # every finite point off it is
        assert any(dominates(points[j], points[i]) for j in front)
    assert [points[i] for i in front] == sorted(points[i] for i in front)  # ordered by latency, then error


def test_small_cases_by_hand() -> None:
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (0.5, 9.0)]) == [3, 0, 1]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0), (1.0, 2.0)]) == [0, 1]  # equal points stand together
    assert pareto_front([(1.0, 2.0), (1.0, 1.0)]) == [1]  # same latency, lower error wins
    assert pareto_front([(math.nan, 0.0), (5.0, 5.0)]) == [1]
    assert dominates((1, 1), (1, 2)) and not dominates((1, 1), (1, 1)) and not dominates((0, 2), (1, 1))
