"""Model packages: every way a package can be wrong is refused with its own reason (no TensorFlow)."""

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from forcecast.edge.contract import ContractError, ModelContract, Normalisation
from forcecast.edge.keys import (
    PRIVATE_NAME,
    PUBLIC_NAME,
    KeyFileError,
    key_id,
    load_private_key,
    load_public_key,
    new_key_pair,
)
from forcecast.edge.package import (
    EDGETPU_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    PackageError,
    open_package,
    read_package,
)
from forcecast.training.package import build_manifest, write_package

MODEL = bytes(range(256)) * 40  # stands in for a .tflite flatbuffer


def contract() -> ModelContract:
    return ModelContract(
        100.0,
        ("ipsi_shank",),
        32,
        4,
        2,
        (),
        Normalisation((0.0,) * 6, (1.0,) * 6),
        None,
        Normalisation((0.0,) * 3, (1.0,) * 3),
    )


@pytest.fixture
def keys(tmp_path):
    private, public = new_key_pair(tmp_path / "keys")
    other_private, other_public = new_key_pair(tmp_path / "other")
    return (
        load_private_key(private),
        load_public_key(public),
        load_private_key(other_private),
        load_public_key(other_public),
    )


def make(tmp_path: Path, signer, compiled: bytes | None = None, **changes) -> Path:
    """A package of :data:`MODEL` (and an Edge TPU build ``compiled``), its manifest updated with ``changes``."""
    manifest = build_manifest(
        MODEL,
        contract(),
        model_version="test-1",
        signer=signer,
        quantisation={"mode": "int8"},
        golden=[],
        created_utc="2026-11-21T00:00:00Z",
    )
    manifest.update(changes)
    return write_package(tmp_path / "m.fcpkg", MODEL, manifest, signer, compiled)


def _repack(path: Path, change: Callable[[dict[str, bytes]], object]) -> None:
    """Rewrite the package at ``path`` with its members (name → bytes) as ``change`` leaves them."""
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def rewrite(path: Path, member: str, transform: Callable[[bytes], bytes]) -> None:
    """Replace ``member`` of the package at ``path`` by ``transform`` of its bytes."""
    _repack(path, lambda members: members.update({member: transform(members[member])}))


def drop(path: Path, member: str) -> None:
    """Take ``member`` out of the package at ``path``."""
    _repack(path, lambda members: members.pop(member))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_model_byte(path: Path) -> None:
    rewrite(path, MODEL_FILE, lambda b: b[:100] + bytes([b[100] ^ 0x01]) + b[101:])


def _edit_manifest(path: Path) -> None:
    rewrite(path, MANIFEST_FILE, lambda raw: raw.replace(b'"rate_hz": 100.0', b'"rate_hz": 200.0'))


def _rewrite_manifest(path: Path) -> None:
    """Raise the rate and write the manifest again as the packager writes it (indented, keys sorted)."""

    def raise_rate(raw: bytes) -> bytes:
        manifest = json.loads(raw)
        manifest["contract"]["rate_hz"] = 200.0
        return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    rewrite(path, MANIFEST_FILE, raise_rate)


DAMAGES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "truncated": (_truncate, "unreadable", "truncated"),
    "model_byte_flipped": (_flip_model_byte, "model_mismatch", "is not the model the manifest signed"),
    "manifest_bytes_edited": (_edit_manifest, "bad_signature", "edited after signing"),
    "manifest_rewritten": (_rewrite_manifest, "bad_signature", "edited after signing"),
}
"""Damage done to a good package: the change, the refusal reason and a part of its message."""
ALL_DAMAGES = [*DAMAGES, "untrusted_signer", "contract_field_missing"]


def damaged(tmp_path: Path, keys, damage: str) -> tuple[Path, str, str]:
    """A package with ``damage`` (one of :data:`ALL_DAMAGES`), the reason it is refused and a part of the message."""
    private, _, other_private, _ = keys
    if damage == "untrusted_signer":
        return make(tmp_path, other_private), "untrusted_key", "not trusted"
    if damage == "contract_field_missing":
        broken = contract().to_dict()
        del broken["window"]
        return make(tmp_path, private, contract=broken), "contract_invalid", "missing field(s) window"
    change, reason, expected = DAMAGES[damage]
    path = make(tmp_path, private)
    change(path)
    return path, reason, expected


def test_a_good_package_verifies_and_is_deterministic(tmp_path, keys):
    private, public, _, _ = keys
    path = make(tmp_path, private)
    package, got = open_package(path, [public])
    assert got == contract() and package.model == MODEL
    assert package.signed_by == key_id(public)
    first = path.read_bytes()
    assert make(tmp_path, private).read_bytes() == first


@pytest.mark.parametrize("damage", ALL_DAMAGES)
def test_opening_refuses_each_damage_with_its_reason(tmp_path, keys, damage):
    path, reason, expected = damaged(tmp_path, keys, damage)
    with pytest.raises(PackageError, match=re.escape(expected)) as info:
        open_package(path, [keys[1]])
    assert info.value.reason == reason


def test_a_signature_with_no_trusted_key_says_so(tmp_path, keys):
    path = make(tmp_path, keys[2])
    with pytest.raises(PackageError, match="trusted: none") as info:
        open_package(path, [])
    assert info.value.reason == "untrusted_key"


def test_manifest_field_missing_and_members_missing(tmp_path, keys):
    private = keys[0]
    path = make(tmp_path, private)
    rewrite(
        path,
        MANIFEST_FILE,
        lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "golden"}).encode(),
    )
    with pytest.raises(PackageError, match="golden") as info:
        read_package(path)
    assert info.value.reason == "field_missing"
    path = make(tmp_path, private)
    drop(path, SIGNATURE_FILE)
    with pytest.raises(PackageError, match=r"manifest\.sig missing"):
        read_package(path)


def test_keys_are_private_and_never_overwritten(tmp_path):
    private, public = new_key_pair(tmp_path)
    assert private.name == PRIVATE_NAME and public.name == PUBLIC_NAME
    assert private.stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError):
        new_key_pair(tmp_path)
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(private)
    with pytest.raises(KeyFileError, match="not found"):
        load_private_key(tmp_path / "nope.key")


@pytest.mark.parametrize("damage", ALL_DAMAGES)
def test_package_verify_cli_refuses_each_damage_with_its_reason(tmp_path, keys, damage, capsys):
    from forcecast.cli import main

    path, reason, expected = damaged(tmp_path, keys, damage)
    public_path = tmp_path / "keys" / PUBLIC_NAME
    status = 2 if reason == "unreadable" else 1  # not a package at all is bad input; the rest are verdicts
    assert main(["package", "verify", str(path), "--pubkey", str(public_path), "--json"]) == status
    verdict = json.loads(capsys.readouterr().out)
    assert verdict == {"ok": False, "reason": reason, "message": verdict["message"]}
    assert expected in verdict["message"]
    assert main(["package", "verify", str(path), "--pubkey", str(public_path)]) == status
    captured = capsys.readouterr()
    line = captured.err if status == 2 else captured.out
    assert line.startswith(f"REFUSED ({reason}): ") and line.count("\n") == 1 and "Traceback" not in captured.err


def test_an_edgetpu_build_is_signed_and_checked_like_the_model(tmp_path, keys):
    from forcecast.training.edgetpu import describe

    private, public, _, _ = keys
    compiled = b"TFL3-edgetpu" + MODEL[:500]
    path = make(
        tmp_path,
        private,
        compiled,
        edgetpu=describe(compiled, "Edge TPU Compiler version 16.0\nModel compiled successfully."),
    )
    package, _ = open_package(path, [public])
    assert package.edgetpu_model == compiled
    rewrite(path, EDGETPU_MODEL_FILE, lambda b: b[:-1] + bytes([b[-1] ^ 0x80]))
    with pytest.raises(PackageError, match=r"model_edgetpu\.tflite .* is not the model the manifest signed") as info:
        open_package(path, [public])
    assert info.value.reason == "model_mismatch"
    drop(path, EDGETPU_MODEL_FILE)
    with pytest.raises(PackageError, match=r"lists model_edgetpu\.tflite but it is missing"):
        read_package(path)


def test_edgetpu_compatibility_of_our_ops():
    from forcecast.training.edgetpu import compatibility, compatibility_line

    ops = ["CONV_2D", "FULLY_CONNECTED", "UNPACK", "TANH", "CONV_2D"]
    assert compatibility(ops) == {"CONV_2D": True, "FULLY_CONNECTED": True, "TANH": True, "UNPACK": False}
    assert (
        compatibility_line(ops)
        == "Edge TPU: 3 of 4 op kinds supported; not supported: UNPACK (from the first of these on, ops run on the CPU)"
    )


def _contract_with(**changes) -> ModelContract:
    from dataclasses import replace

    return replace(contract(), **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"rate_hz": 10.0},
        {"rate_hz": 2000.0},
        {"window": 4096, "out_len": 4000, "delay": 0, "rate_hz": 2000.0},
        {"window": 4, "out_len": 1, "delay": 3},
        {"rate_hz": 50.0, "window": 256, "out_len": 1, "delay": 100},  # 2.0 s behind: the longest allowed
    ],
)
def test_contract_bounds_accept_their_edges(changes):
    assert _contract_with(**changes).window >= 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate_hz": 9.99}, "rate_hz = 9.99 is outside 10..2000 Hz"),
        ({"rate_hz": 2000.5}, "rate_hz"),
        ({"rate_hz": float("nan")}, "rate_hz = nan"),
        ({"window": 4097, "out_len": 4, "rate_hz": 2000.0}, "window = 4097 is outside 1..4096"),
        ({"out_len": 33}, "out_len = 33 is outside 1..window (32)"),
        ({"delay": 29}, "delay = 29 is outside 0..window - out_len (28)"),
        ({"rate_hz": 50.0, "window": 256, "out_len": 1, "delay": 101}, "s of latency, over 2 s"),
        ({"leg_places": ("ipsi_shank", "ipsi_shank")}, "leg_places: ipsi_shank listed more than once"),
        ({"output_unit": "N"}, "output_unit = 'N'"),
        ({"notes": {"a": 1}}, "notes must map text to text"),
    ],
)
def test_contract_bounds_refuse_just_beyond(changes, message):
    with pytest.raises(ContractError, match=re.escape(message)):
        _contract_with(**changes)


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        ((0.0, float("nan")), (1.0, 1.0), "mean[1] = nan"),
        ((0.0, 2e6), (1.0, 1.0), "mean[1] = 2000000.0"),
        ((0.0, 0.0), (1.0, 0.0), "std[1] = 0.0"),
        ((0.0, 0.0), (float("inf"), 1.0), "std[0] = inf"),
        ((0.0, 0.0), (1e-7, 1.0), "std[0] = 1e-07"),
        ((0.0,), (1.0, 1.0), "mean has 1 values but std has 2"),
    ],
)
def test_normalisation_must_be_finite_with_a_usable_std(mean, std, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Normalisation(mean, std)
    assert Normalisation((0.0, -1e6), (1e-6, 1e6)).std == (1e-6, 1e6)


def test_a_manifest_contract_names_the_normalisation_field(tmp_path, keys):
    private, public, _, _ = keys
    broken = json.loads(json.dumps(contract().to_dict()))
    broken["targets"]["std"][2] = float("inf")
    path = make(tmp_path, private, contract=broken)
    with pytest.raises(PackageError, match=re.escape("targets.std[2] = inf")) as info:
        open_package(path, [public])
    assert info.value.reason == "contract_invalid"
    broken = contract().to_dict()
    broken["channels"] = ["ipsi_shank_acc_x"]
    path = make(tmp_path, private, contract=broken)
    with pytest.raises(PackageError, match="are not the channels of leg_places") as info:
        open_package(path, [public])


def test_reading_stays_within_the_member_limits(tmp_path, keys, monkeypatch):
    import forcecast.edge.package as package_module

    private = keys[0]
    path = make(tmp_path, private)
    monkeypatch.setitem(package_module.MEMBER_LIMITS, MODEL_FILE, len(MODEL) - 1)
    with pytest.raises(PackageError, match=f"model.tflite declares {len(MODEL):,} bytes") as info:
        read_package(path)
    assert info.value.reason == "too_large"
    monkeypatch.setitem(package_module.MEMBER_LIMITS, MODEL_FILE, len(MODEL))
    assert read_package(path).model == MODEL


def test_a_member_that_inflates_past_its_declared_size_is_stopped_at_once(tmp_path):
    from forcecast.edge.package import READ_CHUNK, _read_member

    class Lying:
        """An archive whose member yields far more than its header declares (zipfile itself stops at the
        declared size; this checks our own bound does not depend on it)."""

        reads = 0

        def open(self, info):
            outer = self

            class Stream(io.BytesIO):
                def read(self, n=-1):
                    assert n == READ_CHUNK  # bounded reads only
                    outer.reads += 1
                    return b"\0" * n

            return Stream()

    info = zipfile.ZipInfo(MANIFEST_FILE)
    info.file_size = 3 * READ_CHUNK
    archive = Lying()
    with pytest.raises(PackageError, match=r"manifest\.json inflates past 196,608 bytes") as caught:
        _read_member(tmp_path / "x.fcpkg", archive, info)
    assert caught.value.reason == "too_large" and archive.reads == 4
