"""Put a trial's IMU and force streams on one time base at a model's rate."""

from __future__ import annotations

import numpy as np

from forcecast.edge.dsp.resample import resample
from forcecast.lab.dataset.trial import Stream, Trial


def resample_trial(trial: Trial, rate_hz: float) -> Trial:
    """Resample a trial to ``rate_hz`` on one shared grid, with anti-aliasing.

    IMU channels go through the **causal** resampler (the code the device runs), force channels
    through the **zero-phase** one (targets must not be delayed). The result covers the time
    both streams cover; samples the input did not have (gaps, NaN) are NaN.

    Parameters
    ----------
    trial
        A trial as read from a dataset (single file or IMU/force pair).
    rate_hz
        The model's sampling rate.

    Returns
    -------
    Trial
        A trial whose ``imu`` and ``force`` share ``time_s``.
    """
    imu_t, imu_v = resample(trial.imu.time_s, trial.imu.values, rate_hz, causal=True)
    if trial.force is None:
        return Trial(trial.subject_id, trial.trial_id, Stream(imu_t, trial.imu.columns, imu_v, trial.imu.source), None)
    force_t, force_v = resample(trial.force.time_s, trial.force.values, rate_hz, causal=False)
    # Both grids are multiples of 1/rate_hz, so the overlap is an exact index range in each.
    k_imu = np.rint(imu_t * rate_hz).astype(np.int64)
    k_force = np.rint(force_t * rate_hz).astype(np.int64)
    first, last = max(k_imu[0], k_force[0]), min(k_imu[-1], k_force[-1])
    if last < first:
        raise ValueError(f"{trial.subject_id}/{trial.trial_id}: IMU and force times do not overlap")
    imu_slice = slice(int(first - k_imu[0]), int(last - k_imu[0]) + 1)
    force_slice = slice(int(first - k_force[0]), int(last - k_force[0]) + 1)
    time_s = imu_t[imu_slice]
    return Trial(
        trial.subject_id,
        trial.trial_id,
        Stream(time_s, trial.imu.columns, imu_v[imu_slice], trial.imu.source),
        Stream(time_s, trial.force.columns, force_v[force_slice], trial.force.source),
    )
