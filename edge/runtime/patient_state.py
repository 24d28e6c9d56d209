"""The patient a running device serves: ``device.toml``'s ``[patient]``, replaced live by newer profiles.

:class:`PatientState` is the one owner of the values a clinic may change while the device runs (the
feedback limit and the static features, :class:`forcecast.edge.profile.PatientProfile`). Threads:

- a **worker thread** of the GATT server applies a profile (:meth:`PatientState.apply`, under the state's
  lock), after :class:`forcecast.edge.ble.profile.ProfileHandler` stored it;
- the **feedback gate** reads the limit (:meth:`PatientState.feedback_limit_bw`, one attribute read) at every
  GRF block, so a new limit holds from the next block on;
- the **pipeline thread** compares :attr:`PatientState.generation` at every chunk and, when it changed, takes
  the new patient and the ``profile_applied`` events waiting for it (:meth:`PatientState.take`): body mass
  and static features feed the model from its next inference, and the events go to the store in stream order.

At start, :func:`start_patient` puts the stored profile (``profile.json``) over ``device.toml``'s values,
which count as version 0.
"""

from __future__ import annotations

import logging
import threading

from forcecast.edge.profile import PatientProfile, ProfileError, ProfileFile, StaleProfileError
from forcecast.edge.records import EventRecord, EventType
from forcecast.edge.runtime.config import PatientConfig

log = logging.getLogger(__name__)


def describe(profile: PatientProfile) -> str:
    """One line saying what a profile sets, e.g. ``version 4: cue limit 1.25 BW; 72.5 kg, 1.76 m, ...``."""
    limit = "no cue" if profile.feedback_limit_bw is None else f"cue limit {profile.feedback_limit_bw:g} BW"
    hka = "HKA unknown" if profile.hka_deg is None else f"HKA {profile.hka_deg:g}°"
    return (
        f"version {profile.version}: {limit}; {profile.body_mass_kg:g} kg, {profile.height_m:g} m, {hka}, "
        f"affected side {profile.affected_side}"
    )


class PatientState:
    """The running device's patient values and the version of the profile that set them (0: ``device.toml``).

    Parameters
    ----------
    patient
        ``device.toml``'s ``[patient]`` (or a replayed subject's).
    profile
        A stored profile to put over it (its version becomes the state's).
    """

    def __init__(self, patient: PatientConfig, profile: PatientProfile | None = None) -> None:
        self._lock = threading.Lock()
        self._patient = patient if profile is None else profile.apply_to(patient)
        self._version = 0 if profile is None else profile.version
        self._generation = 0
        self._events: list[EventRecord] = []

    @property
    def patient(self) -> PatientConfig:
        """The current values (an immutable snapshot)."""
        return self._patient

    @property
    def version(self) -> int:
        """The version of the profile in effect (0: none, ``device.toml``'s values)."""
        return self._version

    @property
    def generation(self) -> int:
        """Counts the profiles applied since start: the pipeline compares it at every chunk."""
        return self._generation

    def feedback_limit_bw(self) -> float:
        """The cue threshold now (BW; 0 = no cue): the feedback gate calls this at every GRF block."""
        return self._patient.peak_limit_bw

    def apply(self, profile: PatientProfile) -> PatientConfig:
        """Make ``profile`` the patient's values from now on; returns them.

        The feedback limit holds at once; body mass and static features from the pipeline's next chunk,
        which also records the ``profile_applied`` event.

        Raises
        ------
        StaleProfileError
            If ``profile`` is not newer than the version in effect (nothing changes).
        """
        with self._lock:
            if profile.version <= self._version:
                raise StaleProfileError(profile.version, self._version)
            patient = profile.apply_to(self._patient)
            self._events.append(
                EventRecord(event=EventType.PROFILE_APPLIED, profile=profile.to_json(), detail=describe(profile))
            )
            self._patient, self._version = patient, profile.version
            self._generation += 1
        log.info("patient profile %s applied", describe(profile))
        return patient

    def take(self) -> tuple[int, PatientConfig, list[EventRecord]]:
        """For the pipeline thread: the generation, the current values and the events not yet recorded."""
        with self._lock:
            events, self._events = self._events, []
            return self._generation, self._patient, events


def start_patient(patient: PatientConfig, stored: ProfileFile) -> PatientState:
    """The patient state a start runs with: ``stored`` (if any) over ``patient``.

    A damaged ``profile.json`` (it never should be: it is written atomically) is logged and set aside as
    ``profile.json.damaged``; the device then runs ``device.toml``'s values and takes the next profile a host
    writes, whatever its version.
    """
    try:
        profile = stored.load()
    except ProfileError as exc:
        log.error("%s; running device.toml's [patient] values until a host writes a profile", exc)
        try:
            stored.path.replace(stored.path.with_name(stored.path.name + ".damaged"))
        except OSError as move:
            log.error("cannot set %s aside: %s", stored.path, move)
        return PatientState(patient)
    if profile is not None:
        log.info("patient profile from %s over device.toml's [patient]: %s", stored.path, describe(profile))
    return PatientState(patient, profile)
