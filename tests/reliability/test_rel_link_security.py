"""Issue 13 item 11: link security.

- ``forcecast keys new`` never writes through a pre-placed symbolic link and sets the modes it promises
  whatever the umask;
- device info carries no personal data and fits one 512-byte attribute in the worst case;
- pairing opens only after the local action (``forcecast edge pair`` over the service's Unix socket), not
  because the device restarted; bonded hosts still reconnect.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from forcecast.cli import main
from forcecast.edge.keys import PRIVATE_NAME, PUBLIC_NAME, load_private_key, load_public_key, new_key_pair


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o777], ids=lambda m: f"umask{m:03o}")
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_key_files_and_folder_get_their_modes_whatever_the_umask(tmp_path, umask):
    private, public = new_key_pair(tmp_path / "new" / "keys")
    assert mode(tmp_path / "new" / "keys") == 0o700
    assert mode(private) == 0o600 and mode(public) == 0o644
    assert load_private_key(private).public_key() == load_public_key(public)


@pytest.mark.parametrize("name", [PUBLIC_NAME, PRIVATE_NAME])
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_pre_placed_symlink_is_refused_and_its_target_untouched(tmp_path, name, dangling):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    target = tmp_path / "victim.txt"
    if not dangling:
        target.write_text("precious\n")
    (folder / name).symlink_to(target)
    with pytest.raises(FileExistsError, match="symbolic link"):
        new_key_pair(folder)
    assert (target.read_text() == "precious\n") if not dangling else not target.exists()
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no half pair left behind


def test_a_folder_that_is_a_symlink_or_writable_by_others_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        new_key_pair(tmp_path / "link")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(FileExistsError, match="writable by other users"):
        new_key_pair(shared)
    assert list(real.iterdir()) == [] and list(shared.iterdir()) == []


def test_an_existing_private_key_is_never_overwritten(tmp_path):
    private, _public = new_key_pair(tmp_path / "k")
    before = private.read_bytes()
    (tmp_path / "k" / PUBLIC_NAME).unlink()
    with pytest.raises(FileExistsError, match="exists; move it away"):
        new_key_pair(tmp_path / "k")
    assert private.read_bytes() == before


def test_keys_new_on_the_command_line_refuses_a_symlink_with_exit_2(tmp_path, capsys):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    (folder / PUBLIC_NAME).symlink_to(tmp_path / "elsewhere.pub")
    assert main(["keys", "new", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and "Traceback" not in err and not (tmp_path / "elsewhere.pub").exists()


# -- device info: no personal data, one attribute --------------------------------------------------------

PATIENT: dict[str, Any] = {
    "patient_id": "PZ-7781",
    "body_mass_kg": 123.4,
    "height_m": 1.93,
    "hka_deg": 7.7,
    "peak_limit_bw": 2.25,
}


def worst_case_runtime(tmp_path, monkeypatch, version_chars: int = 300):
    """A runtime as Runtime.info sees it, every text at or past its limit and every list at its longest."""
    from types import SimpleNamespace

    import forcecast.edge.runtime.launch as launch
    from forcecast.edge.features import LEG_PLACES
    from forcecast.edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig

    config = DeviceConfig(device_id="D" * 32, patient=PatientConfig(**PATIENT), runtime=RuntimeConfig(legs=("l", "r")))
    manifest = {
        "model_version": "v" * version_chars + "é",
        "model_sha256": "c" * 64,
        "quantisation": {"mode": "q" * 100},
    }
    previous = tmp_path / "previous.fcpkg"
    previous.write_bytes(b"zip")
    monkeypatch.setattr(launch, "read_package", lambda _path: SimpleNamespace(manifest={"model_version": "p" * 300}))
    upload = SimpleNamespace(offset=2**40, size=2**40)
    slots = SimpleNamespace(previous=previous, on_trial=True, upload=lambda: upload, peek_upload=lambda: upload)
    contract = SimpleNamespace(rate_hz=104.0, leg_places=LEG_PLACES, window=100000, out_len=100000, static_features=())
    package = SimpleNamespace(manifest=manifest, path=previous)
    return SimpleNamespace(
        config=config,
        package=package,
        contract=contract,
        lifecycle=SimpleNamespace(current=SimpleNamespace(package=package, contract=contract, sha256="f" * 64)),
        patient=config.patient,
        updates=object(),
        slots=slots,
        pipeline=SimpleNamespace(patient_state=SimpleNamespace(version=2**32 - 1)),
    )


def test_device_info_fits_one_attribute_in_the_worst_case_and_carries_no_personal_data(tmp_path, monkeypatch):
    from forcecast.edge.link import DeviceLink
    from forcecast.edge.runtime.launch import Runtime

    runtime = worst_case_runtime(tmp_path, monkeypatch)
    info = Runtime.info(runtime)
    wire = DeviceLink(store=None, info=info).device_info()
    assert len(wire) <= 512, len(wire)
    text = wire.decode()
    for key, value in PATIENT.items():
        assert key not in text and str(value) not in text
    essential = {"device_id", "protocol", "model_version", "package_sha256", "updates", "previous_model", "upload"}
    assert essential <= set(info) and info["package_sha256"] == "f" * 64 and info["upload"]["offset"] == 2**40
    assert info["device_id"] == "D" * 32 and len(info["model_version"]) == 32 and info["model_version"].endswith("~")
    assert text.isascii()


def test_a_typical_device_info_keeps_every_field(tmp_path, monkeypatch):
    from forcecast.edge.runtime.device_info import encode_info
    from forcecast.edge.runtime.launch import Runtime

    runtime = worst_case_runtime(tmp_path, monkeypatch, version_chars=20)
    runtime.contract.leg_places = ("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis")
    runtime.package.manifest["quantisation"]["mode"] = "int8"
    runtime.config = dataclasses.replace(runtime.config, device_id="forcecast-0001")
    runtime.slots.peek_upload = runtime.slots.upload = lambda: None
    info = Runtime.info(runtime)
    assert "omitted" not in info and info["contract"]["places"][0] == "ipsi_shank" and info["quantisation"] == "int8"
    assert len(encode_info(info)) <= 512


def test_device_info_of_the_real_test_package_has_no_patient_fields():
    from packages import INT8

    from forcecast.edge.package import read_package
    from forcecast.edge.runtime.config import DeviceConfig, PatientConfig
    from forcecast.edge.runtime.device_info import device_info, encode_info

    package = read_package(INT8)
    config = DeviceConfig(device_id="fc-0001", patient=PatientConfig(**PATIENT))
    info = device_info(config, package, package.contract)
    assert not {"patient_id", "body_mass_kg", "peak_limit_bw"} & set(info)
    assert len(encode_info(info)) <= 512 and info["model_version"] == package.manifest["model_version"][:32]


# -- pairing: only after the local action ------------------------------------------------------------------

DEVICE_ADDRESS = "C7:11:22:33:44:55"


async def new_host(link, number: int, keystore=None):
    from forcecast.edge.ble.devices import virtual_device
    from forcecast.host_app.bleak_bumble import prepare_central

    central = prepare_central(virtual_device(link, f"host{number}", f"C1:F0:CA:57:00:{number:02X}", keystore))
    await central.power_on()
    return central


async def try_to_pair(central) -> bool:
    """A new host connects and pairs; True if it paired and may then use the control point."""
    from bleak import BleakClient, BleakScanner
    from bleak.exc import BleakError

    from forcecast.edge.protocol import CONTROL_UUID, SERVICE_UUID, Opcode, RecordKind, encode_request
    from forcecast.host_app.bleak_bumble import BumbleClient, BumbleScanner

    bumble_options: dict[str, Any] = {"bumble_central": central}  # the bumble backend's own keyword
    found = await BleakScanner.find_device_by_filter(
        lambda _d, adv: SERVICE_UUID in adv.service_uuids, timeout=3.0, backend=BumbleScanner, **bumble_options
    )
    assert found is not None
    async with BleakClient(found, backend=BumbleClient, bumble_central=central) as client:
        try:
            await client.pair()
        except BleakError:
            return False
        await client.write_gatt_char(CONTROL_UUID, encode_request(Opcode.STATUS, 1, RecordKind.STEP), True)
        return True


async def boot(tmp_path: Path, socket_path: Path, bonds: Path | None = None):
    """One start of the device: a new server (as after a power cut) on a fresh in-process link."""
    from bumble.link import LocalLink

    from forcecast.edge.ble.devices import keystore_at, virtual_device
    from forcecast.edge.ble.server import GattServer
    from forcecast.edge.link import DeviceLink
    from forcecast.edge.runtime.store import RecordStore

    link = LocalLink()
    store = RecordStore(tmp_path / "device.sqlite", device_id="fc-sec")
    device = virtual_device(link, "fcast", DEVICE_ADDRESS, keystore_at(bonds, DEVICE_ADDRESS) if bonds else None)
    server = GattServer(
        device, DeviceLink(store, {"device_id": "fc-sec"}), "fcast", pairing_window_s=60.0, pairing_socket=socket_path
    )
    await server.start()
    return link, server, device, store


async def shut_down(server, device, store, *centrals) -> None:
    await server.stop()
    for central in centrals:
        await central.power_off()
    await device.power_off()
    store.close()


def test_pairing_is_refused_after_restarts_and_accepted_only_within_the_window_the_local_action_opens(tmp_path):
    import asyncio

    from forcecast.edge.ble.pairing import request_pairing

    socket_path = tmp_path / "run" / "pairing.sock"

    async def scenario():
        outcomes = {}
        for start in (1, 2):  # two starts (a power cut in between): neither opens pairing by itself
            link, server, device, store = await boot(tmp_path, socket_path)
            host = await new_host(link, start)
            outcomes[f"start {start}, no action"] = await try_to_pair(host)
            refused = server.stats()["pairing_refused"]
            if start == 2:
                reply = await asyncio.to_thread(request_pairing, socket_path, "open", 30.0)  # forcecast edge pair
                outcomes["action reply open"] = reply["open"]
                outcomes["after the action"] = await try_to_pair(host)
                await asyncio.to_thread(request_pairing, socket_path, "open", 0.3)  # a short window this time
                await asyncio.sleep(0.5)
                late = await new_host(link, 3)
                outcomes["after the window closed"] = await try_to_pair(late)
                await late.power_off()
                stats = server.stats()
            await shut_down(server, device, store, host)
        return outcomes, refused, stats

    outcomes, refused, stats = asyncio.run(scenario())
    assert outcomes == {
        "start 1, no action": False,
        "start 2, no action": False,
        "action reply open": True,
        "after the action": True,
        "after the window closed": False,
    }
    assert refused >= 1 and stats["pairing_accepted"] == 1 and stats["pairing_refused"] >= 2
    assert not socket_path.exists()  # removed when the server stops


def test_the_pairing_socket_is_0600_whatever_the_umask_and_refuses_other_users(tmp_path, umask):
    import asyncio

    from forcecast.edge.ble.pairing import PairingControl, PairingWindow, request_pairing

    path = tmp_path / "run" / "pairing.sock"

    async def scenario():
        window = PairingWindow(60.0)
        control = PairingControl(path, window)
        await control.start()
        modes = mode(path), mode(path.parent)
        status = await asyncio.to_thread(request_pairing, path, "status")
        await control.stop()
        stranger = PairingControl(path, window, allowed_uids={4242})  # the caller (this test) is not uid 4242
        await stranger.start()
        refused = await asyncio.to_thread(request_pairing, path, "open", 30.0)
        await stranger.stop()
        return modes, status, refused, window.is_open, stranger.refused_peers

    (socket_mode, folder_mode), status, refused, opened, refused_peers = asyncio.run(scenario())
    assert socket_mode == 0o600 and folder_mode == 0o700
    assert status["ok"] and status["open"] is False
    assert refused["ok"] is False and "may not control pairing" in refused["error"]
    assert not opened and refused_peers == 1


def test_a_stale_socket_is_replaced_but_another_file_or_an_open_folder_is_refused(tmp_path, caplog):
    import asyncio
    import socket

    from forcecast.edge.ble.pairing import PairingControl, PairingError, PairingWindow

    stale = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()
    file = tmp_path / "file.sock"
    file.write_text("not a socket\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    async def scenario():
        control = PairingControl(stale, PairingWindow())
        await control.start()
        await control.stop()
        errors = []
        for path in (file, shared / "pairing.sock"):
            with pytest.raises(PairingError) as info:
                await PairingControl(path, PairingWindow()).start()
            errors.append(str(info.value))
        return errors

    errors = asyncio.run(scenario())
    assert "exists and is not a socket" in errors[0] and file.read_text() == "not a socket\n"
    assert "only its owner can write" in errors[1] and not (shared / "pairing.sock").exists()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"", "not a JSON request line"),
        (b"\xff\xfe", "not a JSON request line"),
        (b"[1]", "must be a JSON object"),
        (b'{"command": "reboot"}', "unknown command 'reboot'"),
        (b'{"command": "open", "seconds": 1e9}', "seconds must be a number in (0, 3600]"),
        (b'{"command": "open", "seconds": -1}', "seconds must be a number"),
        (b'{"command": "open", "seconds": "120"}', "seconds must be a number"),
        (b'{"command": "open", "seconds": NaN}', "seconds must be a number"),
    ],
)
def test_bad_requests_on_the_socket_are_answered_and_leave_pairing_closed(line, words):
    from forcecast.edge.ble.pairing import PairingControl, PairingWindow

    window = PairingWindow(60.0)
    reply = PairingControl(Path("/nonexistent/p.sock"), window).handle(line)
    assert reply["ok"] is False and words in reply["error"] and not window.is_open


def test_forcecast_edge_pair_opens_the_window_of_the_running_service_and_exits_2_without_one(tmp_path, capsys):
    import asyncio

    from forcecast.edge.ble.pairing import PairingControl, PairingWindow

    path = tmp_path / "run" / "pairing.sock"
    assert main(["edge", "pair", "--socket", str(path)]) == 2
    assert "no pairing socket" in capsys.readouterr().err

    async def scenario():
        window = PairingWindow(60.0)
        control = PairingControl(path, window)
        await control.start()
        code = await asyncio.to_thread(main, ["edge", "pair", "--socket", str(path), "--seconds", "45"])
        opened = window.is_open, round(window.closes_in_s)
        closed = await asyncio.to_thread(main, ["edge", "pair", "--socket", str(path), "--close"])
        await control.stop()
        return code, opened, closed, window.is_open

    code, opened, closed, still_open = asyncio.run(scenario())
    out = capsys.readouterr().out
    assert code == 0 and opened == (True, 45) and "pairing open for 45 s" in out
    assert closed == 0 and not still_open and "pairing closed" in out


def test_the_live_view_learns_the_patient_from_the_records_now_that_device_info_has_none(tmp_path):
    from datetime import UTC
    from types import SimpleNamespace

    from forcecast.host_app.live import LiveView
    from forcecast.host_app.store import HostStore

    logger = SimpleNamespace(state="streaming", device_id="fc-sec", device_info={"device_id": "fc-sec"})
    view = LiveView(logger, HostStore(tmp_path / "h.sqlite"), UTC)
    assert view.today()["patient_id"] is None
    logger.on_record("step", {"patient_id": "P7", "leg": "r", "peak1_bw": 1.1})
    assert view.today()["patient_id"] == "P7"


def test_a_bonded_host_reconnects_after_a_restart_without_the_local_action_while_a_new_one_is_refused(tmp_path):
    import asyncio

    from bumble.keys import MemoryKeyStore

    from forcecast.edge.ble.pairing import request_pairing

    socket_path, bonds = tmp_path / "run" / "pairing.sock", tmp_path / "bonds.json"
    host_keys = MemoryKeyStore()  # the laptop keeps its bond across the device's restart

    async def scenario():
        link, server, device, store = await boot(tmp_path, socket_path, bonds)
        host = await new_host(link, 1, host_keys)
        await asyncio.to_thread(request_pairing, socket_path, "open", 30.0)
        first = await try_to_pair(host)
        await shut_down(server, device, store, host)
        link, server, device, store = await boot(tmp_path, socket_path, bonds)  # restart: pairing closed again
        same = await new_host(link, 1, host_keys)
        again = await try_to_pair(same)
        stranger = await new_host(link, 2)
        other = await try_to_pair(stranger)
        stats = server.stats()
        await shut_down(server, device, store, same, stranger)
        return first, again, other, stats

    first, again, other, stats = asyncio.run(scenario())
    assert first and again and not other
    assert stats["pairing_accepted"] == 0 and stats["pairing_refused"] >= 1  # the bonded host did not pair anew


def test_the_bond_store_is_written_0600_whatever_the_umask_and_never_through_a_link(tmp_path, umask):
    import asyncio

    from bumble.keys import PairingKeys

    from forcecast.edge.ble.devices import RadioError, keystore_at

    bonds = tmp_path / "state" / "bonds.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    bonds.parent.mkdir(mode=0o700)
    (bonds.parent / "bonds.json.tmp").symlink_to(victim)  # planted where the store writes its temporary file

    async def scenario():
        store = keystore_at(bonds, DEVICE_ADDRESS)
        await store.update("C1:F0:CA:57:00:01/P", PairingKeys(address_type=1))
        return await store.get("C1:F0:CA:57:00:01/P")

    assert asyncio.run(scenario()) is not None
    assert mode(bonds) == 0o600 and not bonds.is_symlink() and victim.read_text() == "precious\n"
    assert not (bonds.parent / "bonds.json.tmp").exists()
    link = tmp_path / "linked.json"
    link.symlink_to(victim)
    with pytest.raises(RadioError, match="is a symbolic link"):
        keystore_at(link, DEVICE_ADDRESS)
    fresh = tmp_path / "new" / "deeper" / "bonds.json"
    keystore_at(fresh, DEVICE_ADDRESS)
    assert mode(fresh.parent) == 0o700
