"""The `forcecast` command: lazy imports, data synth/check/resample, config handling."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forcecast.cli import main
from forcecast.lab.dataset import check_dataset

# Third-party packages the `edge` extra does not install. The blocker makes importing them fail, as on a Pi
# (our own packages all ship in the one wheel; their command modules must import nothing heavy).
NOT_IN_EDGE_EXTRA = ("tensorflow", "keras", "tf_keras", "matplotlib", "bleak", "pandas", "pyarrow", "tqdm", "ezc3d")
DATA = Path(__file__).resolve().parents[1] / "data"

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    BLOCKED = {NOT_IN_EDGE_EXTRA!r}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (edge extra only)", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
    from forcecast.cli import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit_:  # --help exits from argparse
        code = exit_.code
    loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set(BLOCKED))
    print("LOADED:", loaded)
    sys.exit(code)
    """
)


def run_edge_only(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, timeout=120)


def test_help_works_with_only_the_edge_extra():
    result = subprocess.run([sys.executable, "-c", BLOCKER, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: forcecast" in result.stdout
    for command in ("data", "train", "evaluate", "compare"):
        assert command in result.stdout
    assert "LOADED: []" in result.stdout


def test_data_commands_name_the_lab_extra_when_only_the_edge_extra_is_installed(tmp_path):
    out = tmp_path / "ds"
    result = run_edge_only(
        "data", "synth", "--out", str(out), "--subjects", "1", "--duration-s", "3", "--speeds", "fast", "--json"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "forcecast data: needs the 'lab' extra (pandas is not installed): pip install 'forcecast[lab]'"
    ]
    assert not out.exists()
    assert main(["data", "synth", "--out", str(out), "--subjects", "1", "--duration-s", "3", "--speeds", "fast"]) == 0
    result = run_edge_only("data", "check", str(out))
    assert result.returncode == 2 and "pip install 'forcecast[lab]'" in result.stderr


def test_edge_runs_a_replay_with_only_the_edge_extra(tmp_path):
    """A device install (no pandas, pyarrow, tqdm, matplotlib, TensorFlow) replays a format-v1 CSV trial."""
    out = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(out), "--subjects", "1", "--duration-s", "8", "--speeds", "fast"]) == 0
    trial = out / "trials" / "S01" / "walk_fast.imu.csv"
    result = run_edge_only(
        *("edge", "run", "--model", str(DATA / "grf_int8.fcpkg"), "--pubkey", str(DATA / "forcecast-test.pub")),
        *("--source", f"replay:{trial}", "--speed", "0", "--store", str(tmp_path / "s.sqlite"), "--json"),
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED: []" in result.stdout
    report = json.loads(result.stdout.splitlines()[0])
    assert report["steps"]["r"] > 0


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("forcecast")
    if not exe.exists():
        pytest.skip("forcecast console script not installed in this environment")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("forcecast ")


def test_synth_reads_a_toml_config_and_flags_override_it(tmp_path, capsys):
    config = tmp_path / "synth.toml"
    config.write_text('[synth]\nsubjects = 2\nduration_s = 3.0\nspeeds = ["slow"]\nstatic_s = 0.0\nseed = 4\n')
    code = main(["data", "synth", "--out", str(tmp_path / "ds"), "--config", str(config), "--subjects", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["subjects"] == 1 and result["trials"] == 1 and result["seed"] == 4
    assert sorted(p.name for p in (tmp_path / "ds" / "trials" / "S01").iterdir()) == [
        "walk_slow.force.csv",
        "walk_slow.imu.csv",
    ]


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("[synth]\nsubject = 3\n", "unknown key 'subject' (did you mean 'subjects'?)"),
        ('[synth]\nduration_s = "sixty"\n', "duration_s: expected a number, got 'sixty'"),
        ("[synth]\nsubjects = 0\n", "subjects must be 1..999"),
        ("[other]\n", "no [synth] table"),
        ("[synth\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, capsys, toml, words):
    config = tmp_path / "synth.toml"
    config.write_text(toml)
    code = main(["data", "synth", "--out", str(tmp_path / "ds"), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and "synth.toml" in err
    assert not (tmp_path / "ds").exists()


def test_bad_flag_value_is_a_clear_error(tmp_path, capsys):
    code = main(["data", "synth", "--out", str(tmp_path / "ds"), "--speeds", "slow,jog"])
    assert code == 2
    assert "speeds must be from" in capsys.readouterr().err


def test_resample_writes_single_file_trials_at_one_rate(tmp_path, tiny_dataset, capsys):
    out = tmp_path / "at100"
    assert main(["data", "resample", str(tiny_dataset), "--out", str(out), "--rate-hz", "100"]) == 0
    report = check_dataset(out)
    assert report.ok, [str(p) for p in report.problems]
    assert report.summary()["imu_rates_hz"] == [100.0] and report.summary()["force_rates_hz"] == [100.0]
    assert sorted(p.name for p in (out / "trials" / "S01").iterdir()) == ["static.csv", "walk_comfortable.csv"]
    code = main(["data", "resample", str(tiny_dataset), "--out", str(tiny_dataset), "--rate-hz", "100"])
    assert code == 2 and "must differ" in capsys.readouterr().err


def test_check_on_missing_folder_exits_non_zero(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nothing")]) == 1
    assert "not a folder" in capsys.readouterr().out


def test_parquet_datasets_are_written_and_checked(tmp_path, capsys):
    out = tmp_path / "pq"
    assert (
        main(["data", "synth", "--out", str(out), "--subjects", "1", "--duration-s", "3", "--format", "parquet"]) == 0
    )
    assert (
        sorted(p.suffix for p in (out / "trials" / "S01").iterdir()) == [".parquet"] * 8
    )  # static + 3 speeds, .imu and .force each
    assert main(["data", "check", str(out), "--json"]) == 0
    capsys.readouterr()
