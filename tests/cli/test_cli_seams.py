"""CLI seams: exit statuses by exception type, unexpected errors logged, closed pipes, --force, quiet TensorFlow."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import forcecast.cli as cli
from forcecast.cli import main
from forcecast.edge.errors import ForcecastError, ForcecastValueError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tests" / "data" / "grf_int8.fcpkg"
TF_NOISE = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "tensorflow/", "cuda")


class PackageError(RuntimeError):  # the name of one of ours, on purpose: names must not matter
    """Not ours: a look-alike of forcecast.edge.package.PackageError."""


class VerdictError(ForcecastError):
    """A refusal of a test's own."""

    reason = "test_verdict"
    exit_code = 1


class BadThingError(ForcecastValueError):
    """Bad input of a test's own (a name no list could know)."""

    reason = "test_bad_thing"


@pytest.fixture
def raising(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    """``forcecast fake [--verbose]`` whose handler raises the exception put in the returned list."""
    box: list[BaseException] = []

    def handler(args: argparse.Namespace) -> int:
        raise box[0]

    def build() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="forcecast")
        commands = parser.add_subparsers(dest="command", required=True)
        fake = commands.add_parser("fake")
        fake.add_argument("--verbose", action="store_true")
        fake.set_defaults(handler=handler)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    yield box


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "logs"
    monkeypatch.setenv("FORCECAST_LOG_DIR", str(folder))
    return folder


def _run(*argv: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run(
        [sys.executable, "-m", "forcecast.cli", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (BadThingError("speeds: 'brisk' is not a speed"), 2),
        (VerdictError("the package was refused"), 1),
        (FileNotFoundError("x.toml: no such file"), 2),
    ],
)
def test_known_failures_exit_by_type_with_one_line(
    raising: list[BaseException], capsys: pytest.CaptureFixture[str], exc: BaseException, status: int
) -> None:
    raising.append(exc)
    assert main(["fake"]) == status
    assert capsys.readouterr().err.splitlines() == [f"forcecast fake: error: {exc}"]


def test_our_real_refusals_and_bad_input_exit_1_and_2(raising: list[BaseException]) -> None:
    from forcecast.edge.package import PackageError as RealPackageError
    from forcecast.host_app.flash import FlashRefusedError
    from forcecast.training.quantize import DegradationError

    raising.append(RealPackageError("bad_signature", "m.fcpkg: signature does not verify"))
    assert main(["fake"]) == 2
    raising[0] = FlashRefusedError("downgrade", "older than the active model")
    assert main(["fake"]) == 1
    raising[0] = DegradationError("int8 lost 0.02 vertical r")
    assert main(["fake"]) == 1


def test_a_dataset_error_lists_every_problem(raising: list[BaseException], capsys: pytest.CaptureFixture[str]) -> None:
    from forcecast.lab.dataset.problems import DatasetError, Problem

    raising.append(DatasetError([Problem("subjects.csv", "file not found"), Problem("trials", "folder not found")]))
    assert main(["fake"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "forcecast fake: error: the data has 2 problem(s):"
    assert len(err) == 3 and "subjects.csv" in err[1] and "trials" in err[2]


@pytest.mark.parametrize("exc", [PackageError("looks like ours by name"), ValueError("plain"), KeyError("k")])
def test_an_unexpected_exception_is_one_line_plus_a_logged_traceback(
    raising: list[BaseException], capsys: pytest.CaptureFixture[str], log_dir: Path, exc: BaseException
) -> None:
    raising.append(exc)
    assert main(["fake"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"forcecast fake: unexpected error (a bug, please report it): {type(exc).__name__}")
    assert str(log_dir / "forcecast.log") in err[0]
    logged = (log_dir / "forcecast.log").read_text()
    assert "Traceback (most recent call last)" in logged and f"{type(exc).__name__}" in logged
    assert "in handler" in logged  # the frame that raised


def test_verbose_also_prints_the_traceback(
    raising: list[BaseException], capsys: pytest.CaptureFixture[str], log_dir: Path
) -> None:
    raising.append(KeyError("k"))
    assert main(["fake", "--verbose"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("forcecast fake: unexpected error")


def test_an_unwritable_log_still_gives_one_line(
    raising: list[BaseException], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FORCECAST_LOG_DIR", str(blocker / "logs"))
    raising.append(KeyError("k"))
    assert main(["fake"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot be written" in err[0] and "--verbose" in err[0]


@pytest.mark.parametrize(
    ("argv", "status"),
    [(["package", "info", str(PACKAGE)], 141), (["package", "info", str(PACKAGE), "--json"], 141), (["--help"], 0)],
)
def test_a_closed_pipe_ends_quietly(argv: list[str], status: int) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as with `| head` that already exited
    try:
        result = _run(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == status


def test_a_pipe_closed_after_the_first_line_ends_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "forcecast.cli", "package", "info", str(PACKAGE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"package")
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert stderr == b""
    assert process.returncode in (0, 141)  # 0 when everything fitted the pipe before it closed


def _non_empty(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keep.txt").write_text("someone's work")
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "synth", "--out", "{out}", "--subjects", "1"],
        ["data", "resample", "{data}", "--out", "{out}", "--rate-hz", "50"],
        ["train", "{data}", "--out", "{out}"],
        ["compare", "{data}", "--out", "{out}"],
        ["cv", "{data}", "--out", "{out}"],
        ["demo", "--out", "{out}"],
        ["host", "export", "--patient", "p", "--from", "2024-01-01", "--to", "2024-01-02", "--out", "{out}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_non_empty_output_folder_is_refused_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    out = _non_empty(tmp_path / "out")
    data = tmp_path / "data"
    data.mkdir()
    args = [a.format(out=out, data=data) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: the folder is not empty" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_quantize_refuses_an_existing_package_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "m.fcpkg"
    target.write_bytes(b"an older package")
    assert main(["quantize", "--run", str(tmp_path / "run"), "--out", str(target), "--key", "k"]) == 2
    assert "the file exists" in capsys.readouterr().err
    assert target.read_bytes() == b"an older package"


def test_cv_resumes_into_its_own_folder_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cv"
    (out / "folds").mkdir(parents=True)
    data = tmp_path / "data"
    data.mkdir()
    assert main(["cv", str(data), "--out", str(out), "--quick"]) == 2  # goes on, and stops at the empty dataset
    err = capsys.readouterr().err
    assert "not empty" not in err and "subjects.csv" in err


def test_with_force_train_goes_on_and_tensorflow_stays_quiet(tmp_path: Path) -> None:
    out = _non_empty(tmp_path / "run")
    data = tmp_path / "data"
    data.mkdir()
    verbose = _run("train", str(data), "--out", str(out), "--force", "--verbose")
    quiet = _run("train", str(data), "--out", str(out), "--force")
    for result in (verbose, quiet):  # past the refusal, stopped by the empty dataset
        assert result.returncode == 2
        assert "not empty" not in result.stderr and "subjects.csv" in result.stderr
    if not any(noise in verbose.stderr for noise in TF_NOISE):
        pytest.skip("TensorFlow prints nothing while loading here: nothing to silence")
    assert [line for line in quiet.stderr.splitlines() if any(n in line for n in TF_NOISE)] == []
    assert quiet.stderr.splitlines()[0] == "forcecast train: error: the data has 2 problem(s):"


def test_an_argument_typo_is_reported_before_tensorflow_loads(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom forcecast.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    for argv in (["train", "--bogus"], ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]):
        result = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
        )
        assert "tensorflow loaded: False" in result.stdout
        assert [line for line in result.stderr.splitlines() if any(n in line for n in TF_NOISE)] == []
    assert "exit 2" in _run_code_exit(code, ["train", "--bogus"])


def _run_code_exit(code: str, argv: list[str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    ).stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "compare", "cv"])
def test_old_data_spelling_still_parses_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from forcecast.edge.cli_options import dataset_of

    extra = ["--model", "m.keras"] if command == "evaluate" else ["--out", str(tmp_path / "out")]
    old = cli.build_parser().parse_args([command, "--data", str(tmp_path), *extra])
    assert dataset_of(old) == tmp_path
    assert "--data is deprecated" in capsys.readouterr().err
    new = cli.build_parser().parse_args([command, str(tmp_path), *extra])
    assert dataset_of(new) == tmp_path
    assert capsys.readouterr().err == ""


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield " ".join(path), parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from _leaves(sub, (*path, name))


def test_every_command_has_the_shared_verbose_option_and_one_json_definition() -> None:
    leaves = dict(_leaves(cli.build_parser()))
    assert {"train", "data synth", "edge run", "package verify", "host report", "flash", "demo"} <= set(leaves)
    for name, parser in leaves.items():
        options = {o for action in parser._actions for o in action.option_strings}
        assert "--verbose" in options, name
        json_help = [a.help for a in parser._actions if "--json" in a.option_strings]
        assert all(h for h in json_help), name  # defined through add_common: never without help


def test_a_failed_demo_stage_ends_the_demo_with_that_stages_status(tmp_path: Path) -> None:
    from forcecast.demo import DemoStageError, _cli

    with pytest.raises(DemoStageError) as caught:
        _cli(["data", "check", str(tmp_path)])  # an empty folder fails the check: a verdict, status 1
    assert caught.value.exit_code == 1 and caught.value.reason == "demo_stage_failed"
    assert f"'forcecast data check {tmp_path}' ended with exit status 1" in str(caught.value)
