"""The device's answer to the control point's ``PROFILE`` request: check, store atomically, apply live.

:class:`forcecast.edge.link.DeviceLink` hands it the request's payload (on a worker thread of the GATT server,
only for an encrypted, bonded host, like every control-point request) and turns what it returns or raises
into the reply: ``OK`` with the version now applied, ``STALE`` with the device's version, ``BAD_ARGUMENT``
with the reason, or ``BUSY`` when the profile could not be stored (then nothing changed).

A profile is stored before it is applied, so what runs is always what the next start loads.
"""

from __future__ import annotations

import threading

from forcecast.edge.profile import ProfileFile, StaleProfileError, decode_profile
from forcecast.edge.runtime.patient_state import PatientState


class ProfileHandler:
    """Take patient profiles written by a host.

    Parameters
    ----------
    stored
        The device's ``profile.json``.
    state
        The running pipeline's patient state (:attr:`forcecast.edge.runtime.pipeline.Pipeline.patient_state`).
    """

    def __init__(self, stored: ProfileFile, state: PatientState) -> None:
        self.stored = stored
        self.state = state
        self._lock = threading.Lock()

    def write(self, payload: bytes) -> int:
        """Decode a profile's wire form, store it and apply it; return its version.

        Raises
        ------
        forcecast.edge.profile.ProfileError
            If the payload is not a valid profile (nothing changes).
        StaleProfileError
            If its version is not newer than the one in effect (nothing changes).
        OSError
            If it cannot be stored (a full disk): nothing changes.
        """
        profile = decode_profile(payload)
        with self._lock:  # one write at a time: check, store and apply belong together
            if profile.version <= self.state.version:
                raise StaleProfileError(profile.version, self.state.version)
            self.stored.save(profile)
            self.state.apply(profile)
        return profile.version
