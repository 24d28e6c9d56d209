"""The non-dominated (Pareto) front of points where less is better on both axes, e.g. latency and error."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a`` is at least as good as ``b`` on both axes and better on one (less is better)."""
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, ordered by the first axis (then the second).

    Points with a non-finite coordinate (e.g. no latency for a model that cannot be deployed) are never
    on the front and dominate nothing. Equal points are all on the front when one is.

    Parameters
    ----------
    points
        ``(x, y)`` pairs, less is better on both.

    Returns
    -------
    list of int
        Indices into ``points``.
    """
    finite = sorted(
        (i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)),
        key=lambda i: (points[i][0], points[i][1], i),
    )
    front: list[int] = []
    best_y = math.inf  # the lowest y among points strictly before the current group of equal points
    k = 0
    while k < len(finite):
        group_end = k
        while group_end < len(finite) and points[finite[group_end]] == points[finite[k]]:
            group_end += 1
        # in (x, y) order, every earlier point has x <= this x, and y < this y where x is equal: one of
        # them dominates this point exactly when its y is not above this y
        if points[finite[k]][1] < best_y:
            front += finite[k:group_end]
            best_y = points[finite[k]][1]
        k = group_end
    return front
