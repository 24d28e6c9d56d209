"""Prove that ``forcecast[edge]`` installs and runs on arm64: Debian bookworm arm64 under QEMU user-mode emulation.

What it does, from the checkout it sits in (see ``hardware/README.md``, "Checking the device install on arm64"):

1. builds, or reuses from ``--cache``, a Debian bookworm arm64 root file system with Python 3.11
   (``debootstrap --foreign``, then every downloaded ``.deb`` unpacked with ``dpkg-deb -x``: binfmt_misc is
   not needed, so nothing in the kernel's tables changes);
2. builds the forcecast wheel from the checkout (``pip wheel --no-deps``), downloads the arm64 cp311 wheels
   of ``forcecast[edge]`` from the package index and installs them into a folder for the emulated Python;
3. makes a replay trial on the host (``forcecast data synth``);
4. under ``qemu-aarch64-static -cpu cortex-a72``, in a private mount namespace where ``/proc/cpuinfo`` is a
   Raspberry Pi 4's (ai-edge-litert's CPU detection crashes on the x86 host's): checks what is
   importable, runs ``forcecast package verify`` (signature, contract, golden self-test) and a short
   ``forcecast edge run --source replay:FILE --speed 0``, and checks that steps were detected.

Prints a short summary (or one JSON object with ``--json``); exit status 0 when every check passed, 1 when
a check failed, 2 when the check could not run (a missing tool, not root, a bad option). ``--dry-run``
prints the commands and touches nothing. Needs root (``unshare --mount``) and the Debian packages
``qemu-user-static`` and ``debootstrap``. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST_PROBE = HERE / "guest_probe.py"
RPI4_CPUINFO = HERE / "rpi4-cpuinfo"
DEFAULT_CACHE = Path("~/.cache/forcecast-arm64").expanduser()
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
GUEST_PYTHON = "usr/bin/python3.11"
# Raspberry Pi OS bookworm has glibc 2.36: every manylinux tag up to that runs there. pip does not widen a
# manylinux_2_X tag to older ones by itself, so each is listed (ai-edge-litert 2.x is manylinux_2_27 only).
PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)))
TOOLS = ("debootstrap", "dpkg-deb", "qemu-aarch64-static", "unshare", "mount")
MARKER = "forcecast-rootfs.json"
EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


class CannotRunError(Exception):
    """The check could not be carried out (environment or option problem), as opposed to a failed check."""


@dataclass(frozen=True)
class Options:
    """Command-line options, validated.

    Attributes
    ----------
    cache
        Folder holding the arm64 root file system, the downloaded wheels and each run's scratch folder.
    repo
        The forcecast checkout whose wheel is installed.
    package, pubkey
        The signed model package run on the emulated device and the key that signed it.
    mirror
        Debian mirror for debootstrap.
    duration_s
        Sensor time of the replay trial (and of the ``edge run``).
    strict_lean
        Fail (instead of report) when pandas, pyarrow, tqdm, matplotlib or TensorFlow are importable.
    rebuild
        Build the root file system again even if the cache holds one.
    keep
        Keep the run's scratch folder (installed wheels, replay trial, store).
    timeout_s
        Limit for each emulated command.
    host_forcecast
        The host's ``forcecast`` command (makes the replay trial).
    json, dry_run
        Output form and whether anything is run at all.
    """

    cache: Path
    repo: Path
    package: Path
    pubkey: Path
    mirror: str
    duration_s: float
    strict_lean: bool
    rebuild: bool
    keep: bool
    timeout_s: float
    host_forcecast: str
    json: bool
    dry_run: bool


@dataclass
class Report:
    """Everything measured, for the summary and the ``--json`` object."""

    ok: bool = False
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    machine: str | None = None
    python: str | None = None
    cpuinfo_model: str | None = None
    rootfs: str | None = None
    wheels: dict[str, str] = field(default_factory=dict)
    importable_not_on_device: list[str] = field(default_factory=list)
    verify: dict[str, object] | None = None
    selftest_worst_error: float | None = None
    edge_run: dict[str, object] | None = None
    steps_detected: int | None = None
    replay: str | None = None
    wall_s: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The report as one JSON-ready object."""
        return {
            "ok": self.ok,
            "failures": self.failures,
            "warnings": self.warnings,
            "machine": self.machine,
            "python": self.python,
            "cpuinfo_model": self.cpuinfo_model,
            "rootfs": self.rootfs,
            "wheels": self.wheels,
            "importable_not_on_device": self.importable_not_on_device,
            "verify": self.verify,
            "selftest_worst_error": self.selftest_worst_error,
            "steps_detected": self.steps_detected,
            "edge_run": self.edge_run,
            "replay": self.replay,
            "wall_s": {k: round(v, 2) for k, v in self.wall_s.items()},
        }


# -- options -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="check_device_install",
        description="Install forcecast[edge] in a Debian bookworm arm64 root file system under QEMU user-mode "
        "emulation, verify a signed package (self-test included) and run a short replay through the device "
        "runtime. Exit 0: all checks passed; 1: a check failed; 2: the check could not run.",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache folder (default {DEFAULT_CACHE})")
    parser.add_argument("--repo", type=Path, default=REPO, help="forcecast checkout to build (default: this one)")
    parser.add_argument("--package", type=Path, help="signed model package (default tests/data/grf_int8.fcpkg)")
    parser.add_argument("--pubkey", type=Path, help="its signer's key (default tests/data/forcecast-test.pub)")
    parser.add_argument("--mirror", help="Debian mirror (default: the one in the host's apt sources)")
    parser.add_argument("--duration-s", type=float, default=30.0, help="replay length in seconds (default 30)")
    parser.add_argument(
        "--strict-lean",
        action="store_true",
        help="fail if pandas/pyarrow/tqdm/matplotlib/"
        "tensorflow are importable in the device install (default: report only)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the root file system again")
    parser.add_argument("--keep", action="store_true", help="keep the run's scratch folder")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="limit per emulated command (default 1800)")
    parser.add_argument(
        "--host-forcecast",
        help="host forcecast command for the replay trial (default: the one next to this Python, else on PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run and create nothing")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse and validate the command line (argparse exits with status 2 on a bad option).

    Parameters
    ----------
    argv
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    Options
        The validated options, every path absolute.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 5.0 <= args.duration_s <= 600.0:
        parser.error(f"--duration-s: {args.duration_s} s is outside 5..600 s (steps need a few seconds of walking)")
    if not args.timeout_s > 0:
        parser.error(f"--timeout-s must be positive, got {args.timeout_s}")
    repo = args.repo.expanduser().resolve()
    host_forcecast = args.host_forcecast or _default_host_forcecast()
    return Options(
        cache=args.cache.expanduser().absolute(),
        repo=repo,
        package=(args.package or repo / "tests" / "data" / "grf_int8.fcpkg").expanduser().absolute(),
        pubkey=(args.pubkey or repo / "tests" / "data" / "forcecast-test.pub").expanduser().absolute(),
        mirror=args.mirror or host_debian_mirror(),
        duration_s=args.duration_s,
        strict_lean=args.strict_lean,
        rebuild=args.rebuild,
        keep=args.keep,
        timeout_s=args.timeout_s,
        host_forcecast=host_forcecast,
        json=args.json,
        dry_run=args.dry_run,
    )


def _default_host_forcecast() -> str:
    beside = Path(sys.executable).parent / "forcecast"
    if beside.is_file():
        return str(beside)
    return shutil.which("forcecast") or "forcecast"


def debian_mirror_from_sources(text: str, deb822: bool) -> str | None:
    """The first Debian (not security) archive URI in an apt sources file, or None.

    Parameters
    ----------
    text
        Contents of ``sources.list`` (one-line form) or of a ``*.sources`` file (deb822 form).
    deb822
        Which of the two forms ``text`` is.
    """
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if deb822:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "uris":
                uris.extend(value.split())
        else:
            words = line.split()
            if words[:1] == ["deb"]:
                # deb [option=value ...] URI suite components
                rest = words[1:]
                if rest and rest[0].startswith("["):
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                if rest:
                    uris.append(rest[0])
    for uri in uris:
        if uri.startswith(("http://", "https://")) and "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return None


def host_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's apt already uses (deb.debian.org when none is found)."""
    candidates = [(apt_dir / "sources.list", False)]
    candidates += [(p, True) for p in sorted((apt_dir / "sources.list.d").glob("*.sources"))]
    candidates += [(p, False) for p in sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path, deb822 in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        mirror = debian_mirror_from_sources(text, deb822)
        if mirror:
            return mirror
    return DEFAULT_MIRROR


# -- the commands ----------------------------------------------------------------------------------------


def rootfs_dir(options: Options) -> Path:
    """Where the cached arm64 root file system lives."""
    return options.cache / f"rootfs-{SUITE}-arm64"


def debootstrap_command(options: Options, target: Path) -> list[str]:
    """First stage of debootstrap: downloads and unpacks, runs nothing arm64."""
    return [
        "debootstrap", "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3",
        SUITE, str(target), options.mirror,
    ]  # fmt: skip


def _platform_flags() -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for tag in PLATFORMS:
        flags += ["--platform", tag]
    return flags


PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")


def build_wheel_command(options: Options, run_dir: Path) -> list[str]:
    """Build forcecast's own (pure Python) wheel from the checkout."""
    return [*PIP, "wheel", "--no-deps", "--quiet", str(options.repo), "-w", str(run_dir / "dist")]


def wheel_commands(options: Options, run_dir: Path, wheel: Path) -> list[list[str]]:
    """Download the arm64 cp311 wheels of ``forcecast[edge]`` and install them into the guest's folder."""
    pip = list(PIP)
    requirement = f"{wheel}[edge]"
    return [
        [*pip, "download", "--quiet", "--dest", str(options.cache / "wheels"), *_platform_flags(), requirement],
        [
            *pip, "install", "--quiet", "--no-compile", "--no-warn-script-location", "--no-index",
            "--find-links", str(options.cache / "wheels"), "--target", str(run_dir / "site"),
            *_platform_flags(), requirement,
        ],
    ]  # fmt: skip


def synth_command(options: Options, run_dir: Path) -> list[str]:
    """The host command that writes the replay trial."""
    return [
        options.host_forcecast, "data", "synth", "--out", str(run_dir / "synth"), "--subjects", "1", "--seed", "0",
        "--duration-s", f"{options.duration_s:g}", "--speeds", "comfortable",
    ]  # fmt: skip


def guest_command(options: Options, args: Sequence[str]) -> list[str]:
    """Run ``guest_probe.py ARGS`` with the arm64 Python under qemu, seeing a Raspberry Pi 4's /proc/cpuinfo.

    The bind mount lives in a private mount namespace (``unshare --mount``) and ends with the command.
    """
    root = rootfs_dir(options)
    script = 'mount --bind "$0" /proc/cpuinfo && exec "$@"'
    return [
        "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, str(RPI4_CPUINFO),
        "qemu-aarch64-static", "-cpu", "cortex-a72", "-L", str(root), str(root / GUEST_PYTHON), "-s",
        str(GUEST_PROBE), *args,
    ]  # fmt: skip


def guest_cli_commands(options: Options, run_dir: Path, trial: Path) -> dict[str, list[str]]:
    """The three emulated checks: probe, package verify, edge run."""
    key = str(options.pubkey)
    return {
        "probe": guest_command(options, ["probe"]),
        "verify": guest_command(options, ["cli", "package", "verify", str(options.package), "--pubkey", key, "--json"]),
        "edge_run": guest_command(
            options,
            [
                "cli", "edge", "run", "--model", str(options.package), "--pubkey", key, "--source", f"replay:{trial}",
                "--speed", "0", "--store", str(run_dir / "store.db"), "--json",
            ],
        ),
    }  # fmt: skip


def guest_env(run_dir: Path) -> dict[str, str]:
    """The emulated process's environment (qemu passes its own on): only the installed folder on the path."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(run_dir / "home"),
        "TMPDIR": str(run_dir / "tmp"),
        "PYTHONPATH": str(run_dir / "site"),
        "PYTHONNOUSERSITE": "1",
    }


# -- judging the results -------------------------------------------------------------------------------


def last_json_object(stdout: str) -> dict[str, object] | None:
    """The last line of ``stdout`` that is a JSON object (the CLI's ``--json`` report), or None."""
    for line in reversed(stdout.splitlines()):
        text = line.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def exit_status(returncode: int) -> str:
    """``exit N``, or the signal that ended the process (``subprocess`` reports it as ``-N``)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


def judge_probe(probe: dict[str, object] | None, strict_lean: bool, report: Report) -> None:
    """Check the guest's self-description: arm64, Python 3.11, the CLI entry point loads, the install is lean."""
    if probe is None:
        report.failures.append("import check: the emulated Python printed no report")
        return
    report.machine = str(probe.get("machine"))
    report.python = str(probe.get("python"))
    model = probe.get("cpuinfo_model")
    report.cpuinfo_model = str(model) if model is not None else None
    distributions = probe.get("distributions")
    report.wheels = {str(k): str(v) for k, v in distributions.items()} if isinstance(distributions, dict) else {}
    present = probe.get("importable_not_on_device")
    report.importable_not_on_device = [str(p) for p in present] if isinstance(present, list) else []
    if report.machine != "aarch64":
        report.failures.append(f"import check: machine is {report.machine!r}, not 'aarch64' (not emulated?)")
    if not report.python.startswith("3.11."):
        report.failures.append(f"import check: Python {report.python}, the Pi runs 3.11")
    if probe.get("entry_point") != "ok":
        report.failures.append(f"import check: the forcecast command does not load: {probe.get('entry_point')}")
    if "forcecast" not in report.wheels:
        report.failures.append("import check: forcecast is not among the installed distributions")
    if report.importable_not_on_device:
        message = (
            f"lean install: {', '.join(report.importable_not_on_device)} importable on the device "
            "(the edge extra should not pull them)"
        )
        (report.failures if strict_lean else report.warnings).append(message)


def judge_verify(returncode: int, result: dict[str, object] | None, report: Report) -> None:
    """Check ``forcecast package verify --json``: verified, and every golden pair within tolerance."""
    report.verify = result
    if result is None:
        report.failures.append(f"package verify: {exit_status(returncode)} and no JSON report")
        return
    worst = result.get("worst_error")
    report.selftest_worst_error = float(worst) if isinstance(worst, int | float) else None
    passed, failed = result.get("golden_passed"), result.get("golden_failed")
    if returncode != 0 or result.get("ok") is not True:
        # A refusal carries reason and message; a package that failed its self-test carries messages.
        why = [str(result[key]) for key in ("reason", "message") if result.get(key)] or result.get("messages")
        report.failures.append(f"package verify: refused ({exit_status(returncode)}): {why}")
    elif not isinstance(passed, int) or passed < 1 or failed != 0:
        report.failures.append(f"package verify: self-test {passed} passed, {failed} failed")


def judge_edge_run(returncode: int, result: dict[str, object] | None, report: Report) -> None:
    """Check ``forcecast edge run --json``: it ended normally and detected steps."""
    report.edge_run = result
    if result is None:
        report.failures.append(f"edge run: {exit_status(returncode)} and no JSON report")
        return
    steps = result.get("steps")
    counts = list(steps.values()) if isinstance(steps, dict) else []
    if counts and all(isinstance(c, int) for c in counts):
        report.steps_detected = sum(counts)
    if returncode != 0:
        report.failures.append(f"edge run: {exit_status(returncode)}")
    if not report.steps_detected:
        report.failures.append(f"edge run: no steps detected (steps: {steps!r})")


# -- running -------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[arm64] {message}", file=sys.stderr, flush=True)


def _run(
    command: Sequence[str], what: str, timeout_s: float, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except FileNotFoundError as exc:
        raise CannotRunError(f"{what}: {command[0]} not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise CannotRunError(f"{what}: no result after {timeout_s:g} s: {shlex.join(command)}") from exc
    if check and done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise CannotRunError(f"{what} failed (exit {done.returncode}): {shlex.join(command)}\n{tail}")
    return done


def preflight(options: Options) -> None:
    """Refuse early, naming what is missing: tools, root, the package and its key."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise CannotRunError(f"missing tools: {', '.join(missing)} (apt-get install qemu-user-static debootstrap)")
    if os.geteuid() != 0:
        raise CannotRunError("needs root: debootstrap and the private /proc/cpuinfo mount (unshare --mount)")
    for name, path in (("--package", options.package), ("--pubkey", options.pubkey), ("--repo", options.repo)):
        if not path.exists():
            raise CannotRunError(f"{name}: {path} does not exist")
    if not (options.repo / "pyproject.toml").is_file():
        raise CannotRunError(f"--repo: {options.repo} has no pyproject.toml")
    if shutil.which(options.host_forcecast) is None:
        raise CannotRunError(f"--host-forcecast: {options.host_forcecast} not found (activate the host venv)")


def ensure_rootfs(options: Options) -> str:
    """Reuse the cached root file system, or build it; returns ``"reused"`` or ``"built"``."""
    root = rootfs_dir(options)
    marker = root / MARKER
    if marker.is_file() and (root / GUEST_PYTHON).is_file() and not options.rebuild:
        return "reused"
    partial = root.with_name(root.name + ".partial")
    for stale in (partial, root):
        if stale.exists():
            shutil.rmtree(stale)
    options.cache.mkdir(parents=True, exist_ok=True)
    _log(f"debootstrap --foreign {SUITE} arm64 from {options.mirror}")
    _run(debootstrap_command(options, partial), "debootstrap", timeout_s=1800)
    debs = sorted((partial / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    if not debs:
        raise CannotRunError(f"debootstrap left no .deb files in {partial}/var/cache/apt/archives")
    _log(f"unpacking {len(debs)} packages with dpkg-deb -x")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(partial)], f"dpkg-deb -x {deb.name}", timeout_s=300)
    if not (partial / GUEST_PYTHON).is_file():
        raise CannotRunError(f"the unpacked root file system has no {GUEST_PYTHON}")
    info = {"suite": SUITE, "arch": "arm64", "mirror": options.mirror, "packages": [d.name for d in debs]}
    (partial / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    partial.rename(root)
    return "built"


def _timed(report: Report, name: str, start: float) -> None:
    report.wall_s[name] = time.monotonic() - start


def _run_guest(
    command: list[str], what: str, options: Options, run_dir: Path, report: Report
) -> subprocess.CompletedProcess[str]:
    _log(f"{what} (emulated)")
    done = _run(command, what, options.timeout_s, env=guest_env(run_dir), check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        _log(f"{what}: {exit_status(done.returncode)}\n" + "\n".join(lines[-10:]))
        if lines:
            report.failures.append(f"{what}: {exit_status(done.returncode)}; its stderr ends: {lines[-1]}")
    return done


def check(options: Options, report: Report) -> None:
    """Run every step, filling ``report``; raises CannotRunError when a step could not be carried out."""
    start = time.monotonic()
    preflight(options)
    report.rootfs = ensure_rootfs(options)
    _timed(report, "rootfs", start)

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=options.cache))
    try:
        for sub in ("home", "tmp", "dist"):
            (run_dir / sub).mkdir()
        start = time.monotonic()
        _log("building the forcecast wheel and fetching the arm64 wheels of forcecast[edge]")
        _run(build_wheel_command(options, run_dir), "pip wheel (forcecast from the checkout)", timeout_s=900)
        wheels = sorted((run_dir / "dist").glob("forcecast-*.whl"))
        if len(wheels) != 1:
            raise CannotRunError(f"pip wheel left {len(wheels)} forcecast wheels in {run_dir / 'dist'}")
        for stale in (options.cache / "wheels").glob("forcecast-*.whl"):
            stale.unlink()  # always this checkout's wheel, never one cached from another run
        download, install = wheel_commands(options, run_dir, wheels[0])
        _run(download, "pip download (arm64 wheels)", timeout_s=1800)
        _run(install, "pip install --target (arm64 wheels)", timeout_s=900)
        _timed(report, "wheels", start)

        start = time.monotonic()
        _run(synth_command(options, run_dir), "forcecast data synth (host)", timeout_s=600)
        trials = sorted((run_dir / "synth" / "trials").glob("*/walk_*.imu.csv"))
        if not trials:
            raise CannotRunError(f"forcecast data synth wrote no walking trial under {run_dir / 'synth' / 'trials'}")
        report.replay = str(trials[0].relative_to(run_dir))
        _timed(report, "replay_trial", start)

        commands = guest_cli_commands(options, run_dir, trials[0])
        start = time.monotonic()
        done = _run_guest(commands["probe"], "import check", options, run_dir, report)
        judge_probe(last_json_object(done.stdout) if done.returncode == 0 else None, options.strict_lean, report)
        _timed(report, "import_check", start)

        start = time.monotonic()
        done = _run_guest(commands["verify"], "forcecast package verify", options, run_dir, report)
        judge_verify(done.returncode, last_json_object(done.stdout), report)
        _timed(report, "package_verify", start)

        start = time.monotonic()
        done = _run_guest(commands["edge_run"], "forcecast edge run", options, run_dir, report)
        judge_edge_run(done.returncode, last_json_object(done.stdout), report)
        _timed(report, "edge_run", start)
    finally:
        if options.keep:
            _log(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def dry_run_plan(options: Options) -> dict[str, object]:
    """The commands a real run would execute (scratch paths shown under ``CACHE/run-XXXX``)."""
    run_dir = options.cache / "run-XXXX"
    wheel = run_dir / "dist" / "forcecast-VERSION-py3-none-any.whl"
    trial = run_dir / "synth" / "trials" / "S01" / "walk_comfortable.imu.csv"
    root = rootfs_dir(options)
    cached = (root / MARKER).is_file() and not options.rebuild
    rootfs = (
        []
        if cached
        else [
            debootstrap_command(options, root.with_name(root.name + ".partial")),
            ["dpkg-deb", "-x", "EACH.deb", str(root.with_name(root.name + ".partial"))],
        ]
    )
    steps = {
        "rootfs": rootfs,
        "wheels": [build_wheel_command(options, run_dir), *wheel_commands(options, run_dir, wheel)],
        "replay_trial": [synth_command(options, run_dir)],
        **{name: [command] for name, command in guest_cli_commands(options, run_dir, trial).items()},
    }
    return {
        "dry_run": True,
        "rootfs": str(root) + (" (cached)" if cached else " (to build)"),
        "strict_lean": options.strict_lean,
        "steps": {name: [shlex.join(c) for c in commands] for name, commands in steps.items()},
    }


def summary(report: Report, options: Options) -> str:
    """A few lines for a person."""
    lines = [f"forcecast[edge] on Debian {SUITE} arm64 under qemu-aarch64 (-cpu cortex-a72, Pi 4 /proc/cpuinfo)"]
    if report.machine:
        lines.append(
            f"  machine {report.machine}, Python {report.python}, /proc/cpuinfo says {report.cpuinfo_model!r}, "
            f"root file system {report.rootfs}"
        )
    if report.wheels:
        listed = ", ".join(f"{name} {version}" for name, version in report.wheels.items())
        lines.append(f"  installed ({len(report.wheels)}): {listed}")
    if report.machine:
        lean = ", ".join(report.importable_not_on_device) or "none"
        mode = "fails the check" if options.strict_lean else "reported only; --strict-lean fails on it"
        lines.append(f"  importable but not wanted on a device: {lean}" + (f" ({mode})" if lean != "none" else ""))
    if report.verify is not None:
        verify = report.verify
        line = f"  package verify {options.package.name}: " + ("VERIFIED" if verify.get("ok") is True else "REFUSED")
        if "golden_passed" in verify:
            line += (
                f"; self-test {verify.get('golden_passed')} passed, {verify.get('golden_failed')} failed, "
                f"worst error {report.selftest_worst_error}"
            )
        lines.append(line + (f" ({verify['reason']})" if verify.get("reason") else ""))
    if report.edge_run is not None:
        run = report.edge_run
        inference = run.get("inference_ms")
        median = inference.get("median") if isinstance(inference, dict) else None
        lines.append(
            f"  edge run replay:{report.replay}: {report.steps_detected} steps detected in {run.get('stream_s')} s, "
            f"{run.get('real_time_factor')}x real time emulated, median inference {median} ms emulated"
        )
    if report.wall_s:
        lines.append("  wall s: " + ", ".join(f"{k} {v:.1f}" for k, v in report.wall_s.items()))
    lines += [f"  warning: {w}" for w in report.warnings]
    lines += [f"  FAILED: {f}" for f in report.failures]
    lines.append("PASS" if report.ok else "FAIL")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; see the module docstring for the exit status."""
    options = parse_options(argv)
    if options.dry_run:
        plan = dry_run_plan(options)
        if options.json:
            print(json.dumps(plan))
        else:
            for name, commands in plan["steps"].items():  # type: ignore[union-attr]
                for command in commands:
                    print(f"{name}: {command}")
        return EXIT_OK
    report = Report()
    try:
        check(options, report)
    except CannotRunError as exc:
        report.failures.append(f"could not run: {exc}")
        print(json.dumps(report.as_json()) if options.json else summary(report, options))
        return EXIT_CANNOT_RUN
    report.ok = not report.failures
    print(json.dumps(report.as_json()) if options.json else summary(report, options))
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
