"""A patient profile written by the host over the in-process BLE link reaches the running device.

The device is a real runtime (the int8 package, the synthetic walker, biofeedback on stdout) with its GATT
server on bumble's in-process link; the host is the real host client through bleak's bumble backend.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError
from device_toml import BOTH_LEGS_TOML
from virtual_sync import QUICK, until

from forcecast.edge.ble.serve import gatt_server
from forcecast.edge.features import static_features
from forcecast.edge.profile import WIRE, PatientProfile, StaleProfileError, encode_profile
from forcecast.edge.protocol import CONTROL_UUID, SERVICE_UUID, Opcode, ProtocolError, Status, encode_request
from forcecast.edge.runtime.inference import bounded_static
from forcecast.edge.runtime.launch import Runtime, build_runtime
from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner
from forcecast.host_app.client import HostLogger
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import VirtualLink, virtual_link

logging.getLogger("bumble").setLevel(logging.ERROR)
DATA = Path(__file__).parents[1] / "data"
PACKAGE = DATA / "grf_int8.fcpkg"
PUBKEY = DATA / "forcecast-test.pub"
INSUFFICIENT_ENCRYPTION = 0x0F
PROFILE = PatientProfile(
    version=7, feedback_limit_bw=0.6, body_mass_kg=81.5, height_m=1.83, hka_deg=6.5, affected_side="left"
)


class StaticSpy:
    """The model, recording the static input of every inference (what the model really gets)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.static_fed: list[np.ndarray | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def run_encoded(self, **feed: Any) -> Any:
        self.static_fed.append(feed.get("static"))
        return self.model.run_encoded(**feed)


def device(folder: Path) -> Runtime:
    """A runtime on the synthetic walker: no cue limit and another person's body in device.toml."""
    config = folder / "device.toml"
    config.write_text(
        'device_id = "fc-profile"\n[patient]\npatient_id = "P-PROF"\nbody_mass_kg = 60.0\nheight_m = 1.6\n'
        'peak_limit_bw = 0.0\naffected_side = "none"\n' + BOTH_LEGS_TOML.replace('output = "none"', 'output = "stdout"')
    )
    return build_runtime(PACKAGE, "synthetic:3", config, [PUBKEY], folder / "device.sqlite", speed=3.0)


def expected_static(runtime: Runtime, leg: str) -> np.ndarray:
    predictor = runtime.pipeline.predictors[leg]
    raw = static_features(PROFILE.hka_deg, PROFILE.affected_side, PROFILE.body_mass_kg, PROFILE.height_m, leg)
    return np.asarray(predictor.model.encode("static", bounded_static(runtime.contract, raw)[None, :]))


def test_a_profile_written_by_the_host_changes_the_running_device_and_its_event_reaches_the_host(tmp_path, capsys):
    runtime = device(tmp_path)
    spies = {leg: StaticSpy(p.model) for leg, p in runtime.pipeline.predictors.items()}
    for leg, predictor in runtime.pipeline.predictors.items():
        predictor.model = spies[leg]
    host = HostStore(tmp_path / "host.sqlite")

    async def scenario() -> dict[str, Any]:
        async with virtual_link(lambda d: gatt_server(runtime, d)) as link:
            logger = link.logger(host, QUICK)
            logging_task = asyncio.create_task(logger.run())
            running = asyncio.create_task(asyncio.to_thread(runtime.run, 120.0))
            try:
                await until(lambda: logger.client is not None and runtime.pipeline.report.steps.get("r", 0) >= 4)
                assert logger.device_info["profile_version"] == 0
                cues_before = len(runtime.pipeline.feedback.events)
                applied = await logger.write_profile(PROFILE)
                limit_at_reply = runtime.pipeline.feedback.limit_bw  # no chunk needed: at once
                await until(
                    lambda: any(
                        r.payload.get("event") == "profile_applied" for r in host.records("fc-profile", "event")
                    )
                )
                await until(lambda: len(runtime.pipeline.feedback.events) > cues_before + 2)
                again = await logger.write_profile(PROFILE)  # a retry after a lost reply: the same version
                with pytest.raises(StaleProfileError) as stale:
                    await logger.write_profile(PatientProfile(6, 2.0, 70.0, 1.7))
                assert logger.client is not None
                with pytest.raises(ProtocolError) as bad:
                    await logger.client.control.request(Opcode.PROFILE, WIRE.pack(8, 9000, 7000, 1700, 0, 0))
            finally:
                runtime.source.close()
                report = await running
                logger.stop()
                await logging_task
            return {
                "applied": applied,
                "again": again,
                "limit_at_reply": limit_at_reply,
                "stale": stale.value,
                "bad": bad.value,
                "cues_before": cues_before,
                "report": report,
            }

    result = asyncio.run(scenario())
    assert result["applied"] == result["again"] == 7 and result["limit_at_reply"] == 0.6
    assert (result["stale"].version, result["stale"].current_version) == (6, 7)
    assert result["bad"].status is Status.BAD_ARGUMENT and "out_of_range" in str(result["bad"])
    # Biofeedback: nothing cued under device.toml's "no cue"; cues against the new limit after it.
    pipeline = runtime.pipeline
    assert result["cues_before"] == 0 and pipeline.feedback.events
    assert {e.limit_bw for e in pipeline.feedback.events} == {0.6}
    assert all(json.loads(line)["limit_bw"] == 0.6 for line in capsys.readouterr().out.splitlines() if "cue" in line)
    # Static features: the model's static input changed to the profile's, for both legs; body mass converts BW.
    for leg, spy in spies.items():
        fed = [s for s in spy.static_fed if s is not None]
        assert not np.array_equal(fed[0], expected_static(runtime, leg))
        assert np.array_equal(fed[-1], expected_static(runtime, leg)), leg
    patient = pipeline.patient
    assert (patient.peak_limit_bw, patient.body_mass_kg, patient.height_m) == (0.6, 81.5, 1.83)
    assert (patient.hka_deg, patient.affected_side, patient.patient_id) == (6.5, "left", "P-PROF")
    assert pipeline.body_weight_n == pytest.approx(81.5 * 9.80665)
    # The event record reached the host once, with the profile it applied.
    events = [r.payload for r in host.records("fc-profile", "event") if r.payload.get("event") == "profile_applied"]
    assert len(events) == 1 and events[0]["profile"] == PROFILE.to_json() and events[0]["v"] == 2
    # Stored beside the record store: the next start runs it.
    assert json.loads((tmp_path / "profile.json").read_text()) == PROFILE.to_json()
    runtime.close()
    restarted = device(tmp_path)
    try:
        assert restarted.pipeline.patient_state.version == 7 and restarted.pipeline.feedback.limit_bw == 0.6
        assert restarted.pipeline.patient.body_mass_kg == 81.5 and restarted.info()["profile_version"] == 7
        assert "profile version 7" in restarted.describe()
    finally:
        restarted.close()


async def find(link: VirtualLink) -> Any:
    from bleak import BleakScanner

    found = await BleakScanner.find_device_by_filter(
        lambda _d, adv: SERVICE_UUID in adv.service_uuids, timeout=2.0, backend=BumbleScanner, **link.backend_kwargs
    )
    assert found is not None
    return found


def test_an_unpaired_central_cannot_write_a_profile(tmp_path):
    runtime = device(tmp_path)

    async def scenario() -> int:
        async with virtual_link(lambda d: gatt_server(runtime, d)) as link:
            central = BleakClient(await find(link), backend=BumbleClient, **link.backend_kwargs)
            async with central as client:  # connected, never paired: no encryption
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(
                        CONTROL_UUID, encode_request(Opcode.PROFILE, 1, encode_profile(PROFILE)), True
                    )
                return int(refused.value.code)

    try:
        assert asyncio.run(scenario()) == INSUFFICIENT_ENCRYPTION
        assert runtime.pipeline.patient_state.version == 0 and runtime.pipeline.feedback.limit_bw == 0.0
        assert not (tmp_path / "profile.json").exists()
    finally:
        runtime.close()


def test_writing_a_profile_waits_for_a_streaming_session_and_gives_up_after_its_wait(tmp_path):
    logger = HostLogger(HostStore(tmp_path / "host.sqlite"))  # never run: no device in range
    with pytest.raises(TimeoutError):
        asyncio.run(logger.write_profile(PROFILE, wait_s=0.05))
    assert logger.client is None
