"""One model loader and one owner of the running model (forcecast.edge.runtime.lifecycle).

Every entry point that turns a package into a running model gives the same refusal reason for the same
bad package; the running model is switched and its trial ended under one lock, which the pipeline
thread never waits for.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from packages import INT8, resign, signing_key
from pipelines import replay_trial

from forcecast.demo import device_model
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import PackageError
from forcecast.edge.runtime.bench import load_benched
from forcecast.edge.runtime.config import DeviceConfig, load_device_config
from forcecast.edge.runtime.health import Health
from forcecast.edge.runtime.launch import build_runtime
from forcecast.edge.runtime.lifecycle import ModelFit, load_model
from forcecast.edge.runtime.store import RecordStore
from forcecast.edge.runtime.updates import ModelUpdates, sensor_columns, start_model
from forcecast.edge.slots import ModelSlots, SlotError
from forcecast.host_app.model_folder import flash_folder, folder_updates
from forcecast.lab.sources.synthetic import SyntheticSource

PLACES = ("r_shank", "r_thigh", "pelvis", "l_shank", "l_thigh")
"""The device's sensors (and so the replayed trial's columns): no foot sensor."""


@dataclass(frozen=True)
class Device:
    """A device configuration, its sensors' replayed walk, the key it trusts, and a scratch folder."""

    folder: Path
    config_path: Path
    config: DeviceConfig
    public: Path
    walk: Path

    @property
    def columns(self) -> tuple[str, ...]:
        return sensor_columns(self.config)

    def trusted(self) -> list:
        return [load_public_key(k) for k in self.config.trusted_keys]


def write_config(folder: Path, public: Path, health_s: float = 20.0) -> Path:
    path = folder / "device.toml"
    sensors = "".join(
        f'[[sensors]]\nplace = "{place}"\nbus = {1 + k}\naddress = 0x6A\n' for k, place in enumerate(PLACES)
    )
    path.write_text(
        f'device_id = "fc-life"\ntrusted_keys = ["{public}"]\n'
        '[patient]\npatient_id = "S02"\nbody_mass_kg = 72.0\nheight_m = 1.74\nhka_deg = 4.0\naffected_side = "right"\n'
        '[runtime]\nlegs = ["l", "r"]\n'
        f"{sensors}"
        '[feedback]\noutput = "none"\n'
        f'[models]\nfolder = "{folder / "models"}"\nhealth_s = {health_s}\nhealth_steps = 0\n'
    )
    return path


def write_walk(folder: Path, seconds: float) -> Path:
    """Standing, then walking, from the device's five sensors, as a replayable CSV trial."""
    source = SyntheticSource(
        subject=2,
        seed=5,
        speed=0,
        stand_s=3.0,
        program=(("comfortable", seconds),),
        duration_s=3.0 + seconds,
        places=PLACES,
    )
    return replay_trial(folder, source, "S02", "walk")


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    root = tmp_path_factory.mktemp("life")
    key, public = signing_key(root / "keys")
    untrusted, _ = signing_key(root / "untrusted")
    walk = write_walk(root / "ds", 6.0)
    return root, key, public, untrusted, walk


def foot_sensor(contract: dict) -> None:
    contract["leg_places"][1] = "ipsi_foot"  # a foot sensor this device does not have
    if "channels" in contract:
        contract["channels"] = [c.replace("ipsi_thigh", "ipsi_foot") for c in contract["channels"]]


def longer_window(contract: dict) -> None:
    contract["window"] += 8  # a valid contract, but not the shape of the model's input tensor


def wrong_outputs(golden: list[dict]) -> None:
    for pair in golden:
        pair["output"] = (np.asarray(pair["output"]) + 0.5).tolist()


@pytest.fixture(scope="module")
def bad_packages(signer) -> dict[str, Path]:
    root, key, _, untrusted, _ = signer
    return {
        "untrusted_key": resign(INT8, root / "untrusted.fcpkg", untrusted, "int8-untrusted"),
        "contract_mismatch": resign(INT8, root / "foot.fcpkg", key, "int8-foot", contract=foot_sensor),
        "contract_invalid": resign(INT8, root / "shape.fcpkg", key, "int8-shape", contract=longer_window),
        "selftest_failed": resign(INT8, root / "golden.fcpkg", key, "int8-golden", golden=wrong_outputs),
    }


def device(signer, tmp_path: Path, health_s: float = 20.0) -> Device:
    _, _, public, _, walk = signer
    config_path = write_config(tmp_path, public, health_s)
    return Device(tmp_path, config_path, load_device_config(config_path), public, walk)


# ---------------------------------------------------------------------------- entry points: (reason, detail)


def via_launch(package: Path, d: Device) -> tuple[str, str]:
    """``forcecast edge run --model PKG``."""
    with pytest.raises(PackageError) as caught:
        build_runtime(package, f"replay:{d.walk}", d.config_path, [], store_path=d.folder / "launch.sqlite")
    return caught.value.reason, str(caught.value)


def via_start(package: Path, d: Device) -> tuple[str, str]:
    """A start from the model slots with ``package`` as the active model."""
    slots = ModelSlots(d.folder / "start", d.trusted())
    slots.folder.mkdir(parents=True, exist_ok=True)
    slots.active.write_bytes(package.read_bytes())
    with pytest.raises(PackageError) as caught:
        start_model(slots, d.config, d.columns)
    return caught.value.reason, str(caught.value)


def upload(updates: ModelUpdates, data: bytes) -> None:
    """Send ``data`` through the device's receiver as a host would."""
    offset, _ = updates.begin(len(data), hashlib.sha256(data).hexdigest())
    while offset < len(data):
        updates.chunk(offset, data[offset : offset + 32768])
        offset += len(data[offset : offset + 32768])


def via_commit(package: Path, d: Device) -> tuple[str, str]:
    """An upload committed over BLE (what the link's UPLOAD_COMMIT calls)."""
    updates = ModelUpdates(ModelSlots(d.folder / "commit", d.trusted()), d.config, d.columns)
    upload(updates, package.read_bytes())
    with pytest.raises(SlotError) as caught:
        updates.commit()
    assert not updates.slots.active.exists()
    return caught.value.reason, str(caught.value)


def via_flash_path(package: Path, d: Device) -> tuple[str, str]:
    """``forcecast flash PKG --path FOLDER``."""
    result = flash_folder(package, folder_updates(d.folder / "flash", d.config_path, []))
    assert result["state"] == "refused", result
    return result["reason"], result["detail"]


def via_bench(package: Path, d: Device) -> tuple[str, str]:
    """``forcecast edge bench --model PKG --pubkey KEY``."""
    with pytest.raises(PackageError) as caught:
        load_benched(package, [d.public], d.columns)
    return caught.value.reason, str(caught.value)


def via_demo(package: Path, d: Device) -> tuple[str, str]:
    """``forcecast demo``'s device."""
    with pytest.raises(PackageError) as caught:
        device_model(package, d.public, d.config, d.columns)
    return caught.value.reason, str(caught.value)


ENTRY_POINTS: dict[str, Callable[[Path, Device], tuple[str, str]]] = {
    "launch --model": via_launch,
    "slots start": via_start,
    "updates commit": via_commit,
    "flash --path": via_flash_path,
    "bench": via_bench,
    "demo": via_demo,
}
DETAIL = {
    "untrusted_key": "not trusted",
    "contract_mismatch": "foot",
    "contract_invalid": "shape",
    "selftest_failed": "golden self-test failed",
}


@pytest.mark.parametrize("reason", sorted(DETAIL))
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_a_bad_package_for_the_same_reason(signer, bad_packages, tmp_path, entry, reason):
    got, detail = ENTRY_POINTS[entry](bad_packages[reason], device(signer, tmp_path))
    assert got == reason, f"{entry}: {got} ({detail})"
    assert DETAIL[reason] in detail, detail
    assert ".fcpkg" in detail  # it names the file it refused (the upload's own copy for a commit)


def test_the_good_package_they_were_made_from_loads_everywhere(signer, tmp_path):
    _, key, public, _, _ = signer
    d = device(signer, tmp_path)
    good = resign(INT8, tmp_path / "good.fcpkg", key, "int8-good")
    assert load_model(good, d.trusted(), ModelFit.of(d.config, d.columns)).version == "int8-good"
    assert device_model(good, public, d.config, d.columns).version == "int8-good"
    assert load_benched(good, [public], d.columns).version == "int8-good"
    assert flash_folder(good, folder_updates(tmp_path / "flash", d.config_path, []))["state"] == "switched"
    runtime = build_runtime(good, f"replay:{d.walk}", d.config_path, [], store_path=tmp_path / "s.sqlite")
    try:
        assert runtime.info()["model_version"] == "int8-good" and runtime.updates is None
    finally:
        runtime.close()


def test_bench_without_keys_checks_everything_but_the_signature(signer, bad_packages, tmp_path):
    d = device(signer, tmp_path)
    assert load_benched(bad_packages["untrusted_key"], [], d.columns).version == "int8-untrusted"
    with pytest.raises(PackageError) as caught:
        load_benched(bad_packages["selftest_failed"], [], d.columns)
    assert caught.value.reason == "selftest_failed"
    damaged = bytearray(INT8.read_bytes())
    damaged[int(len(damaged) * 0.6)] ^= 0x5A
    (tmp_path / "damaged.fcpkg").write_bytes(bytes(damaged))
    with pytest.raises(PackageError) as caught:
        load_benched(tmp_path / "damaged.fcpkg", [], d.columns)
    assert caught.value.reason in ("model_mismatch", "unreadable")


# ---------------------------------------------------------------------------- the running model's owner


@pytest.fixture
def on_trial(signer, tmp_path):
    """A runtime from the slots whose model is on trial (health period 0 s: its first output is enough)."""
    _, key, _, _, _ = signer
    d = device(signer, tmp_path, health_s=0.0)
    updates = folder_updates(d.folder / "models", d.config_path, [])
    assert flash_folder(resign(INT8, tmp_path / "v2.fcpkg", key, "int8-v2"), updates)["state"] == "switched"
    runtime = build_runtime(None, f"replay:{d.walk}", d.config_path, [], store_path=tmp_path / "s.sqlite")
    assert runtime.slots is not None and runtime.slots.on_trial and runtime.updates is not None
    yield runtime, d
    runtime.close()


def healthy_output(runtime) -> None:
    runtime.health.listener("grf", {"leg": "r", "time_s": np.array([1.0, 1.01]), "grf_bw": np.full((2, 3), 0.5)})
    assert runtime.health.state is Health.HEALTHY


def test_the_pipeline_thread_never_waits_for_a_commit_and_confirms_after_it(on_trial):
    runtime, _ = on_trial
    lifecycle = runtime.lifecycle
    healthy_output(runtime)
    holding, release = threading.Event(), threading.Event()

    def commit_in_progress() -> None:
        with runtime.updates.held():
            holding.set()
            release.wait(10.0)

    worker = threading.Thread(target=commit_in_progress)
    worker.start()
    assert holding.wait(10.0)
    started = time.monotonic()
    lifecycle.check_trial()  # what the pipeline thread does after a chunk, while the commit self-tests
    waited = time.monotonic() - started
    assert runtime.slots.on_trial and runtime.health.state is Health.HEALTHY  # nothing decided yet
    release.set()
    worker.join(10.0)
    assert waited < 1.0, waited  # it gave up at once rather than stall inference
    lifecycle.check_trial()  # a later chunk
    assert not runtime.slots.on_trial and runtime.health.state is Health.IDLE
    with RecordStore(runtime.store.path) as store:
        events = [r.payload["event"] for r in store.records("event", limit=100)]
    assert "model_confirmed" in events


def test_a_switch_publishes_one_consistent_snapshot(on_trial, signer, tmp_path):
    runtime, _ = on_trial
    _, key, _, _, _ = signer
    before = runtime.lifecycle.current
    data = resign(INT8, tmp_path / "v3.fcpkg", key, "int8-v3", created_utc="2026-11-23T00:00:00Z").read_bytes()
    updates = runtime.updates
    upload(updates, data)
    assert updates.commit() == "int8-v3" and updates.last_result["live"]
    after = runtime.lifecycle.current
    assert before.version == "int8-v2" and after.version == "int8-v3"
    assert after.sha256 == hashlib.sha256(data).hexdigest() == runtime.info()["package_sha256"]
    assert after.package.path == runtime.slots.active and runtime.package is after.package
    assert runtime.slots.on_trial  # the switched model is on trial, watched from its first inference
    chunk = next(iter(runtime.source.chunks()))
    runtime.pipeline.push(chunk.time_s, chunk.values)  # the pipeline thread takes the new model over here
    assert runtime.pipeline.model_version == "int8-v3"


def test_a_fixed_package_takes_no_switch(signer, tmp_path):
    _, key, _, _, _ = signer
    d = device(signer, tmp_path)
    good = resign(INT8, tmp_path / "good.fcpkg", key, "int8-good")
    runtime = build_runtime(good, f"replay:{d.walk}", d.config_path, [], store_path=tmp_path / "s.sqlite")
    try:
        from forcecast.edge.contract import ContractError

        with pytest.raises(ContractError, match="fixed package"):
            runtime.lifecycle.switch(runtime.lifecycle.current.loaded)
        runtime.lifecycle.check_trial()  # nothing on trial: nothing happens
        assert runtime.lifecycle.current.version == "int8-good"
    finally:
        runtime.close()
