"""hardware/arm64: the arm64 device-install check, without emulation (that runs by hand, see hardware/README.md).

Its options and dry run, the commands it would run, how it judges what the emulated device printed, the
apt-sources parser, and the guest-side probe run on this host's Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
ARM64 = ROOT / "hardware" / "arm64"
SCRIPT = ARM64 / "check_device_install.py"
WRAPPER = ARM64 / "check_device_install.sh"
PROBE = ARM64 / "guest_probe.py"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


cdi = _load(SCRIPT)


def _dry_run(*args: str, script: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    command = script or [sys.executable, str(SCRIPT)]
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([*command, "--dry-run", *args], capture_output=True, text=True, timeout=60, env=env)


# -- options and dry run -------------------------------------------------------------------------------


def test_dry_run_plans_every_step_and_creates_nothing(tmp_path):
    cache = tmp_path / "cache"
    done = _dry_run("--json", "--cache", str(cache), "--mirror", "http://mirror.example/debian")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert not cache.exists(), "a dry run must not create the cache"
    steps = plan["steps"]
    assert list(steps) == ["rootfs", "wheels", "replay_trial", "probe", "verify", "edge_run"]
    debootstrap = steps["rootfs"][0]
    assert debootstrap.startswith("debootstrap --foreign --arch=arm64 --variant=minbase")
    assert " bookworm " in debootstrap and debootstrap.endswith("http://mirror.example/debian")
    build, download, install = steps["wheels"]
    assert "wheel --no-deps" in build and str(ROOT) in build
    for command in (download, install):
        for flag in (
            "--platform manylinux_2_27_aarch64",
            "--platform manylinux2014_aarch64",
            "--python-version 3.11",
            "--only-binary=:all:",
            "--implementation cp",
        ):
            assert flag in command
        assert command.endswith("[edge]'")
    assert "--target" in install and "--no-index" in install
    assert "data synth" in steps["replay_trial"][0]
    for name in ("probe", "verify", "edge_run"):
        (command,) = steps[name]
        assert command.startswith("unshare --mount")
        assert f"{ARM64 / 'rpi4-cpuinfo'} qemu-aarch64-static -cpu cortex-a72 -L {cache}" in command
        assert "import edge" not in command and "-m edge" not in command
    assert "package verify" in steps["verify"][0] and "grf_int8.fcpkg --pubkey" in steps["verify"][0]
    edge_run = steps["edge_run"][0]
    assert "cli edge run" in edge_run and "--source replay:" in edge_run and "--speed 0" in edge_run


def test_dry_run_reuses_a_cached_root_file_system(tmp_path):
    root = tmp_path / "rootfs-bookworm-arm64"
    root.mkdir()
    (root / "forcecast-rootfs.json").write_text("{}")
    plan = json.loads(_dry_run("--json", "--cache", str(tmp_path)).stdout)
    assert plan["steps"]["rootfs"] == [] and plan["rootfs"].endswith("(cached)")
    rebuilt = json.loads(_dry_run("--json", "--cache", str(tmp_path), "--rebuild").stdout)
    assert rebuilt["steps"]["rootfs"][0].startswith("debootstrap")


def test_wrapper_passes_its_arguments_through(tmp_path):
    done = _dry_run("--cache", str(tmp_path / "c"), script=["sh", str(WRAPPER)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("rootfs: debootstrap --foreign")
    assert any(line.startswith("edge_run: unshare") for line in done.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--duration-s", "1"], "--duration-s"),
        (["--duration-s", "nan"], "--duration-s"),
        (["--timeout-s", "0"], "--timeout-s"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args, named):
    done = _dry_run(*args)
    assert done.returncode == 2
    assert named in done.stderr


def test_option_defaults_point_at_the_test_package():
    options = cdi.parse_options(["--mirror", "http://m/debian"])
    assert options.package == ROOT / "tests" / "data" / "grf_int8.fcpkg"
    assert options.pubkey == ROOT / "tests" / "data" / "forcecast-test.pub"
    assert options.cache == Path("~/.cache/forcecast-arm64").expanduser()
    assert not options.strict_lean and not options.dry_run
    assert cdi.parse_options(["--strict-lean", "--mirror", "x"]).strict_lean


# -- judging what the emulated device printed ----------------------------------------------------------


def _probe(**changes: object) -> dict[str, object]:
    probe: dict[str, object] = {
        "machine": "aarch64",
        "python": "3.11.2",
        "cpuinfo_model": "Raspberry Pi 4 Model B Rev 1.1",
        "distributions": {"forcecast": "0.1.0", "ai-edge-litert": "2.3.0"},
        "importable_not_on_device": [],
        "entry_point": "ok",
    }
    probe.update(changes)
    return probe


def test_probe_of_a_lean_arm64_install_passes():
    report = cdi.Report()
    cdi.judge_probe(_probe(), strict_lean=True, report=report)
    assert report.failures == [] and report.warnings == []
    assert report.wheels == {"forcecast": "0.1.0", "ai-edge-litert": "2.3.0"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "x86_64"}, "not 'aarch64'"),
        ({"python": "3.13.1"}, "Python 3.13.1"),
        ({"entry_point": "ModuleNotFoundError: No module named 'pandas'"}, "No module named 'pandas'"),
        ({"distributions": {"numpy": "2.4.6"}}, "forcecast is not among"),
    ],
)
def test_probe_failures_say_what_is_wrong(changes, message):
    report = cdi.Report()
    cdi.judge_probe(_probe(**changes), strict_lean=False, report=report)
    assert len(report.failures) == 1 and message in report.failures[0]


def test_heavy_modules_are_reported_and_fail_only_when_strict():
    heavy = _probe(importable_not_on_device=["pandas", "pyarrow", "tqdm"])
    relaxed, strict = cdi.Report(), cdi.Report()
    cdi.judge_probe(heavy, strict_lean=False, report=relaxed)
    cdi.judge_probe(heavy, strict_lean=True, report=strict)
    assert relaxed.failures == [] and "pandas, pyarrow, tqdm" in relaxed.warnings[0]
    assert strict.warnings == [] and "pandas, pyarrow, tqdm" in strict.failures[0]
    missing = cdi.Report()
    cdi.judge_probe(None, strict_lean=False, report=missing)
    assert missing.failures


def test_verify_passes_only_when_verified_with_every_golden_pair():
    good = {"ok": True, "golden_passed": 4, "golden_failed": 0, "worst_error": 0.0, "messages": []}
    report = cdi.Report()
    cdi.judge_verify(0, good, report)
    assert report.failures == [] and report.selftest_worst_error == 0.0
    for returncode, result, message in [
        (1, {"ok": False, "reason": "untrusted_key", "message": "signed by key 3dbe"}, "'untrusted_key', 'signed by"),
        (1, {**good, "ok": False, "golden_failed": 1, "messages": ["golden pair 2 off by 0.4"]}, "off by 0.4"),
        (0, {**good, "golden_failed": 1}, "1 failed"),
        (0, {**good, "golden_passed": 0}, "0 passed"),
        (-11, None, "killed by SIGSEGV"),
        (2, None, "exit 2"),
    ]:
        report = cdi.Report()
        cdi.judge_verify(returncode, result, report)
        assert len(report.failures) == 1 and message in report.failures[0], (returncode, result)


def test_edge_run_must_end_normally_and_detect_steps():
    report = cdi.Report()
    cdi.judge_edge_run(0, {"steps": {"l": 3, "r": 4}}, report)
    assert report.failures == [] and report.steps_detected == 7
    for returncode, result, message in [
        (0, {"steps": {"r": 0}}, "no steps detected"),
        (0, {"steps": "many"}, "no steps detected"),
        (1, {"steps": {"r": 5}}, "exit 1"),
        (-9, None, "killed by SIGKILL"),
    ]:
        report = cdi.Report()
        cdi.judge_edge_run(returncode, result, report)
        assert any(message in f for f in report.failures), (returncode, result, report.failures)


def test_last_json_object_skips_log_lines():
    out = 'step 1\n{"a": 1}\n{"steps": {"r": 2}}\nnot json {\n'
    assert cdi.last_json_object(out) == {"steps": {"r": 2}}
    assert cdi.last_json_object("{broken\n[1, 2]\n") is None
    assert cdi.last_json_object("") is None


@given(st.text(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_last_json_object_never_raises_and_finds_a_final_object(noise, obj):
    assert cdi.last_json_object(noise) is None or isinstance(cdi.last_json_object(noise), dict)
    assert cdi.last_json_object(noise + "\n" + json.dumps(obj) + "\n") == obj


def test_main_exit_status_follows_the_report(monkeypatch, capsys):
    def failing(options, report):
        report.failures.append("edge run: no steps detected (steps: {'r': 0})")

    def cannot(options, report):
        raise cdi.CannotRunError("missing tools: qemu-aarch64-static")

    monkeypatch.setattr(cdi, "check", failing)
    assert cdi.main(["--json", "--mirror", "x"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "no steps" in out["failures"][0]
    monkeypatch.setattr(cdi, "check", cannot)
    assert cdi.main(["--mirror", "x"]) == 2
    assert "could not run: missing tools: qemu-aarch64-static" in capsys.readouterr().out
    monkeypatch.setattr(cdi, "check", lambda options, report: None)
    assert cdi.main(["--mirror", "x"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS")


# -- preflight and the cached root file system ---------------------------------------------------------


def test_preflight_names_what_is_missing(monkeypatch, tmp_path):
    options = cdi.parse_options(["--mirror", "x", "--host-forcecast", sys.executable])
    monkeypatch.setattr(cdi.shutil, "which", lambda tool: None if tool == "qemu-aarch64-static" else f"/bin/{tool}")
    with pytest.raises(cdi.CannotRunError, match=r"qemu-aarch64-static.*apt-get install qemu-user-static"):
        cdi.preflight(options)
    monkeypatch.setattr(cdi.shutil, "which", lambda tool: f"/bin/{tool}")
    monkeypatch.setattr(cdi.os, "geteuid", lambda: 1000)
    with pytest.raises(cdi.CannotRunError, match="needs root"):
        cdi.preflight(options)
    monkeypatch.setattr(cdi.os, "geteuid", lambda: 0)
    missing = cdi.parse_options(["--mirror", "x", "--package", str(tmp_path / "none.fcpkg")])
    with pytest.raises(cdi.CannotRunError, match=r"--package: .*none\.fcpkg does not exist"):
        cdi.preflight(missing)
    cdi.preflight(options)


def test_a_cached_root_file_system_is_reused_without_running_anything(monkeypatch, tmp_path):
    options = cdi.parse_options(["--mirror", "x", "--cache", str(tmp_path)])
    root = cdi.rootfs_dir(options)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3.11").write_bytes(b"\x7fELF")
    (root / "forcecast-rootfs.json").write_text("{}")

    def no_commands(*args, **kwargs):
        raise AssertionError("nothing may run when the cache holds a root file system")

    monkeypatch.setattr(cdi, "_run", no_commands)
    assert cdi.ensure_rootfs(options) == "reused"
    (root / "forcecast-rootfs.json").unlink()  # a half-built one (no marker) is built again
    with pytest.raises(AssertionError, match="nothing may run"):
        cdi.ensure_rootfs(options)


# -- apt sources -----------------------------------------------------------------------------------------


def test_mirror_from_deb822_and_one_line_sources(tmp_path):
    deb822 = (
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://ftp.de.debian.org/debian/\nSuites: bookworm\n"
    )
    assert cdi.debian_mirror_from_sources(deb822, deb822=True) == "http://ftp.de.debian.org/debian"
    one_line = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n"
    )
    assert cdi.debian_mirror_from_sources(one_line, deb822=False) == "https://m.example/debian"
    assert cdi.debian_mirror_from_sources("deb http://security.debian.org/debian-security bookworm main", False) is None
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    assert cdi.host_debian_mirror(apt) == cdi.DEFAULT_MIRROR
    (apt / "sources.list.d" / "debian.sources").write_text(deb822)
    assert cdi.host_debian_mirror(apt) == "http://ftp.de.debian.org/debian"


@given(st.text(), st.booleans())
def test_mirror_parser_never_raises_and_returns_a_debian_http_uri(text, deb822):
    mirror = cdi.debian_mirror_from_sources(text, deb822)
    assert mirror is None or (mirror.startswith(("http://", "https://")) and mirror.endswith("/debian"))


# -- the guest side, on this host's Python ---------------------------------------------------------------


def test_guest_probe_reports_this_interpreter_and_its_heavy_modules():
    done = subprocess.run([sys.executable, str(PROBE), "probe"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["python"].startswith("3.11.")
    assert probe["entry_point"] == "ok" and "forcecast" in probe["distributions"]
    expected = [m for m in ("pandas", "pyarrow", "tqdm", "matplotlib", "tensorflow") if importlib.util.find_spec(m)]
    assert probe["importable_not_on_device"] == expected
    report = cdi.Report()
    cdi.judge_probe(probe, strict_lean=False, report=report)
    if probe["machine"] != "aarch64":
        assert any("not 'aarch64'" in f for f in report.failures)


def test_guest_probe_runs_the_console_command_and_keeps_its_exit_status(tmp_path):
    missing = tmp_path / "missing.fcpkg"
    done = subprocess.run(
        [sys.executable, str(PROBE), "cli", "package", "verify", str(missing), "--pubkey", str(missing)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "missing.fcpkg" in done.stdout + done.stderr
    usage = subprocess.run([sys.executable, str(PROBE), "frobnicate"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_summary_states_the_verdicts():
    options = cdi.parse_options(["--mirror", "x"])
    report = cdi.Report(ok=True, replay="synth/trials/S01/walk_comfortable.imu.csv")
    cdi.judge_probe(_probe(), strict_lean=False, report=report)
    cdi.judge_verify(0, {"ok": True, "golden_passed": 4, "golden_failed": 0, "worst_error": 0.0}, report)
    cdi.judge_edge_run(0, {"steps": {"r": 24}, "stream_s": 27.9, "real_time_factor": 4.3}, report)
    text = cdi.summary(report, options)
    assert "VERIFIED; self-test 4 passed, 0 failed, worst error 0.0" in text
    assert "24 steps detected" in text and text.endswith("PASS")
    refused = cdi.Report()
    cdi.judge_verify(1, {"ok": False, "reason": "untrusted_key", "message": "not trusted"}, refused)
    text = cdi.summary(refused, options)
    assert "REFUSED (untrusted_key)" in text and "None passed" not in text and text.endswith("FAIL")
