"""Model flashing over the in-process BLE link, into a model folder, and through a killed commit.

The device side is the real runtime (from its model slots) behind the real GATT server; the host
side is the real :class:`forcecast.host_app.flash.Flasher` through bleak with the bumble backend. Packages are
the real test models re-signed with keys made here, so every self-test really runs a model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from device_toml import BOTH_LEGS_TOML
from packages import FLOAT32, INT8, TEST_PUBKEY, edit_manifest, flip_byte, resign, signing_key
from pipelines import replay_trial

from forcecast.edge.ble.serve import gatt_server
from forcecast.edge.keys import load_public_key
from forcecast.edge.link import DeviceLink
from forcecast.edge.package import read_package
from forcecast.edge.runtime.config import load_device_config
from forcecast.edge.runtime.launch import build_runtime
from forcecast.edge.runtime.lifecycle import ModelFit, load_model
from forcecast.edge.runtime.store import RecordStore
from forcecast.edge.runtime.updates import ModelUpdates, sensor_columns
from forcecast.edge.slots import ModelSlots
from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner
from forcecast.host_app.client import ClientConfig
from forcecast.host_app.flash import FlashConfig, Flasher, device_request
from forcecast.host_app.model_folder import flash_folder, folder_updates
from forcecast.host_app.store import HostStore
from forcecast.host_app.virtual_link import VirtualLink, virtual_link
from forcecast.lab.sources.synthetic import SyntheticSource

logging.getLogger("bumble").setLevel(logging.ERROR)
FAST = ClientConfig(scan_timeout_s=2.0, connect_timeout_s=3.0, backoff_min_s=0.05, backoff_max_s=0.3, ack_period_s=0.2)
FLASH = FlashConfig(ack_timeout_s=1.0, attempts=40, backoff_s=0.05)
OLD = read_package(INT8).manifest["model_version"]


def device_config(tmp: Path, trusted: list[Path], health_s: float = 20.0) -> Path:
    """Both legs on five sensors, models in ``tmp/models``, trusting ``trusted``; a ``health_s`` health period."""
    path = tmp / "device.toml"
    keys = ", ".join(f'"{k}"' for k in trusted)
    path.write_text(
        f'device_id = "fc-flash"\ntrusted_keys = [{keys}]\n'
        '[patient]\npatient_id = "S02"\nbody_mass_kg = 72.0\nheight_m = 1.74\nhka_deg = 4.0\naffected_side = "right"\n'
        f"{BOTH_LEGS_TOML}"
        f'[models]\nfolder = "{tmp / "models"}"\nhealth_s = {health_s}\n'
    )
    return path


def walk(folder: Path, seconds: float) -> Path:
    """3 s of standing, then ``seconds`` of comfortable walking, as a replayable trial."""
    source = SyntheticSource(
        subject=2, seed=5, speed=0, stand_s=3.0, program=(("comfortable", seconds),), duration_s=3.0 + seconds
    )
    return replay_trial(folder, source, "S02", "walk")


def flasher(link: VirtualLink, package: Path, progress=None) -> Flasher:
    return Flasher(
        package,
        client_config=FAST,
        flash_config=FLASH,
        progress=progress,
        scanner_backend=BumbleScanner,
        client_backend=BumbleClient,
        backend_kwargs=link.backend_kwargs,
    )


async def until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def keys(tmp_path):
    key, public = signing_key(tmp_path / "keys")
    untrusted, _ = signing_key(tmp_path / "untrusted")
    return key, public, untrusted


@pytest.mark.slow
def test_a_250_kb_package_flashes_and_the_runtime_switches_without_losing_a_step(tmp_path, keys):
    key, public, _ = keys
    big = resign(FLOAT32, tmp_path / "big.fcpkg", key, "float32-flashed", edgetpu_model=read_package(FLOAT32).model)
    assert big.stat().st_size >= 250_000
    config = device_config(tmp_path, [TEST_PUBKEY, public])
    assert flash_folder(INT8, folder_updates(tmp_path / "models", config, []))["state"] == "switched"
    runtime = build_runtime(None, f"replay:{walk(tmp_path / 'ds', 150.0)}", config, [], tmp_path / "d.sqlite", 12.0)
    assert runtime.updates is not None and runtime.pipeline.model_version == OLD

    async def scenario():
        async with virtual_link(lambda device: gatt_server(runtime, device)) as link:
            host = HostStore(tmp_path / "host.sqlite")
            logger = link.logger(host, FAST)
            client = asyncio.create_task(logger.run())
            running = asyncio.create_task(asyncio.to_thread(runtime.run))
            await until(lambda: runtime.pipeline.report.stream_s > 30.0)
            logger.stop()  # one central at a time: the logger makes way for the flash and comes back
            await client
            flash = await flasher(link, big).run()
            logger = link.logger(host, FAST)
            client = asyncio.create_task(logger.run())
            report = await running
            last = runtime.store.last_seq("step")
            await until(lambda: host.resume_point("fc-flash", "step") >= last, 120.0)
            logger.stop()
            await client
            host_steps = [(r.seq, r.payload) for r in host.records("fc-flash", "step")]
            host.close()
            return flash, report, host_steps

    flash, report, host_steps = asyncio.run(scenario())
    device_steps = [(r.seq, r.payload) for r in runtime.store.records("step", limit=10**6)]
    events = [r.payload for r in runtime.store.records("event", limit=10**6)]
    runtime.close()
    print(json.dumps({"flash": flash.as_dict(), "steps": len(device_steps)}))

    assert flash.state == "switched", flash.as_dict()
    assert (flash.model_before, flash.model_after) == (OLD, "float32-flashed")
    assert runtime.pipeline.model_version == "float32-flashed"
    slots = ModelSlots(tmp_path / "models", [])
    assert sha256(slots.active) == sha256(big) and sha256(slots.folder / "previous.fcpkg") == sha256(INT8)
    assert not slots.on_trial  # the switched model ran and confirmed itself
    assert next(e for e in events if e["event"] == "model_switched")["to"] == "float32-flashed"
    # nothing lost: the host holds every step record once, in order, and both models produced steps
    assert [s for s, _ in host_steps] == [s for s, _ in device_steps] == list(range(1, len(device_steps) + 1))
    versions = [p["model_version"] for _, p in device_steps]
    switched_at = versions.index("float32-flashed")
    assert set(versions[:switched_at]) == {OLD} and set(versions[switched_at:]) == {"float32-flashed"}
    assert switched_at > 20 and len(versions) - switched_at > 20
    # and no stance was dropped at the switch: each leg's steps follow each other without a gap
    for leg in ("l", "r"):
        contacts = np.array([p["ic_s"] for _, p in device_steps if p["leg"] == leg])
        assert np.diff(contacts).max() < 1.6, leg
    assert report["steps"]["l"] + report["steps"]["r"] == len(device_steps)


@pytest.mark.slow
def test_bad_packages_are_refused_with_their_reason_and_the_old_model_keeps_running(tmp_path, keys):
    key, public, untrusted = keys
    config = device_config(tmp_path, [TEST_PUBKEY, public])

    def foot_model(contract):
        contract["leg_places"][1] = "ipsi_foot"  # a foot sensor this device does not have
        if "channels" in contract:
            contract["channels"] = [c.replace("ipsi_thigh", "ipsi_foot") for c in contract["channels"]]

    def wrong_outputs(golden):
        for pair in golden:
            pair["output"] = (np.asarray(pair["output"]) + 0.5).tolist()

    good = resign(INT8, tmp_path / "good.fcpkg", key, "int8-v2")
    bad = {
        "untrusted_key": resign(INT8, tmp_path / "u.fcpkg", untrusted, "int8-untrusted"),
        "bad_signature": edit_manifest(good, tmp_path / "e.fcpkg", lambda m: m.update(model_version="int8-edited")),
        "contract_mismatch": resign(INT8, tmp_path / "c.fcpkg", key, "int8-foot", contract=foot_model),
        "flipped": flip_byte(good, tmp_path / "f.fcpkg"),
        "selftest_failed": resign(INT8, tmp_path / "s.fcpkg", key, "int8-golden", golden=wrong_outputs),
    }
    assert flash_folder(INT8, folder_updates(tmp_path / "models", config, []))["state"] == "switched"
    active = sha256(tmp_path / "models" / "active.fcpkg")
    runtime = build_runtime(None, f"replay:{walk(tmp_path / 'ds', 240.0)}", config, [], tmp_path / "d.sqlite", 8.0)

    async def scenario():
        async with virtual_link(lambda device: gatt_server(runtime, device)) as link:
            running = asyncio.create_task(asyncio.to_thread(runtime.run))
            await until(lambda: runtime.store.last_seq("step") > 0)
            results = {}
            for name, package in bad.items():
                results[name] = await flasher(link, package).run()
            after_refusals = runtime.store.last_seq("step")
            info = await device_request(None, "info", FAST, BumbleScanner, BumbleClient, link.backend_kwargs)
            await until(lambda: runtime.store.last_seq("step") > after_refusals + 10)
            runtime.source.close()
            await running

            return results, after_refusals, info

    results, after_refusals, info = asyncio.run(scenario())
    later = [r.payload for r in runtime.store.records("step", after_seq=after_refusals, limit=10**6)]
    runtime.close()
    for name, result in results.items():
        assert result.state == "refused", (name, result.as_dict())
        expected = {"flipped": {"unreadable", "model_mismatch", "bad_signature"}}.get(name, {name})
        assert result.reason in expected, (name, result.reason, result.detail)
        assert result.detail and result.model_before == OLD
    assert info["model_version"] == OLD and info["upload"] is None and info["updates"] is True
    assert sha256(tmp_path / "models" / "active.fcpkg") == active
    assert later and {p["model_version"] for p in later} == {OLD}  # still running, still the old model


def test_an_upload_cut_at_random_offsets_resumes_from_the_last_acknowledgement_and_completes(tmp_path, keys):
    key, public, _ = keys
    config_path = device_config(tmp_path, [TEST_PUBKEY, public])
    config = load_device_config(config_path)
    big = resign(FLOAT32, tmp_path / "big.fcpkg", key, "float32-resumed", edgetpu_model=read_package(FLOAT32).model)
    size = big.stat().st_size
    slots = ModelSlots(tmp_path / "models", [load_public_key(TEST_PUBKEY), load_public_key(public)])
    updates = ModelUpdates(slots, config, sensor_columns(config))
    rng = random.Random(3)
    cut_at = sorted(rng.sample(range(1000, size - 1000), 12))
    cuts = {"device": 0, "host": 0}

    async def scenario():
        store = RecordStore(tmp_path / "d.sqlite", device_id="fc-flash")
        async with virtual_link(
            DeviceLink(store, lambda: {"device_id": "fc-flash", "updates": True}, updates=updates)
        ) as link:
            pending: set[asyncio.Task] = set()

            async def cut() -> None:
                if rng.random() < 0.5:
                    cuts["device"] += await link.server.disconnect()
                else:
                    for connection in list(link.central.connections.values()):
                        await connection.disconnect()
                        cuts["host"] += 1

            def progress(durable: int, _size: int) -> None:
                if cut_at and durable >= cut_at[0]:
                    while cut_at and durable >= cut_at[0]:
                        cut_at.pop(0)
                    task = asyncio.get_running_loop().create_task(cut())
                    pending.add(task)

            result = await flasher(link, big, progress).run()
            await asyncio.gather(*pending, return_exceptions=True)
            store.close()
            return result

    result = asyncio.run(scenario())
    print(json.dumps({"cuts": cuts, "flash": result.as_dict()}))
    assert result.state == "switched", result.as_dict()
    assert sum(cuts.values()) >= 10 and result.sessions >= 11
    resumed = result.resumed_from
    assert resumed[0] == 0 and all(offset > 0 for offset in resumed[1:]) and resumed == sorted(resumed)
    assert result.sent_bytes <= size + result.sessions * (FlashConfig().window_bytes + 4096)
    assert sha256(slots.active) == sha256(big)


def test_uploads_need_a_bonded_link_and_a_device_that_takes_updates(tmp_path, keys):
    from bleak import BleakClient, BleakScanner

    from forcecast.edge.protocol import UPLOAD_UUID, Opcode, Status, decode_reply, encode_chunk, encode_request

    _, public, _ = keys
    config = load_device_config(device_config(tmp_path, [TEST_PUBKEY, public]))
    slots = ModelSlots(tmp_path / "models", [load_public_key(public)])
    updates = ModelUpdates(slots, config, sensor_columns(config))
    slots.begin_upload(1000, "0" * 64)

    async def scenario():
        store = RecordStore(tmp_path / "d.sqlite", device_id="fc-flash")
        async with virtual_link(DeviceLink(store, {"device_id": "fc-flash"}, updates=updates)) as link:
            device = await BleakScanner.find_device_by_filter(
                lambda *_: True, timeout=2.0, backend=BumbleScanner, **link.backend_kwargs
            )
            async with BleakClient(device, backend=BumbleClient, **link.backend_kwargs) as client:
                for _ in range(5):
                    await client.write_gatt_char(UPLOAD_UUID, encode_chunk(0, b"x" * 100), False)
                await asyncio.sleep(0.3)
            rejected = link.server.stats()["rejected"]
        async with virtual_link(DeviceLink(store, {"device_id": "fc-fixed", "updates": False})) as link:
            fixed = await flasher(link, INT8).run()  # a runtime started with --model takes no updates
        store.close()
        return rejected, fixed

    _, fixed = asyncio.run(scenario())
    assert updates.receiver.chunks == 0 and slots.upload().offset == 0  # the ATT layer refused every write
    # behind it, the session logic refuses too (an encrypted link whose peer is not bonded counts as not encrypted)
    link_logic = DeviceLink(RecordStore(tmp_path / "u.sqlite", device_id="fc-flash"), {}, updates=updates)
    link_logic.connected(247, encrypted=False)
    assert link_logic.handle_upload(encode_chunk(0, b"x" * 100)) is None
    assert link_logic.rejected == {"upload_NOT_ENCRYPTED": 1} and slots.upload().offset == 0
    assert fixed.state == "refused" and fixed.reason == "updates_off"
    # and the device itself refuses, whatever a host believes
    fixed_link = DeviceLink(RecordStore(tmp_path / "f.sqlite", device_id="fc-fixed"), {"device_id": "fc-fixed"})
    fixed_link.connected(247, encrypted=True)
    reply = decode_reply(fixed_link.handle_control(encode_request(Opcode.UPLOAD_BEGIN, 9, 1000, bytes(32))))
    assert reply.status is Status.REFUSED and reply.payload.startswith(b"updates_off")


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from forcecast.host_app.model_folder import flash_folder, folder_updates
    folder, config, a, b = map(Path, sys.argv[1:5])
    updates = folder_updates(folder, config, [])
    print("ready", flush=True)
    while True:
        for package in (a, b):
            flash_folder(package, updates)
    """
)


@pytest.mark.slow
def test_killing_the_device_process_during_commits_always_leaves_one_working_model(tmp_path, keys):
    key, public, _ = keys
    config_path = device_config(tmp_path, [TEST_PUBKEY, public])
    config = load_device_config(config_path)
    a = resign(INT8, tmp_path / "a.fcpkg", key, "int8-a")
    b = resign(FLOAT32, tmp_path / "b.fcpkg", key, "float32-b")
    folder = tmp_path / "models"
    trusted = [load_public_key(TEST_PUBKEY), load_public_key(public)]
    assert flash_folder(a, folder_updates(folder, config_path, []))["state"] == "switched"
    rng = random.Random(11)
    seen: list[str] = []
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder), str(config_path), str(a), str(b)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.2, 2.5))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        slots = ModelSlots(folder, trusted)
        path, _rolled_back = slots.model_for_start()
        package = load_model(path, trusted, ModelFit.of(config, sensor_columns(config))).package  # verified, tested
        seen.append(package.manifest["model_version"])
        slots.confirm()
        assert sorted(p.name for p in folder.glob("*.fcpkg")) in (["active.fcpkg"], ["active.fcpkg", "previous.fcpkg"])
    assert set(seen) <= {"int8-a", "float32-b"}
