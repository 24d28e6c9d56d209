"""``evaluate`` scores the held-out subjects by default; ``compare`` takes --models, --epochs and --json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_training import tiny_toml, train, write_config

from forcecast.cli import main
from forcecast.edge.config import ConfigError
from forcecast.training.compare import ZOO, parse_models
from forcecast.training.evaluate import choose_subjects, run_split

SPLIT = {"train": ["S01", "S04"], "val": ["S05"], "test": ["S02"], "exposed": ["S03"], "val_block_share": 0.0}
HAVE = ["S01", "S02", "S03", "S04", "S05"]


def test_default_is_the_subjects_the_model_never_saw() -> None:
    choice = choose_subjects(None, HAVE, SPLIT, allow_training=False)
    assert choice.subjects == ["S02"] and choice.seen == {} and choice.warnings == []
    # another dataset: none of its subjects were seen, so all are scored
    assert choose_subjects(None, ["P1", "P2"], SPLIT, False).subjects == ["P1", "P2"]


def test_training_subjects_need_the_flag_and_are_warned_about() -> None:
    with pytest.raises(ConfigError, match=r"S03 \(subject-exposed\).*--allow-training-subjects"):
        choose_subjects("S02,S03", HAVE, SPLIT, allow_training=False)
    with pytest.raises(ConfigError, match=r"S01 \(train\).*S05 \(validation\)"):
        choose_subjects("all", HAVE, SPLIT, allow_training=False)
    choice = choose_subjects("all", HAVE, SPLIT, allow_training=True)
    assert choice.subjects == HAVE
    assert choice.seen == {"S01": "train", "S03": "subject-exposed", "S04": "train", "S05": "validation"}
    assert len(choice.warnings) == 1 and all(s in choice.warnings[0] for s in choice.seen)
    assert choose_subjects("S02", HAVE, SPLIT, allow_training=False).warnings == []  # held-out: no warning


def test_bad_subject_lists_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="S42 not in the dataset"):
        choose_subjects("S02,S42", HAVE, SPLIT, False)
    with pytest.raises(ConfigError, match="no subject named"):
        choose_subjects(" , ", HAVE, SPLIT, False)
    with pytest.raises(ConfigError, match="every subject of the dataset was seen in training"):
        choose_subjects(None, ["S01", "S05"], SPLIT, False)


def test_without_a_recorded_split_everything_is_scored_with_a_warning() -> None:
    choice = choose_subjects(None, HAVE, None, allow_training=False)
    assert choice.subjects == HAVE and "no subject split recorded" in choice.warnings[0]


@given(st.text(alphabet="S0123,all ", max_size=20), st.booleans())
def test_subject_choice_never_scores_an_unseen_name_or_a_silent_training_subject(text: str, allow: bool) -> None:
    try:
        choice = choose_subjects(text, HAVE, SPLIT, allow)
    except ConfigError:
        return
    assert set(choice.subjects) <= set(HAVE) and choice.subjects
    assert allow or not choice.seen
    assert bool(choice.seen) == any("saw in training" in w for w in choice.warnings)


def test_run_split_reads_metrics_json_and_refuses_a_broken_one(tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    assert run_split(model) is None  # no metrics.json: no split known
    (tmp_path / "metrics.json").write_text(json.dumps({"split": SPLIT}))
    assert run_split(model) == SPLIT
    (tmp_path / "metrics.json").write_text(json.dumps({"split": {"train": "S01"}}))
    with pytest.raises(ConfigError, match=r"metrics.json: split: expected lists"):
        run_split(model)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"metrics\.json: not JSON"):
        run_split(model)


def test_parse_models() -> None:
    assert parse_models("all") == ZOO
    assert parse_models("lstm, cnn_lstm") == ("cnn_lstm", "lstm")  # zoo order
    with pytest.raises(ConfigError, match=r"unknown architecture.*wavenet.*choose from cnn_lstm"):
        parse_models("lstm,wavenet")
    with pytest.raises(ConfigError, match="no architecture named"):
        parse_models(",")


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("run")
    config = write_config(folder / "tiny.toml", tiny_toml(min_steps=6).replace("epochs = 2", "epochs = 1"))
    run = folder / "run"
    assert train(tiny_dataset, run, config, "--test-subjects", "S02", "--seed", "3", "--json") == 0
    return run


@pytest.mark.tf
def test_evaluate_defaults_to_the_held_out_subjects(
    tiny_run: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(tiny_run / "model.keras")
    capsys.readouterr()
    assert main(["evaluate", str(tiny_dataset), "--model", model, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["subjects"] == ["S02"] and "warning" not in captured.err

    training = json.loads((tiny_run / "metrics.json").read_text())["split"]["train"][0]
    assert main(["evaluate", str(tiny_dataset), "--model", model, "--subjects", training]) == 2
    assert f"{training} (train) seen in training" in capsys.readouterr().err

    argv = ["evaluate", str(tiny_dataset), "--model", model, "--subjects", "all", "--allow-training-subjects", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["subjects"] == ["S01", "S02", "S03"]  # stdout is still one object
    assert "warning: scoring subject(s) the model saw in training" in captured.err and training in captured.err

    lonely = tiny_run.parent / "lonely"
    lonely.mkdir()
    for name in ("model.keras", "contract.json"):
        shutil.copy(tiny_run / name, lonely / name)
    assert main(["evaluate", str(tiny_dataset), "--model", str(lonely / "model.keras"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["subjects"] == ["S01", "S02", "S03"]
    assert "no subject split recorded" in captured.err


# compare end to end (--models, --epochs, --json, folds, delays, int8): tests/training/test_compare.py


@pytest.mark.tf
def test_a_package_is_scored_on_the_split_its_manifest_records(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "new", "--out", str(keys)]) == 0
    package = tmp_path / "tiny.fcpkg"
    key = str(keys / "forcecast_ed25519.key")
    assert main(["quantize", "--run", str(tiny_run), "--out", str(package), "--key", key, "--mode", "float32"]) == 0
    assert run_split(package) == json.loads((tiny_run / "metrics.json").read_text())["split"]
    capsys.readouterr()
    assert main(["evaluate", str(tiny_dataset), "--model", str(package), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["subjects"] == ["S02"]
    assert main(["evaluate", str(tiny_dataset), "--model", str(package), "--subjects", "S01,S02"]) == 2
    assert "--allow-training-subjects" in capsys.readouterr().err
