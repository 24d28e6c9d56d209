"""Segment alignment: rotate each IMU from its own (vendor, as-strapped) frame into its segment's frame.

A sensor's axes are the vendor's and its orientation on the body is however it was strapped on, so the
same movement reads differently from person to person and from session to session. This module estimates,
per sensor, the rotation ``R`` with ``v_segment = R @ v_sensor`` into the nominal segment frame of
:mod:`forcecast.edge.schema` (x anterior, y to the person's left, z superior), from the data alone:

``z`` (up)
    ``segment_v1``: gravity from quiet standing, the mean acceleration over bouts of standing (at least
    ``min_standing_s`` in bouts of ``min_standing_bout_s``, leaning no more than ``max_standing_lean_deg``
    from the walking posture, so sitting or lying is never taken for standing); no estimate before some
    standing was seen (on the device the calibration pose provides it; in a dataset, a static trial).
    ``segment_v1_walking``: gravity from the walking posture, the mean specific force over walking: over
    whole strides the body's accelerations average out and what remains is gravity seen through the
    segment's *mean orientation while walking*, which differs from standing by the segment's mean lean
    (about 10° for a shank or thigh in the synthetic lab). For datasets without static trials. The two
    never mix: a model trained with one is fed with the same one on the device, so its frames match.
``y`` (medio-lateral, left positive) for foot, shank and thigh
    The principal axis of the gyroscope's covariance while walking, in the plane normal to ``z``: walking
    is mostly sagittal rotation about the medio-lateral axis. Its sign: in the nominal frame the fastest
    sagittal rotation (the swing, distal end moving forward) turns about ``-y``, so the angular rate along
    ``+y`` is negatively skewed. This holds for both legs before mirroring.
``x`` (anterior) for the pelvis
    The pelvis barely rotates, so its forward axis comes from its acceleration: by the left-right symmetry
    of gait every odd moment of a medio-lateral quantity vanishes over both legs' steps, while the
    anterior-posterior jerk is skewed (braking at heel strike is abrupt, its release gradual). The odd
    vector ``E[j |j|²]`` of the horizontal jerk ``j`` (smoothed, see ``jerk_smooth_s``) therefore points
    backwards.
The remaining axis completes a right-handed frame.

Only sufficient statistics are kept (counts and first, second and third moments of the walking samples,
and the sums of standing bouts), so the offline fit over a whole trial (or a whole session) and the
device's streaming fit over chunks are one and the same computation: :class:`SegmentAligner` is fed with
:meth:`SegmentAligner.update` either way. A sample counts as walking when the gyroscope RMS over the
trailing ``activity_window_s`` exceeds ``min_activity_rads``, as standing when it stays under
``max_standing_rads`` and the accelerometer reads about 1 g; rows with NaN are skipped. An estimate is
*converged* once enough walking has been seen and the axes are well determined; otherwise
:meth:`SegmentAligner.result` says why, instead of returning a guess.

Numpy only: this is device code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import ForcecastValueError
from forcecast.edge.schema import GRAVITY_MPS2, PLACES, SENSOR_AXES, imu_column

FloatArray = NDArray[np.float64]

ALIGNMENTS: Final = ("none", "segment_v1", "segment_v1_walking")
"""Alignments a model contract may ask for: ``none`` (sensor frame as recorded), ``segment_v1`` (this module,
gravity from standing) or ``segment_v1_walking`` (this module, gravity from the walking posture)."""
SEGMENT_V1: Final = "segment_v1"
SEGMENT_V1_WALKING: Final = "segment_v1_walking"
MAX_BOUTS: Final = 64
"""Standing bouts remembered (the oldest are forgotten)."""


class AlignmentError(ForcecastValueError):
    """Alignment could not be estimated or applied; the message names the sensor and the reason."""

    reason = "alignment_failed"


@dataclass(frozen=True)
class AlignmentSettings:
    """Thresholds of the estimator (the defaults are what ``segment_v1`` means).

    Attributes
    ----------
    activity_window_s
        Trailing window over which the gyroscope RMS decides whether a sample is walking or standing.
    min_activity_rads
        Gyroscope RMS (rad/s) above which a sample counts as walking (quiet standing is under 0.05,
        the pelvis while walking about 0.4, a shank about 2).
    max_standing_rads, max_standing_acc_error
        A sample is standing while the gyroscope RMS is under this (rad/s) and ``| |acc| - g |`` under
        this (m/s²).
    min_standing_bout_s, min_standing_s
        A standing bout counts from this length; gravity comes from standing once this much is seen.
    max_standing_lean_deg
        Standing bouts whose gravity leans more than this from the walking posture are ignored (sitting).
    min_walking_s
        Walking needed before an estimate is converged.
    min_axis_ratio
        Principal over second variance of the horizontal angular rate (leg segments).
    min_skew
        Absolute skewness of the angular rate along the medio-lateral axis needed to trust its sign.
    min_pelvis_odd
        Magnitude of the pelvis's normalised horizontal jerk odd vector needed to trust the forward axis.
    jerk_smooth_s, jerk_lag_s
        The pelvis's jerk is the change over ``jerk_lag_s`` of the ``jerk_smooth_s`` moving mean of its
        acceleration (impact transients and soft-tissue ringing would otherwise dominate it).
    gravity_range
        Plausible magnitude of the mean specific force while walking, as fractions of g (a foot reads up
        to about 1.6 g: centripetal acceleration in swing).
    gravity
        ``standing`` (``segment_v1``: standing bouts required) or ``walking`` (``segment_v1_walking``:
        the walking posture, standing ignored).
    """

    activity_window_s: float = 1.0
    min_activity_rads: float = 0.25
    max_standing_rads: float = 0.1
    max_standing_acc_error: float = 1.0
    min_standing_bout_s: float = 1.0
    min_standing_s: float = 1.0
    max_standing_lean_deg: float = 30.0
    min_walking_s: float = 10.0
    min_axis_ratio: float = 2.0
    min_skew: float = 0.2
    min_pelvis_odd: float = 0.1
    jerk_smooth_s: float = 0.1
    jerk_lag_s: float = 0.2
    gravity_range: tuple[float, float] = (0.6, 1.8)
    gravity: Literal["standing", "walking"] = "standing"


DEFAULT_SETTINGS: Final = AlignmentSettings()


def settings_for(alignment: str) -> AlignmentSettings:
    """The estimator settings an alignment name stands for.

    Raises
    ------
    AlignmentError
        If ``alignment`` is ``none`` or unknown (naming the known ones).
    """
    if alignment == SEGMENT_V1:
        return DEFAULT_SETTINGS
    if alignment == SEGMENT_V1_WALKING:
        return replace(DEFAULT_SETTINGS, gravity="walking")
    raise AlignmentError(
        f"alignment {alignment!r} is not a segment alignment; use {SEGMENT_V1} or {SEGMENT_V1_WALKING}"
    )


@dataclass(frozen=True)
class SegmentAlignment:
    """One sensor's estimate.

    Attributes
    ----------
    place
        Sensor place (``r_shank``, ``pelvis``...).
    converged
        Whether ``rotation`` can be used.
    reason
        Why not converged (empty when converged).
    rotation
        ``v_segment = rotation @ v_sensor`` (rows: the segment's x, y, z in sensor coordinates);
        ``None`` when not converged.
    walking_s
        Walking time the estimate is based on.
    axis_ratio
        Principal over second variance of the horizontal angular rate (legs; 0 for the pelvis).
    strength
        Confidence of the direction of progression: |skewness| (legs) or the jerk odd vector (pelvis).
    gravity_from
        ``standing`` or ``walking`` (empty when not converged).
    standing_s
        Standing time behind ``gravity_from = standing``.
    """

    place: str
    converged: bool
    reason: str
    rotation: tuple[tuple[float, float, float], ...] | None
    walking_s: float
    axis_ratio: float
    strength: float
    gravity_from: str
    standing_s: float = 0.0

    def matrix(self) -> FloatArray:
        """The rotation as a ``(3, 3)`` array.

        Raises
        ------
        AlignmentError
            If the estimate has not converged (naming the place and why).
        """
        if self.rotation is None:
            raise AlignmentError(f"alignment not converged: {self.reason}")
        return np.asarray(self.rotation, dtype=np.float64)

    def describe(self) -> dict[str, object]:
        """JSON-ready summary for logs, reports and records."""
        return {
            "converged": self.converged,
            "reason": self.reason,
            "walking_s": round(self.walking_s, 2),
            "gravity_from": self.gravity_from,
            "standing_s": round(self.standing_s, 2),
            "axis_ratio": round(self.axis_ratio, 2),
            "strength": round(self.strength, 3),
        }


class _Moments:
    """Count, sum, second and (optionally) third raw moments of 3-vectors."""

    def __init__(self, third: bool = True) -> None:
        self.n = 0
        self.third = third
        self.s1 = np.zeros(3)
        self.s2 = np.zeros((3, 3))
        self.s3 = np.zeros((3, 3, 3))

    def add(self, v: FloatArray) -> None:
        n = v.shape[0]
        if n == 0:
            return
        self.n += n
        self.s1 += v.sum(axis=0)
        self.s2 += v.T @ v
        if self.third:
            self.s3 += ((v[:, :, None] * v[:, None, :]).reshape(n, 9).T @ v).reshape(3, 3, 3)

    def mean(self) -> FloatArray:
        return self.s1 / self.n

    def covariance(self) -> FloatArray:
        m = self.mean()
        return self.s2 / self.n - np.outer(m, m)

    def central_third(self) -> FloatArray:
        """``E[(v - m)_i (v - m)_j (v - m)_k]``."""
        m = self.mean()
        s2 = self.s2 / self.n
        third: FloatArray = (
            self.s3 / self.n
            - np.einsum("i,jk->ijk", m, s2)
            - np.einsum("j,ik->ijk", m, s2)
            - np.einsum("k,ij->ijk", m, s2)
            + 2.0 * np.einsum("i,j,k->ijk", m, m, m)
        )
        return third

    def skew_along(self, u: FloatArray) -> float:
        """Skewness of ``v · u``."""
        var = float(u @ self.covariance() @ u)
        if var <= 0:
            return 0.0
        return float(np.einsum("ijk,i,j,k->", self.central_third(), u, u, u)) / math.sqrt(var) ** 3

    def odd_vector(self, plane: FloatArray) -> FloatArray:
        """``E[h |h|²] / E[|h|²]^1.5`` of the centred samples projected by ``plane`` (a projector).

        By the left-right symmetry of gait, every odd moment of a medio-lateral quantity vanishes, so this
        vector lies along the anterior-posterior axis of the horizontal plane.
        """
        variance = float(np.trace(plane @ self.covariance() @ plane))
        if variance <= 0:
            return np.zeros(3)
        projected = np.einsum("ijk,ai,bj,ck->abc", self.central_third(), plane, plane, plane)
        odd: FloatArray = np.einsum("ajj->a", projected) / math.sqrt(variance) ** 3
        return odd


class SegmentAligner:
    """Accumulates one sensor's statistics and estimates its segment rotation.

    Parameters
    ----------
    place
        Sensor place; the pelvis uses its own forward rule (see the module docstring).
    rate_hz
        Sample rate of what :meth:`update` receives.
    settings
        Thresholds.
    """

    def __init__(self, place: str, rate_hz: float, settings: AlignmentSettings = DEFAULT_SETTINGS) -> None:
        if place not in PLACES:
            raise ValueError(f"unknown place {place!r}; use one of {', '.join(PLACES)}")
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.place = place
        self.rate_hz = float(rate_hz)
        self.settings = settings
        self._window = max(1, round(settings.activity_window_s * rate_hz))
        self._min_bout = max(1, round(settings.min_standing_bout_s * rate_hz))
        self._tail = np.zeros(0)  # |ω|² of the last (window - 1) valid samples
        self._smooth = max(1, round(settings.jerk_smooth_s * rate_hz))
        self._lag = max(1, round(settings.jerk_lag_s * rate_hz))
        self._acc_tail = np.full((0, 3), np.nan)  # the last smooth + lag - 1 rows of acceleration (NaN: invalid)
        self._bout_sum = np.zeros(3)  # the quiet bout still open at the end of the last update
        self._bout_n = 0
        self._bouts: list[tuple[FloatArray, int]] = []  # (sum of acc, samples) of finished standing bouts
        self._pelvis = place == "pelvis"
        self._foot = place.endswith("foot")
        self._acc = _Moments(third=False)
        self._gyr = _Moments(third=not self._pelvis)
        self._jerk = _Moments(third=self._pelvis)
        self._cross = np.zeros((3, 3))  # sum of gyr accᵀ over walking samples

    @property
    def walking_s(self) -> float:
        """Walking time accumulated so far."""
        return self._acc.n / self.rate_hz

    def update(self, acc: FloatArray, gyr: FloatArray) -> None:
        """Add samples: ``acc`` (m/s², gravity included) and ``gyr`` (rad/s), each ``(n, 3)``, sensor frame.

        Rows with a NaN are skipped (and end a standing bout); chunks may have any length.
        """
        acc = np.asarray(acc, dtype=np.float64)
        gyr = np.asarray(gyr, dtype=np.float64)
        if acc.shape != gyr.shape or acc.ndim != 2 or acc.shape[1] != 3:
            raise ValueError(f"{self.place}: acc and gyr must both be (n, 3), got {acc.shape} and {gyr.shape}")
        n = acc.shape[0]
        if n == 0:
            return
        s = self.settings
        ok = np.all(np.isfinite(acc), axis=1) & np.all(np.isfinite(gyr), axis=1)
        # Trailing-window gyroscope RMS over valid rows (the window skips NaN rows).
        power = np.sum(gyr[ok] * gyr[ok], axis=1)
        joined = np.concatenate([self._tail, power])
        sums = np.concatenate([[0.0], np.cumsum(joined)])
        ends = np.arange(self._tail.size + 1, joined.size + 1)
        starts = np.maximum(ends - self._window, 0)
        rms = np.full(n, np.nan)
        rms[ok] = np.sqrt((sums[ends] - sums[starts]) / (ends - starts))
        if self._window > 1:
            self._tail = joined[-(self._window - 1) :]
        walking = ok & (rms > s.min_activity_rads)
        gravity_error = np.abs(np.linalg.norm(np.where(ok[:, None], acc, 0.0), axis=1) - GRAVITY_MPS2)
        quiet = ok & (rms < s.max_standing_rads) & (gravity_error < s.max_standing_acc_error)
        self._acc.add(acc[walking])
        self._gyr.add(gyr[walking])
        if self._pelvis:
            jerk, jerk_ok = self._smoothed_jerk(np.where(ok[:, None], acc, np.nan))
            self._jerk.add(jerk[jerk_ok & walking])
        if self._foot:
            self._cross += gyr[walking].T @ acc[walking]
        self._add_bouts(acc, quiet)

    def _smoothed_jerk(self, acc: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Change over ``jerk_lag_s`` of the ``jerk_smooth_s`` moving mean of acceleration, per second.

        Smoothing keeps impact transients and soft-tissue ringing from swamping the gait's own jerk.
        Rows whose windows touch a NaN row are marked invalid.
        """
        joined = np.vstack([self._acc_tail, acc])
        valid = np.all(np.isfinite(joined), axis=1)
        sums = np.vstack([np.zeros((1, 3)), np.cumsum(np.where(valid[:, None], joined, 0.0), axis=0)])
        bad = np.concatenate([[0], np.cumsum(~valid)])
        k, lag = self._smooth, self._lag
        new = np.arange(self._acc_tail.shape[0], joined.shape[0])
        end, lagged = new + 1, new + 1 - lag
        ok = (lagged - k >= 0) & (bad[end] - bad[np.maximum(lagged - k, 0)] == 0)
        end, lagged = end[ok], lagged[ok]
        jerk = np.zeros((new.size, 3))
        jerk[ok] = (sums[end] - sums[end - k] - sums[lagged] + sums[lagged - k]) / k * (self.rate_hz / lag)
        self._acc_tail = joined[-(k + lag - 1) :] if k + lag > 1 else np.full((0, 3), np.nan)
        return jerk, ok

    def _add_bouts(self, acc: FloatArray, quiet: NDArray[np.bool_]) -> None:
        """Collect runs of quiet standing; a run still open at the end carries over to the next update."""
        edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if quiet.size and not quiet[0]:
            self._close_bout()
        for start, stop in zip(starts, stops, strict=True):
            if start > 0:
                self._close_bout()
            self._bout_sum = self._bout_sum + acc[start:stop].sum(axis=0)
            self._bout_n += int(stop - start)
        if quiet.size and not quiet[-1]:
            self._close_bout()

    def _close_bout(self) -> None:
        if self._bout_n >= self._min_bout:
            self._bouts.append((self._bout_sum, self._bout_n))
            if len(self._bouts) > MAX_BOUTS:
                self._bouts.pop(0)
        self._bout_sum, self._bout_n = np.zeros(3), 0

    def _standing_up(self, walking_up: FloatArray) -> tuple[FloatArray | None, float]:
        """Gravity direction from standing bouts that lean like the walking posture (not sitting, not lying)."""
        bouts = list(self._bouts)
        if self._bout_n >= self._min_bout:
            bouts.append((self._bout_sum, self._bout_n))
        limit = np.cos(np.deg2rad(self.settings.max_standing_lean_deg))
        total, count = np.zeros(3), 0
        for bout_sum, bout_n in bouts:
            direction = bout_sum / np.linalg.norm(bout_sum)
            if float(direction @ walking_up) >= limit:
                total, count = total + bout_sum, count + bout_n
        if count < self.settings.min_standing_s * self.rate_hz:
            return None, count / self.rate_hz
        return total / np.linalg.norm(total), count / self.rate_hz

    def result(self) -> SegmentAlignment:
        """The current estimate (converged or not, with the reason)."""
        s = self.settings
        walking_s = self.walking_s

        def not_converged(reason: str, strength: float = 0.0) -> SegmentAlignment:
            return SegmentAlignment(self.place, False, f"{self.place}: {reason}", None, walking_s, 0.0, strength, "")

        if walking_s < s.min_walking_s:
            return not_converged(f"{walking_s:.1f} s of walking seen, need {s.min_walking_s:g} s")
        gravity = self._acc.mean()
        magnitude = float(np.linalg.norm(gravity))
        low, high = (f * GRAVITY_MPS2 for f in s.gravity_range)
        if not low <= magnitude <= high:
            return not_converged(
                f"mean acceleration while walking is {magnitude:.2f} m/s², expected {low:.1f}..{high:.1f} "
                "(gravity): check the accelerometer's units and range"
            )
        walking_up = gravity / magnitude
        if s.gravity == "standing":
            standing_up, standing_s = self._standing_up(walking_up)
            if standing_up is None:
                return not_converged(
                    f"{standing_s:.1f} s of quiet standing seen, need {s.min_standing_s:g} s to take gravity from "
                    "(a static trial; or use alignment segment_v1_walking)"
                )
            up, source = standing_up, "standing"
        else:
            up, source, standing_s = walking_up, "walking", 0.0
        horizontal = np.eye(3) - np.outer(up, up)
        if self.place == "pelvis":
            odd = horizontal @ self._jerk.odd_vector(horizontal)
            strength = float(np.linalg.norm(odd))
            if strength < s.min_pelvis_odd:
                return not_converged(
                    f"the direction of progression is ambiguous (forward-jerk asymmetry {strength:.2f}, need "
                    f">= {s.min_pelvis_odd:g}): not walking?",
                    strength,
                )
            x = -odd / strength  # sharp braking at heel strike: the forward jerk is negatively skewed
            y = np.cross(up, x)
            rotation = np.vstack([x, y, up])
            return SegmentAlignment(self.place, True, "", _rows(rotation), walking_s, 0.0, strength, source, standing_s)
        values, vectors = np.linalg.eigh(horizontal @ self._gyr.covariance() @ horizontal)
        axis = vectors[:, 2] - (vectors[:, 2] @ up) * up
        axis /= np.linalg.norm(axis)
        ratio = float(values[2] / values[1]) if values[1] > 0 else float("inf")
        skew = self._gyr.skew_along(axis)
        # A foot's swing and push-off rotations are about as fast, so its skew alone is weak; its loading
        # (heel strike to foot flat, push-off) comes with plantarflexion, so the angular rate along +y
        # also correlates positively with the vertical acceleration. Both count for the foot.
        score = -skew + (self._rate_load_correlation(axis, up) if self.place.endswith("foot") else 0.0)
        if ratio < s.min_axis_ratio:
            return replace(
                not_converged(
                    f"no dominant rotation axis (variance ratio {ratio:.2f} < {s.min_axis_ratio:g}): not walking?",
                    abs(score),
                ),
                axis_ratio=ratio,
            )
        if abs(score) < s.min_skew:
            return replace(
                not_converged(
                    f"the direction of progression is ambiguous (sign score {score:+.2f}, need "
                    f"|score| >= {s.min_skew:g})",
                    abs(score),
                ),
                axis_ratio=ratio,
            )
        y = axis if score > 0 else -axis  # the swing (distal end forward) turns about -y: negative skew along +y
        x = np.cross(y, up)
        rotation = np.vstack([x, y, up])
        return SegmentAlignment(self.place, True, "", _rows(rotation), walking_s, ratio, abs(score), source, standing_s)

    def _rate_load_correlation(self, axis: FloatArray, up: FloatArray) -> float:
        """Correlation of the angular rate along ``axis`` with the acceleration along ``up`` (walking samples)."""
        n = self._gyr.n
        covariance = float(axis @ (self._cross / n - np.outer(self._gyr.mean(), self._acc.mean())) @ up)
        spread = float(axis @ self._gyr.covariance() @ axis) * float(up @ self._acc.covariance() @ up)
        return covariance / np.sqrt(spread) if spread > 0 else 0.0


def _rows(matrix: FloatArray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(r[0]), float(r[1]), float(r[2])) for r in matrix)


def places_of(columns: tuple[str, ...]) -> list[str]:
    """Sensor places with all six IMU columns in ``columns``, in order of appearance."""
    places = list(dict.fromkeys(c.rsplit("_", 2)[0] for c in columns if c.rsplit("_", 2)[0] in PLACES))
    return [p for p in places if all(imu_column(p, k, a) in columns for k in ("acc", "gyr") for a in SENSOR_AXES)]


class StreamAligner:
    """One :class:`SegmentAligner` per place of a multi-sensor stream (columns in format-v1 names).

    Offline, call :meth:`update` once with a whole trial (or every trial of a session) and then
    :meth:`apply`; on the device, call :meth:`update` with every chunk and :meth:`apply` once
    :meth:`converged` (the pipeline freezes the estimate at that point).
    """

    def __init__(
        self, columns: tuple[str, ...], rate_hz: float, settings: AlignmentSettings = DEFAULT_SETTINGS
    ) -> None:
        self.columns = tuple(columns)
        index = {c: i for i, c in enumerate(self.columns)}
        self.places = places_of(self.columns)
        if not self.places:
            raise ValueError("no complete sensor (acc and gyr x/y/z) among the columns to align")
        self._index = {
            p: (
                [index[imu_column(p, "acc", a)] for a in SENSOR_AXES],
                [index[imu_column(p, "gyr", a)] for a in SENSOR_AXES],
            )
            for p in self.places
        }
        self.aligners = {p: SegmentAligner(p, rate_hz, settings) for p in self.places}

    def update(self, values: FloatArray) -> None:
        """Add samples (rows; columns as :attr:`columns`)."""
        for place, aligner in self.aligners.items():
            acc_cols, gyr_cols = self._index[place]
            aligner.update(values[:, acc_cols], values[:, gyr_cols])

    def results(self) -> dict[str, SegmentAlignment]:
        """Every place's current estimate."""
        return {p: a.result() for p, a in self.aligners.items()}

    def converged(self) -> bool:
        """Whether every place's estimate has converged."""
        return all(r.converged for r in self.results().values())

    def apply(self, values: FloatArray, results: dict[str, SegmentAlignment] | None = None) -> FloatArray:
        """Rotate every place's acc and gyr into its segment frame; returns a new array.

        Raises
        ------
        AlignmentError
            If a place has not converged (naming it and why).
        """
        return apply_alignment(self.columns, values, results if results is not None else self.results())


def apply_alignment(columns: tuple[str, ...], values: FloatArray, results: dict[str, SegmentAlignment]) -> FloatArray:
    """Rotate the acc and gyr columns of each place in ``results`` (columns of other places are copied).

    Raises
    ------
    AlignmentError
        If an estimate in ``results`` has not converged, or its columns are missing.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    index = {c: i for i, c in enumerate(columns)}
    for place, result in results.items():
        rotation_t = result.matrix().T
        for kind in ("acc", "gyr"):
            names = [imu_column(place, kind, a) for a in SENSOR_AXES]
            missing = [n for n in names if n not in index]
            if missing:
                raise AlignmentError(f"{place}: column(s) {', '.join(missing)} missing from the data to align")
            cols = [index[n] for n in names]
            out[:, cols] = out[:, cols] @ rotation_t
    return out


def align_offline(
    columns: tuple[str, ...], values: FloatArray, rate_hz: float, settings: AlignmentSettings = DEFAULT_SETTINGS
) -> tuple[FloatArray, dict[str, SegmentAlignment]]:
    """Fit on the whole of ``values`` and rotate it (one trial, or trials of one session stacked).

    Raises
    ------
    AlignmentError
        If any sensor's estimate did not converge (naming every such sensor and why).
    """
    aligner = StreamAligner(columns, rate_hz, settings)
    aligner.update(values)
    results = aligner.results()
    failed = [r.reason for r in results.values() if not r.converged]
    if failed:
        raise AlignmentError("; ".join(failed))
    return aligner.apply(values, results), results


def angle_deg(a: FloatArray, b: FloatArray) -> float:
    """Angle of the rotation between two rotation matrices, in degrees."""
    cos = (float(np.trace(np.asarray(a) @ np.asarray(b).T)) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))
