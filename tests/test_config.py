from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from edge.config import ConfigError, from_dict, load_config, to_dict


@dataclass(frozen=True)
class Inner:
    rate_hz: float = 100.0
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = 1
    flags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)
    path: Path | None = None
    enabled: bool = False


def test_nested_values_and_types_are_converted():
    cfg = from_dict(Outer, {"count": 3, "flags": ["p", "q"], "inner": {"rate_hz": 200, "mode": "b"}, "path": "/tmp/x"})
    assert cfg == Outer(count=3, flags=("p", "q"), inner=Inner(200.0, "b"), path=Path("/tmp/x"))
    assert to_dict(cfg)["flags"] == ["p", "q"] and to_dict(cfg)["inner"] == {"rate_hz": 200.0, "mode": "b"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"count": 1.5}, "count: expected an integer"),
        ({"count": True}, "count: expected an integer"),
        ({"flags": "p"}, "flags: expected a list"),
        ({"flags": [1]}, "flags[0]: expected text"),
        ({"inner": {"mode": "c"}}, "inner.mode: 'c' is not one of 'a', 'b'"),
        ({"inner": {"rate": 1}}, "inner.unknown key(s) rate"),
        ({"enabled": "yes"}, "enabled: expected true or false"),
        ({"inner": 3}, "expected a table"),
    ],
)
def test_bad_values_name_the_key(data, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data, "cfg.toml: ")
    assert words in str(info.value)
    assert str(info.value).startswith("cfg.toml: ")


def test_load_config_reads_a_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[outer]\nname = "y"\n[outer.inner]\nrate_hz = 50\n')
    assert load_config(Outer, path, "outer") == Outer(name="y", inner=Inner(50.0))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(Outer, tmp_path / "missing.toml")
