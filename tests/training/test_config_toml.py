"""A run's resolved configuration written as TOML (tomli-w): valid, and read back equal, or a clear error."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.config import ConfigError, load_config
from forcecast.training.config import FitConfig, SplitConfig, TrainConfig, dump_toml, load_train_config


@dataclass(frozen=True)
class Limits:
    cue_bw: float | None = None
    gain: float | None = 1.0
    folder: Path | None = None
    marks: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    limits: Limits = field(default_factory=Limits)


def test_the_default_training_config_reads_back_equal(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(TrainConfig()))
    assert load_train_config(path) == TrainConfig()
    assert path.read_text().startswith("# forcecast training configuration (resolved)\n[data]\n")


def test_a_value_of_none_is_left_out_so_the_toml_stays_valid_and_reads_back_none(tmp_path):
    text = dump_toml(Outer(limits=Limits(cue_bw=None, folder=None)), title="limits")
    parsed = tomllib.loads(text)  # the hand-written writer produced `cue_bw = None` here: not TOML
    assert parsed == {"name": "x", "limits": {"gain": 1.0, "marks": []}}
    path = tmp_path / "limits.toml"
    path.write_text(text)
    assert load_config(Outer, path) == Outer()
    set_values = Outer(limits=Limits(cue_bw=1.4, folder=Path("/data/runs"), marks=(0.5, 2.0)))
    path.write_text(dump_toml(set_values))
    assert load_config(Outer, path) == set_values
    assert 'folder = "/data/runs"' in path.read_text()


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (Outer(limits=Limits(gain=None)), "limits.gain = None (reads back as 1.0)"),
        (Outer(limits=Limits(marks=(1.0, None))), "limits.marks holds None (TOML has no null)"),
        (Outer(limits=Limits(cue_bw=math.nan)), "limits.cue_bw: expected a finite number"),
        (TrainConfig(fit=FitConfig(init_from="run\x00")), "fit.init_from: text must not contain a NUL"),
        (Outer(name=b"bytes"), "name is a bytes"),  # type: ignore[arg-type]
    ],
)
def test_a_value_toml_cannot_carry_is_an_error_naming_the_key(config, words):
    with pytest.raises(ConfigError, match="cannot write the configuration as TOML") as caught:
        dump_toml(config)
    assert words in str(caught.value)


def test_a_title_of_several_lines_stays_a_comment():
    text = dump_toml(Outer(), title="first line\nsecond = line")
    assert text.startswith("# first line\n# second = line\n")
    assert tomllib.loads(text) == {"name": "x", "limits": {"gain": 1.0, "marks": []}}


texts = st.text(st.characters(exclude_characters="\x00"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    subjects=st.lists(texts, max_size=4),
    init_from=texts.filter(str.strip),
    freeze=st.lists(texts.filter(str.strip), max_size=3),
)
def test_any_text_in_the_config_reads_back_exactly(tmp_path_factory, subjects, init_from, freeze):
    config = replace(
        TrainConfig(),
        split=SplitConfig(test_subjects=tuple(subjects)),
        fit=FitConfig(init_from=init_from, freeze=tuple(freeze)),
    )
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    assert load_train_config(path) == config
