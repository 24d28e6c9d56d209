from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from forcecast.edge.config import ConfigError, bounded, check_bounds, from_dict, load_config, to_dict


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
        ({"inner": {"rate": 1}}, "inner: unknown key 'rate' (did you mean 'rate_hz'?)"),
        ({"inner": {"rate_hz": float("nan")}}, "inner.rate_hz: expected a finite number, got nan"),
        ({"inner": {"rate_hz": float("-inf")}}, "inner.rate_hz: expected a finite number, got -inf"),
        ({"name": "a\x00b"}, "name: text must not contain a NUL"),
        ({"path": ""}, "path: expected a path, got ''"),
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


@dataclass(frozen=True)
class Ranged:
    period_s: float = bounded(1.0, 0.0, 10.0, low_open=True, unit="s")
    count: int = bounded(2, 1, 8)
    offset: float | None = bounded(None, -5.0, 5.0)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class NeedsName:
    name: str
    size: int = 1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"period_s": 0.0}, "period_s: 0 is out of range (allowed: > 0 and ≤ 10 s)"),
        ({"period_s": 10.5}, "period_s: 10.5 is out of range"),
        ({"count": 0}, "count: 0 is out of range (allowed: 1..8)"),
        ({"count": 10**30}, "count: 1000000000000000000000000000000 is out of range"),
        ({"offset": -6}, "offset: -6 is out of range (allowed: -5..5)"),
        ({"count": 2.0}, "count: expected an integer"),
    ],
)
def test_bounded_values_out_of_range_name_the_key_and_the_range(data, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Ranged, data, "r.toml: ")
    assert str(info.value).startswith("r.toml: ") and words in str(info.value)


def test_bounded_fields_are_checked_when_built_in_code_too():
    assert from_dict(Ranged, {"period_s": 10, "count": 8, "offset": -5}) == Ranged(10.0, 8, -5.0)
    with pytest.raises(ValueError, match="count: 9 is out of range"):
        Ranged(count=9)
    with pytest.raises(ValueError, match="period_s: nan is not a finite number"):
        Ranged(period_s=float("nan"))


def test_a_missing_required_key_is_named():
    with pytest.raises(ConfigError, match=r"^n.toml: missing key\(s\) name$"):
        from_dict(NeedsName, {"size": 3}, "n.toml: ")


def test_an_unknown_key_far_from_any_known_one_gets_no_suggestion():
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"zzzz": 1}, "o.toml: ")
    assert "unknown key 'zzzz'; known: name, count" in str(info.value) and "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(b'name = "caf\xe9"\n'), "not UTF-8 text (byte 11 is 0xE9)"),
        (lambda p: p.mkdir(), "is a folder, not a TOML file"),
        (lambda p: p.write_text("name = \n"), "not valid TOML"),
        (lambda p: p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n"), "not valid TOML"),
        (lambda p: p.symlink_to(p.parent / "nowhere.toml"), "file not found"),
    ],
)
def test_an_unreadable_file_is_one_error_naming_it(tmp_path, make, words):
    path = tmp_path / "bad.toml"
    make(path)
    with pytest.raises(ConfigError) as info:
        load_config(Outer, path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)


def test_a_file_without_read_permission_is_named(tmp_path, monkeypatch):
    path = tmp_path / "secret.toml"
    path.write_text('name = "x"\n')

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # root (as in CI containers) reads any file despite chmod 0
    with pytest.raises(ConfigError, match=r"secret\.toml: not readable \(permission denied\)"):
        load_config(Outer, path)
