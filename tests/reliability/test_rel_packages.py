"""Issue 13 items 5 and 7: hostile and impossible model packages are refused by name, cheaply, everywhere.

Impossible contracts are *signed* with a key the device trusts, so each refusal shown here happens after
the signature check: a window of a billion samples, an infinite or zero rate, NaN/zero/infinite
normalisation for inputs, targets and static features, a delay or hop outside the window, an ``out_len``
or ``window`` that is not the model's tensor shape. Hostile zips are refused before anything is
decompressed: a 1 GiB zip bomb (built on the fly, ~1 MB on disk) stays under 100 MB peak RSS in
``package info|verify`` and ``flash --path`` (measured in a subprocess with ``resource.getrusage``), a
header that lies about the size is caught while inflating, a deeply nested manifest, duplicate, unknown
or too many members are each refused with their reason. Every command prints one line naming the reason,
never a traceback. Hypothesis feeds random JSON to the manifest and contract parsers: only
``PackageError`` / ``ContractError`` ever come out.
"""

from __future__ import annotations

import copy
import json
import math
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packages import FLOAT32, INT8, signing_key

from forcecast.cli import main
from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.interpreter import TFLiteModel
from forcecast.edge.keys import load_public_key
from forcecast.edge.package import (
    EDGETPU_MODEL_FILE,
    MANIFEST_FILE,
    MAX_PACKAGE_BYTES,
    MODEL_FILE,
    SIGNATURE_FILE,
    PackageError,
    check_model,
    open_package,
    read_package,
    verify,
)
from forcecast.training.package import build_manifest, write_package

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
RSS_LIMIT_MB = 100


# ------------------------------------------------------------------ building packages


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A signing key the 'device' trusts, and its public key file."""
    return signing_key(tmp_path_factory.mktemp("keys"))


def signed(out: Path, signer: Any, change: Callable[[dict[str, Any]], None], source: Path = FLOAT32) -> Path:
    """``source``'s model under a manifest whose contract ``change`` edited, properly signed by ``signer``.

    Unlike ``tests/packages.resign`` the contract is not parsed first, so impossible values get signed.
    """
    package = read_package(source)
    contract = copy.deepcopy(package.manifest["contract"])
    change(contract)
    manifest = build_manifest(
        package.model,
        contract,
        model_version="hostile-1",
        signer=signer,
        quantisation=package.manifest["quantisation"],
        golden=package.manifest["golden"],
        created_utc="2026-12-01T00:00:00Z",
    )
    return write_package(out, package.model, manifest, signer)


@dataclass(frozen=True)
class Member:
    """One zip member written by hand: the stored bytes and what the headers claim about them."""

    name: str
    stored: bytes
    crc: int
    size: int
    method: int = 8  # deflated
    flags: int = 0


def deflated(name: str, data: bytes) -> Member:
    """``data`` deflated, with honest headers."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return Member(name, packer.compress(data) + packer.flush(), zlib.crc32(data), len(data))


def write_zip(
    path: Path, members: list[Member], listed: int | None = None, directory_pad: int = 0, zip64: bool = False
) -> Path:
    """A zip of ``members`` exactly as given (duplicates, lies and all).

    ``listed`` overrides the member count in the end record; ``directory_pad`` adds that many bytes of
    extra field to every directory entry (a directory far larger than a package's); ``zip64`` adds a ZIP64
    end record (whose counts zipfile would trust over the plain end record's) claiming 100000 members.
    """
    body, directory = bytearray(), bytearray()
    for m in members:
        name = m.name.encode()
        offset = len(body)
        header = (b"PK\x03\x04", 20, 0, m.flags, m.method, 0, 0x21, m.crc, len(m.stored), m.size, len(name), 0)
        body += struct.pack("<4s2B4HL2L2H", *header) + name + m.stored
        extra = b"\x00" * directory_pad
        directory += struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            20,
            3,
            20,
            0,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.stored),
            m.size,
            len(name),
            len(extra),
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        directory += name + extra
    count = len(members) if listed is None else listed
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(body), 0)
    if zip64:
        at = len(body) + len(directory)
        record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 100_000, 100_000, 8 << 20, len(body))
        end = record + struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1) + end
    path.write_bytes(bytes(body + directory + end))
    return path


def members_of(package: Path) -> list[Member]:
    """A real package's members, re-deflated with honest headers."""
    parts = read_package(package)
    return [
        deflated(MANIFEST_FILE, parts.manifest_bytes),
        deflated(SIGNATURE_FILE, parts.signature),
        deflated(MODEL_FILE, parts.model),
    ]


def zeros_bomb(name: str, size: int, declared: int | None = None) -> Member:
    """``size`` zero bytes deflated (~1/1000 of it), built without ever holding them: one MiB compressed once
    and repeated (a full flush makes every MiB compress to the same bytes). ``declared`` lies about the size."""
    mib = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(mib) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(mib, crc)
    stored = block * (size >> 20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return Member(name, stored, crc, size if declared is None else declared)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Packages whose model inflates to 1 GiB: one with honest headers, one whose headers claim 4 KiB."""
    folder = tmp_path_factory.mktemp("bombs")
    real = members_of(INT8)[:2]
    honest = write_zip(folder / "bomb.fcpkg", [*real, zeros_bomb(MODEL_FILE, GIB)])
    lying = write_zip(folder / "lying.fcpkg", [*real, zeros_bomb(MODEL_FILE, GIB, declared=4096)])
    return {"honest": honest, "lying": lying}


def device_toml(folder: Path, trusted: list[Path]) -> Path:
    """A device with the sensors the test models need, models in ``folder/models``."""
    path = folder / "device.toml"
    keys = ", ".join(f'"{k}"' for k in trusted)
    sensors = "".join(
        f'[[sensors]]\nplace = "{place}"\nbus = {bus}\naddress = 0x6A\n'
        for bus, place in enumerate(("r_shank", "r_thigh", "pelvis", "l_shank", "l_thigh"), start=1)
    )
    path.write_text(
        f'device_id = "fc-rel"\ntrusted_keys = [{keys}]\n'
        '[patient]\npatient_id = "P1"\nbody_mass_kg = 70.0\nheight_m = 1.7\n'
        f'[runtime]\nlegs = ["l", "r"]\n{sensors}[feedback]\noutput = "none"\n'
        f'[models]\nfolder = "{folder / "models"}"\n'
    )
    return path


def flash_path(package: Path, folder: Path, public: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    """``forcecast flash PKG --path`` into ``folder/models``; exit status and its JSON result."""
    config = device_toml(folder, [public])
    status = main(["flash", str(package), "--path", str(folder / "models"), "--config", str(config), "--json"])
    return status, json.loads(capsys.readouterr().out)


def one_line(capsys: pytest.CaptureFixture[str], reason: str, *, stream: str = "err") -> str:
    """The command printed exactly one line, naming ``reason``, and no traceback."""
    captured = capsys.readouterr()
    text = captured.err if stream == "err" else captured.out
    assert "Traceback" not in captured.err + captured.out
    assert text.count("\n") == 1 and text.startswith(f"REFUSED ({reason}): "), text
    return text


# ------------------------------------------------------------------ impossible contracts, signed


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(contract: dict[str, Any]) -> None:
        contract[field] = value

    return change


def _norm(table: str, key: str, index: int, value: float) -> Callable[[dict[str, Any]], None]:
    def change(contract: dict[str, Any]) -> None:
        contract[table][key][index] = value

    return change


def _slow_and_late(contract: dict[str, Any]) -> None:
    contract.update(rate_hz=10.0, delay=100)  # (100 + 4 - 1) samples at 10 Hz = 10.3 s behind


def _places_twice(contract: dict[str, Any]) -> None:
    contract["leg_places"] = ["ipsi_shank", "ipsi_shank", "contra_shank", "pelvis"]
    del contract["channels"]


def _channels_lie(contract: dict[str, Any]) -> None:
    contract["channels"] = contract["channels"][::-1]


IMPOSSIBLE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "window_huge": (_set("window", 10**9), "window"),
    "rate_inf": (_set("rate_hz", math.inf), "rate_hz"),
    "rate_nan": (_set("rate_hz", math.nan), "rate_hz"),
    "rate_zero": (_set("rate_hz", 0.0), "rate_hz"),
    "rate_huge": (_set("rate_hz", 1e6), "rate_hz"),
    "out_len_zero": (_set("out_len", 0), "out_len"),
    "delay_negative": (_set("delay", -1), "delay"),
    "delay_past_window": (_set("delay", 128), "delay"),
    "latency_over_2s": (_slow_and_late, "latency"),
    "inputs_mean_nan": (_norm("inputs", "mean", 0, math.nan), "inputs.mean[0]"),
    "inputs_std_zero": (_norm("inputs", "std", 3, 0.0), "inputs.std[3]"),
    "inputs_std_inf": (_norm("inputs", "std", 5, math.inf), "inputs.std[5]"),
    "targets_mean_nan": (_norm("targets", "mean", 2, math.nan), "targets.mean[2]"),
    "targets_std_inf": (_norm("targets", "std", 0, math.inf), "targets.std[0]"),
    "targets_std_negative": (_norm("targets", "std", 1, -1.0), "targets.std[1]"),
    "static_mean_inf": (_norm("static", "mean", 4, math.inf), "static.mean[4]"),
    "static_std_zero": (_norm("static", "std", 1, 0.0), "static.std[1]"),
    "static_std_nan": (_norm("static", "std", 0, math.nan), "static.std[0]"),
    "places_twice": (_places_twice, "leg_places"),
    "axes_reordered": (_set("output_axes", ["ap", "v", "ml"]), "output_axes"),
    "unit_newtons": (_set("output_unit", "N"), "output_unit"),
    "channels_lie": (_channels_lie, "channels"),
}


@pytest.mark.parametrize("case", IMPOSSIBLE)
def test_a_signed_impossible_contract_is_refused_by_name(case, keys, tmp_path, capsys):
    change, field = IMPOSSIBLE[case]
    key, public = keys
    path = signed(tmp_path / f"{case}.fcpkg", key, change)
    package = read_package(path)  # readable: the manifest is well formed and the signature verifies
    with pytest.raises(PackageError) as info:
        verify(package, [load_public_key(public)])
    assert info.value.reason == "contract_invalid" and field in str(info.value)
    assert main(["package", "info", str(path)]) == 2
    assert field in one_line(capsys, "contract_invalid")
    assert main(["package", "verify", str(path), "--pubkey", str(public)]) == 1
    assert field in one_line(capsys, "contract_invalid", stream="out")


@pytest.mark.parametrize("case", ["window_huge", "rate_inf", "inputs_mean_nan", "targets_std_inf"])
def test_flash_path_refuses_the_impossible_contracts_of_the_issue(case, keys, tmp_path, capsys):
    change, field = IMPOSSIBLE[case]
    key, public = keys
    status, result = flash_path(signed(tmp_path / "p.fcpkg", key, change), tmp_path, public, capsys)
    assert status == 1 and result["state"] == "refused" and result["reason"] == "contract_invalid"
    assert field in result["detail"] and not (tmp_path / "models" / "active.fcpkg").exists()


TENSOR_MISMATCHES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "out_len_not_the_output": (_set("out_len", 8), "output 'output_0' has shape (1, 4, 3)"),
    "window_not_the_input": (_set("window", 64), "input 'imu' has shape (1, 128, 24)"),
    "static_the_model_takes": (
        lambda c: c.update(static_features=[], static=None),
        "input 'static' is not in the contract",
    ),
}


@pytest.mark.parametrize("case", TENSOR_MISMATCHES)
def test_a_contract_that_is_not_the_models_tensors_is_refused_when_loaded(case, keys, tmp_path, capsys):
    change, expected = TENSOR_MISMATCHES[case]
    key, public = keys
    path = signed(tmp_path / f"{case}.fcpkg", key, change)
    package, contract = open_package(path, [load_public_key(public)])  # a possible contract, signed
    with pytest.raises(ContractError, match="model tensors do not match the contract"):
        TFLiteModel(package.model).check_contract(contract)
    assert main(["package", "verify", str(path), "--pubkey", str(public)]) == 1
    assert expected in one_line(capsys, "contract_invalid", stream="out")
    status, result = flash_path(path, tmp_path, public, capsys)
    assert status == 1 and result["reason"] == "contract_invalid" and expected in result["detail"]


def test_the_real_models_match_their_contracts():
    for source in (INT8, FLOAT32):
        package = read_package(source)
        TFLiteModel(package.model).check_contract(package.contract)


# ------------------------------------------------------------------ hostile zips


def _measure(body: str) -> dict[str, Any]:
    """Run ``body`` (statements that set ``result``) in a fresh interpreter that reports its peak RSS (JSON)."""
    code = (
        "import contextlib, io, json, resource\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
        + "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        # Linux keeps ru_maxrss across exec (it would report the forking pytest process): prefer this
        # process image's own high-water mark where the kernel gives it
        "status = open('/proc/self/status').read() if __import__('os').path.exists('/proc/self/status') else ''\n"
        "peak = next((int(l.split()[1]) / 1024 for l in status.splitlines() if l.startswith('VmHWM:')), peak)\n"
        "print(json.dumps({'result': result, 'out': out.getvalue(), 'err': err.getvalue(), 'peak_mb': peak}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cli(*argv: str) -> str:
    return f"from forcecast.cli import main\nresult = main({list(argv)!r})"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["honest", "lying"])
def test_a_1_gib_zip_bomb_is_refused_in_little_memory_everywhere(kind, bombs, keys, tmp_path):
    bomb = str(bombs[kind])
    assert bombs[kind].stat().st_size < 2 * 1024 * 1024
    _, public = keys
    config = device_toml(tmp_path, [public])
    reason = "too_large" if kind == "honest" else "unreadable"  # a lie is caught by the CRC once inflation stops
    runs = {
        "read_package": _measure(
            "from forcecast.edge.package import PackageError, read_package\n"
            f"try:\n    read_package({bomb!r})\n    result = 'read'\n"
            "except PackageError as exc:\n    result = exc.reason"
        ),
        "info": _measure(_cli("package", "info", bomb)),
        "verify": _measure(_cli("package", "verify", bomb, "--pubkey", str(public))),
        "flash_path": _measure(
            _cli("flash", bomb, "--path", str(tmp_path / "models"), "--config", str(config), "--json")
        ),
    }
    # flash --path loads the device runtime (SciPy, the TFLite runtime) whatever it flashes: its baseline is
    # the same command refusing a 1 KiB file that is not a zip at all
    junk = tmp_path / "junk.fcpkg"
    junk.write_bytes(b"not a zip" * 114)
    baseline = _measure(_cli("flash", str(junk), "--path", str(tmp_path / "models"), "--config", str(config)))
    print(
        json.dumps(
            {k: {"peak_mb": round(v["peak_mb"], 1), "result": v["result"]} for k, v in runs.items()}
            | {"flash_path_baseline_peak_mb": round(baseline["peak_mb"], 1)}
        )
    )
    assert runs["read_package"]["result"] == reason
    assert runs["info"]["result"] == 2 and runs["info"]["err"].startswith(f"REFUSED ({reason}): ")
    assert runs["verify"]["result"] == 2 and runs["verify"]["err"].startswith(f"REFUSED ({reason}): ")
    flashed = json.loads(runs["flash_path"]["out"])
    assert runs["flash_path"]["result"] == 1 and flashed["reason"] == reason
    for name in ("read_package", "info", "verify"):
        assert runs[name]["peak_mb"] < RSS_LIMIT_MB, f"{name}: peak RSS {runs[name]['peak_mb']:.0f} MB"
    extra = runs["flash_path"]["peak_mb"] - baseline["peak_mb"]
    assert baseline["result"] == 1 and extra < 20, f"flash --path: the bomb cost {extra:.0f} MB over its baseline"


def _nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def _with_manifest(manifest: bytes) -> Callable[[list[Member]], list[Member]]:
    def change(members: list[Member]) -> list[Member]:
        return [deflated(MANIFEST_FILE, manifest), *members[1:]]

    return change


def _manifest_field(field: str, value: Any) -> Callable[[list[Member]], list[Member]]:
    def change(members: list[Member]) -> list[Member]:
        manifest = json.loads(read_package(INT8).manifest_bytes)
        manifest[field] = value
        return [deflated(MANIFEST_FILE, json.dumps(manifest).encode()), *members[1:]]

    return change


HOSTILE_ZIPS: dict[str, tuple[Callable[[list[Member]], list[Member]], str, str]] = {
    "nested_10000_deep": (_with_manifest(_nested(10_000)), "manifest_invalid", "nested too deeply"),
    "nested_40_deep": (_with_manifest(_nested(40)), "manifest_invalid", "more than 32 levels"),
    "manifest_a_list": (_with_manifest(b"[1, 2]"), "manifest_invalid", "JSON object"),
    "manifest_not_utf8": (_with_manifest(b'{"format": "\xff"}'), "manifest_invalid", "not valid JSON"),
    "manifest_huge_int": (_with_manifest(b'{"a": ' + b"9" * 5000 + b"}"), "manifest_invalid", "not valid JSON"),
    "golden_not_a_list": (_manifest_field("golden", {"a": 1}), "manifest_invalid", "golden"),
    "contract_not_an_object": (_manifest_field("contract", [1, 2]), "manifest_invalid", "contract"),
    "model_bytes_text": (_manifest_field("model_bytes", "many"), "manifest_invalid", "model_bytes"),
    "model_file_elsewhere": (_manifest_field("model_file", "../evil"), "manifest_invalid", "model_file"),
    "accuracy_not_numbers": (
        _manifest_field("accuracy", {"builds": {"int8": {"axes": {"v": {"r": "high"}}}}}),
        "manifest_invalid",
        "accuracy.builds.int8.axes.v",
    ),
    "duplicate_model": (lambda m: [*m, m[2]], "member_duplicate", "'model.tflite'"),
    "duplicate_manifest": (lambda m: [m[0], *m], "member_duplicate", "'manifest.json'"),
    "unknown_member": (lambda m: [*m, deflated("run.sh", b"rm -rf /")], "member_unknown", "'run.sh'"),
    "five_members": (
        lambda m: [*m, deflated(EDGETPU_MODEL_FILE, b"x"), deflated("a", b"")],
        "too_many_members",
        "at most 4",
    ),
    "signature_missing": (lambda m: [m[0], m[2]], "member_missing", SIGNATURE_FILE),
    "manifest_declared_too_large": (
        lambda m: [zeros_bomb(MANIFEST_FILE, 8 << 20), *m[1:]],
        "too_large",
        "manifest.json declares",
    ),
    "encrypted": (lambda m: [m[0], m[1], Member(**{**m[2].__dict__, "flags": 1})], "unsupported", "encrypted"),
    "bzip2": (lambda m: [m[0], m[1], Member(**{**m[2].__dict__, "method": 12})], "unsupported", "method 12"),
}


@pytest.mark.parametrize("case", HOSTILE_ZIPS)
def test_a_hostile_zip_is_refused_with_its_reason(case, tmp_path):
    change, reason, text = HOSTILE_ZIPS[case]
    path = write_zip(tmp_path / f"{case}.fcpkg", change(members_of(INT8)))
    with pytest.raises(PackageError) as info:
        read_package(path)
    assert (info.value.reason, text in str(info.value)) == (reason, True), str(info.value)


def test_a_zip_whose_end_record_or_directory_lies_is_refused_before_its_directory_is_parsed(tmp_path):
    members = members_of(INT8)
    many = write_zip(tmp_path / "many.fcpkg", members, listed=60_000)
    with pytest.raises(PackageError, match="lists 60000 members") as info:
        read_package(many)
    assert info.value.reason == "too_many_members"
    padded = write_zip(tmp_path / "padded.fcpkg", members, directory_pad=30_000)
    with pytest.raises(PackageError, match="directory is") as info:
        read_package(padded)
    assert info.value.reason == "too_many_members"
    zip64 = write_zip(tmp_path / "zip64.fcpkg", members, zip64=True)
    with pytest.raises(PackageError, match="ZIP64") as info:
        read_package(zip64)
    assert info.value.reason == "unsupported"


def test_a_package_file_over_the_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.fcpkg"
    with big.open("wb") as handle:
        handle.truncate(MAX_PACKAGE_BYTES + 1)  # sparse: nothing is written, nothing must be read
    with pytest.raises(PackageError, match="at most") as info:
        read_package(big)
    assert info.value.reason == "too_large"
    with pytest.raises(PackageError, match="not a file") as info:
        read_package(tmp_path)
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize("case", ["nested_10000_deep", "duplicate_model", "unknown_member"])
def test_every_command_names_the_reason_of_a_hostile_zip_in_one_line(case, keys, tmp_path, capsys):
    change, reason, _ = HOSTILE_ZIPS[case]
    _, public = keys
    path = write_zip(tmp_path / f"{case}.fcpkg", change(members_of(INT8)))
    assert main(["package", "info", str(path)]) == 2
    one_line(capsys, reason)
    assert main(["package", "info", str(path), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["reason"] == reason
    assert main(["package", "verify", str(path), "--pubkey", str(public)]) == 2
    one_line(capsys, reason)
    status, result = flash_path(path, tmp_path, public, capsys)
    assert status == 1 and result["state"] == "refused" and result["reason"] == reason
    assert main(["device", "info", "--path", str(tmp_path / "models"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["upload"] is None  # the refused upload is gone


# ------------------------------------------------------------------ fuzzing the parsers

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
REAL = json.loads(read_package(INT8).manifest_bytes)


def _package_with(folder: Path, manifest: bytes) -> Path:
    return write_zip(folder / "fuzz.fcpkg", [deflated(MANIFEST_FILE, manifest), *members_of_cached()[1:]])


_MEMBERS: list[Member] = []


def members_of_cached() -> list[Member]:
    if not _MEMBERS:
        _MEMBERS.extend(members_of(INT8))
    return _MEMBERS


def _read_everything(path: Path, public: Any) -> None:
    """Everything a command does with an untrusted package before it runs the model."""
    package = read_package(path)
    package.contract  # noqa: B018 - parsing it is the point
    check_model(package)
    verify(package, [public])


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(manifest=JSON)
def test_fuzz_any_json_as_the_manifest_gives_only_package_errors(manifest, keys):
    public = load_public_key(keys[1])
    with tempfile.TemporaryDirectory() as folder:
        path = _package_with(Path(folder), json.dumps(manifest).encode())
        with pytest.raises(PackageError):
            _read_everything(path, public)


@FUZZ
@given(field=st.sampled_from(sorted(REAL)), value=JSON)
def test_fuzz_one_manifest_field_replaced_gives_only_package_errors(field, value, keys):
    public = load_public_key(keys[1])
    manifest = copy.deepcopy(REAL)
    manifest[field] = value
    with tempfile.TemporaryDirectory() as folder:
        path = _package_with(Path(folder), json.dumps(manifest).encode())
        try:
            _read_everything(path, public)
        except PackageError:
            pass
        else:
            raise AssertionError("an edited manifest was accepted")  # its signature no longer matches


NESTED = [(table, key) for table in ("inputs", "static", "targets") for key in ("mean", "std")]


@FUZZ
@given(
    field=st.sampled_from(sorted(REAL["contract"]) + NESTED),
    value=JSON,
    index=st.none() | st.integers(0, 5),
    extra=st.booleans(),
)
def test_fuzz_contract_fields_give_only_contract_errors(field, value, index, extra):
    contract = copy.deepcopy(REAL["contract"])
    if isinstance(field, tuple):  # one normalisation list, or one number in it
        table, key = field
        if index is None:
            contract[table][key] = value
        else:
            values = contract[table][key]
            values[index % len(values)] = value
    else:
        contract[field] = value
    if extra:
        contract["unexpected"] = value
    try:
        parsed = ModelContract.from_dict(contract, "fuzz")
    except ContractError:
        return
    # whatever was accepted is within the documented bounds
    assert 10 <= parsed.rate_hz <= 2000 and 1 <= parsed.out_len <= parsed.window <= 4096
    assert all(math.isfinite(v) for n in (parsed.inputs, parsed.targets) for v in (*n.mean, *n.std))


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_as_the_manifest_or_the_package(data, keys):
    public = load_public_key(keys[1])
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(PackageError):
            _read_everything(_package_with(Path(folder), data), public)
        raw = Path(folder) / "raw.fcpkg"
        raw.write_bytes(data)
        with pytest.raises(PackageError):
            _read_everything(raw, public)
