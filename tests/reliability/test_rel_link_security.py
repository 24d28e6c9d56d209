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

import pytest

from edge.keys import PRIVATE_NAME, PUBLIC_NAME, load_private_key, load_public_key, new_key_pair
from forcecast.cli import main


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

PATIENT = {"patient_id": "PZ-7781", "body_mass_kg": 123.4, "height_m": 1.93, "hka_deg": 7.7, "peak_limit_bw": 2.25}


def worst_case_runtime(tmp_path, monkeypatch, version_chars: int = 300):
    """A runtime as Runtime.info sees it, every text at or past its limit and every list at its longest."""
    from types import SimpleNamespace

    import edge.runtime.launch as launch
    from edge.features import LEG_PLACES
    from edge.runtime.config import DeviceConfig, PatientConfig, RuntimeConfig

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
    return SimpleNamespace(
        config=config,
        package=SimpleNamespace(manifest=manifest, path=previous),
        contract=contract,
        patient=config.patient,
        package_sha256="f" * 64,
        updates=object(),
        slots=slots,
    )


def test_device_info_fits_one_attribute_in_the_worst_case_and_carries_no_personal_data(tmp_path, monkeypatch):
    from edge.link import DeviceLink
    from edge.runtime.launch import Runtime

    runtime = worst_case_runtime(tmp_path, monkeypatch)
    info = Runtime.info(runtime)  # type: ignore[arg-type]
    wire = DeviceLink(store=None, info=info).device_info()  # type: ignore[arg-type]
    assert len(wire) <= 512, len(wire)
    text = wire.decode()
    for key, value in PATIENT.items():
        assert key not in text and str(value) not in text
    essential = {"device_id", "protocol", "model_version", "package_sha256", "updates", "previous_model", "upload"}
    assert essential <= set(info) and info["package_sha256"] == "f" * 64 and info["upload"]["offset"] == 2**40
    assert info["device_id"] == "D" * 32 and len(info["model_version"]) == 32 and info["model_version"].endswith("~")
    assert text.isascii()


def test_a_typical_device_info_keeps_every_field(tmp_path, monkeypatch):
    from edge.runtime.device_info import encode_info
    from edge.runtime.launch import Runtime

    runtime = worst_case_runtime(tmp_path, monkeypatch, version_chars=20)
    runtime.contract.leg_places = ("ipsi_shank", "ipsi_thigh", "contra_shank", "pelvis")
    runtime.package.manifest["quantisation"]["mode"] = "int8"
    runtime.config = dataclasses.replace(runtime.config, device_id="forcecast-0001")
    runtime.slots.peek_upload = runtime.slots.upload = lambda: None
    info = Runtime.info(runtime)  # type: ignore[arg-type]
    assert "omitted" not in info and info["contract"]["places"][0] == "ipsi_shank" and info["quantisation"] == "int8"
    assert len(encode_info(info)) <= 512


def test_device_info_of_the_real_test_package_has_no_patient_fields():
    from edge.package import read_package
    from edge.runtime.config import DeviceConfig, PatientConfig
    from edge.runtime.device_info import device_info, encode_info
    from tests.packages import INT8

    package = read_package(INT8)
    config = DeviceConfig(device_id="fc-0001", patient=PatientConfig(**PATIENT))
    info = device_info(config, package, package.contract)
    assert not {"patient_id", "body_mass_kg", "peak_limit_bw"} & set(info)
    assert len(encode_info(info)) <= 512 and info["model_version"] == package.manifest["model_version"][:32]
