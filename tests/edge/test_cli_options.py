"""The shared command-line options: DATA with its deprecated --data spelling, and output refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from forcecast.edge.cli_options import (
    add_common,
    add_dataset,
    dataset_of,
    refuse_existing_file,
    refuse_non_empty,
)
from forcecast.edge.errors import OutputExistsError, UsageError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forcecast train")
    add_dataset(parser)
    parser.add_argument("--out", type=Path)
    add_common(parser, json="one object", force="write anyway")
    return parser


def test_data_first_is_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args([str(tmp_path), "--out", "run"])
    assert dataset_of(args) == tmp_path
    assert capsys.readouterr().err == ""
    assert (args.json, args.force, args.verbose) == (False, False, False)


def test_the_old_data_option_still_works_with_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["--data", str(tmp_path), "--out", "run", "--verbose"])
    assert dataset_of(args) == tmp_path
    assert args.verbose
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["forcecast train: warning: --data is deprecated; give the dataset folder first, as DATA"]


def test_the_help_marks_data_deprecated() -> None:
    assert "deprecated spelling of DATA" in _parser().format_help()


def test_dataset_given_twice_or_not_at_all_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="given twice"):
        dataset_of(_parser().parse_args([str(tmp_path), "--data", str(tmp_path)]))
    with pytest.raises(UsageError, match="DATA is required"):
        dataset_of(_parser().parse_args(["--out", "run"]))


def test_a_missing_dataset_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere: no such dataset folder"):
        dataset_of(_parser().parse_args([str(tmp_path / "nowhere")]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        dataset_of(_parser().parse_args([str(tmp_path / "file")]))


def test_a_non_empty_output_folder_is_refused_without_force(tmp_path: Path) -> None:
    refuse_non_empty(tmp_path / "new", force=False)  # does not exist yet: fine
    refuse_non_empty(tmp_path, force=False)  # exists, empty: fine
    (tmp_path / "old.csv").write_text("x")
    with pytest.raises(OutputExistsError, match=r"--out .*: the folder is not empty; .* --force"):
        refuse_non_empty(tmp_path, force=False)
    refuse_non_empty(tmp_path, force=True)
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        refuse_non_empty(tmp_path / "old.csv", force=False)


def test_an_existing_output_file_is_refused_without_force(tmp_path: Path) -> None:
    target = tmp_path / "m.fcpkg"
    refuse_existing_file(target, force=False)
    target.write_bytes(b"PK")
    with pytest.raises(OutputExistsError, match=r"m\.fcpkg: the file exists"):
        refuse_existing_file(target, force=False)
    refuse_existing_file(target, force=True)
