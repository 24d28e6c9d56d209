"""Issue 13 item 9: no value in device.toml may break the device quietly or with a traceback.

Every numeric key is fed NaN, ±inf, a negative, zero (where zero is not allowed) and a huge value; each is
refused with an error naming the file and the key. Files that are not UTF-8, folders, invalid TOML and
files missing ``[patient]`` or ``[[sensors]]`` are refused with one error naming the file (CLI exit 2, no
traceback). A hypothesis test feeds random TOML-ish text to the loader: only ConfigError ever comes out.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forcecast.cli import main
from forcecast.edge.config import ConfigError
from forcecast.edge.runtime.config import DeviceConfig, load_device_config

BASE = """device_id = "fc-rel"
[patient]
patient_id = "P9"
body_mass_kg = 70.0
height_m = 1.7
{patient}
[runtime]
{runtime}
[store]
{store}
[feedback]
{feedback}
[ble]
{ble}
[models]
{models}
[[sensors]]
place = "r_shank"
{sensors}
"""

# (table, key): (zero allowed, small negative allowed, integer key)
NUMERIC_KEYS: dict[tuple[str, str], tuple[bool, bool, bool]] = {
    ("patient", "body_mass_kg"): (False, False, False),
    ("patient", "height_m"): (False, False, False),
    ("patient", "hka_deg"): (True, True, False),
    ("patient", "peak_limit_bw"): (True, False, False),
    ("sensors", "bus"): (True, False, True),
    ("sensors", "address"): (False, False, True),
    ("runtime", "calibration_s"): (True, False, False),
    ("runtime", "threads"): (False, False, True),
    ("runtime", "max_gap_s"): (False, False, False),
    ("runtime", "clock_jump_s"): (False, False, False),
    ("runtime", "summary_period_s"): (False, False, False),
    ("runtime", "poll_s"): (False, False, False),
    ("runtime", "stream_hop"): (False, False, True),
    ("runtime", "stream_lag"): (True, False, True),
    ("store", "max_bytes"): (False, False, True),
    ("feedback", "gpio_pin"): (True, False, True),
    ("feedback", "pulse_s"): (False, False, False),
    ("ble", "pairing_window_s"): (False, False, False),
    ("models", "health_s"): (True, False, False),
    ("models", "health_steps"): (True, False, True),
}


def config_text(table: str = "", line: str = "") -> str:
    tables = {"patient": "", "runtime": "", "store": "", "feedback": "", "ble": "", "models": "", "sensors": ""}
    if table:
        tables[table] = line
    text = BASE.format(**tables)
    key = line.partition(" = ")[0]
    if table == "patient" and key in ("patient_id", "body_mass_kg", "height_m"):  # replace the base's own line
        text = "\n".join(row for row in text.splitlines() if not row.startswith(f"{key} = ") or row == line) + "\n"
    return text


def numeric_fields(cls: type, prefix: str = "") -> set[tuple[str, str]]:
    """Every int/float key of the device config tree, as (table, key)."""
    found: set[tuple[str, str]] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        inner = args[0] if typing.get_origin(hint) is tuple and args else hint
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            found |= numeric_fields(inner, f.name)
        elif int in (hint, *args) or float in (hint, *args):
            found.add((prefix, f.name))
    return found


def test_the_table_below_covers_every_numeric_key_of_device_toml():
    assert numeric_fields(DeviceConfig) == set(NUMERIC_KEYS)


def bad_values(zero_ok: bool, negative_ok: bool, integer: bool) -> list[str]:
    values = ["nan", "inf", "-inf", "-1e15", "1e15"] if not integer else ["nan", "inf", "-1000000000000000"]
    values += ["1000000000000000"] if integer else []
    if not negative_ok:
        values.append("-1" if integer else "-0.5")
    if not zero_ok:
        values.append("0" if integer else "0.0")
    return values


CASES = [
    pytest.param(table, key, value, id=f"{table}.{key}={value}")
    for (table, key), rules in NUMERIC_KEYS.items()
    for value in bad_values(*rules)
]


@pytest.mark.parametrize(("table", "key", "value"), CASES)
def test_every_bad_number_is_refused_naming_the_file_and_the_key(tmp_path, table, key, value):
    path = tmp_path / "device.toml"
    path.write_text(config_text(table, f"{key} = {value}"))
    with pytest.raises(ConfigError) as info:
        load_device_config(path)
    message = str(info.value)
    where = f"sensors[0].{key}" if table == "sensors" else f"{table}.{key}"
    assert message.startswith(f"{path}: ") and where in message, message


def test_the_base_config_of_these_tests_loads(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text(config_text())
    assert load_device_config(path).patient.patient_id == "P9"


@pytest.mark.parametrize(
    ("table", "line", "words"),
    [
        ("runtime", "calibration_s = inf", "runtime.calibration_s: expected a finite number, got inf"),
        ("runtime", "max_gap_s = nan", "runtime.max_gap_s: expected a finite number, got nan"),
        ("runtime", "clock_jump_s = nan", "runtime.clock_jump_s: expected a finite number"),
        ("runtime", "threads = 100000", "runtime.threads: 100000 is out of range (allowed: 1..16)"),
        ("runtime", "clock_jump_s = 0.01", "runtime: clock_jump_s: 0.01 s must be longer than max_gap_s (0.05 s)"),
        ("feedback", "gpio_pin = -3", "feedback.gpio_pin: -3 is out of range (allowed: 0..255)"),
        ("feedback", "pulse_s = -0.1", "feedback.pulse_s: -0.1 is out of range"),
        ("feedback", 'gpio_chip = "gpiochip0"', "feedback: gpio_chip: 'gpiochip0' is not a device under /dev"),
        ("runtime", "thread = 2", "runtime: unknown key 'thread' (did you mean 'threads'?)"),
        ("patient", "body_mas_kg = 80", "unknown key 'body_mas_kg' (did you mean 'body_mass_kg'?)"),
        ("patient", 'patient_id = "Anna Müller"', "patient_id: 'Anna Müller' must be 1..32 letters"),
        ("sensors", 'axes = ["x", "y", "-z"]', "sensors[0]: axes: axes ('x', 'y', '-z') is a mirror image"),
        ("sensors", 'axes = ["x", "x", "z"]', "sensors[0]: axes:"),
        ("sensors", "address = 0x78", "sensors[0].address: 120 is out of range (allowed: 3..119)"),
        ("ble", "pairing_window_s = 5", "ble.pairing_window_s: 5 is out of range (allowed: 10..3600 s)"),
        ("ble", 'keystore = ""', "ble.keystore: expected a path, got ''"),
    ],
)
def test_the_values_named_in_the_issue_are_refused_with_their_key(tmp_path, table, line, words):
    path = tmp_path / "device.toml"
    path.write_text(config_text(table, line))
    with pytest.raises(ConfigError) as info:
        load_device_config(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("drop", "words"),
    [
        ("[patient]", "missing [patient] table"),
        ("[[sensors]]", "missing [[sensors]] tables"),
        ("device_id", "missing device_id"),
        ("body_mass_kg", "missing patient.body_mass_kg"),
    ],
)
def test_a_missing_patient_or_sensors_table_is_refused_not_defaulted(tmp_path, drop, words):
    text = config_text()
    if drop == "[patient]":
        text = text.replace('[patient]\npatient_id = "P9"\nbody_mass_kg = 70.0\nheight_m = 1.7\n', "")
    elif drop == "[[sensors]]":
        text = text[: text.index("[[sensors]]")]
    else:
        text = "\n".join(line for line in text.splitlines() if not line.startswith(drop))
    path = tmp_path / "device.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_device_config(path)
    assert str(info.value).startswith(f"{path}: missing ") and words in str(info.value)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(config_text().encode().replace(b"P9", b"P\xff9")), "not UTF-8 text"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_text("[patient\n"), "not valid TOML"),
        (lambda p: None, "file not found"),
    ],
)
def test_the_cli_exits_2_naming_the_file_without_a_traceback(tmp_path, capsys, make, words):
    path = tmp_path / "device.toml"
    make(path)
    code = main(["edge", "run", "--source", "synthetic:1", "--config", str(path), "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and words in err and "Traceback" not in err


# -- random TOML-ish input ---------------------------------------------------------------------------------

KEYS = sorted(
    {key for _table, key in NUMERIC_KEYS}
    | {"device_id", "trusted_keys", "patient_id", "affected_side", "place", "axes", "legs", "path", "name"}
    | {"address", "transport", "keystore", "output", "gpio_chip", "enabled", "edgetpu", "folder", "updates"}
)
TABLES = ["patient", "runtime", "store", "feedback", "ble", "models", "[sensors]", "sensor", "patient.x"]


def toml_value(depth: int = 0) -> st.SearchStrategy[str]:
    scalars = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda x: "nan" if math.isnan(x) else ("inf" if x == math.inf else "-inf" if x == -math.inf else repr(x))
        ),
        st.sampled_from(["true", "false", '""', '"x"', '"r_shank"', '"\\u0000"', "0x6A", "1979-05-27", "'a\\b'"]),
        st.text(max_size=12).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    )
    if depth >= 2:
        return scalars
    nested = toml_value(depth + 1)
    return st.one_of(
        scalars,
        st.lists(nested, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(KEYS), nested), max_size=3).map(
            lambda pairs: "{" + ", ".join(f"{k} = {v}" for k, v in dict(pairs).items()) + "}"
        ),
    )


LINE = st.one_of(
    st.tuples(st.sampled_from(KEYS), toml_value()).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(TABLES).map(lambda t: f"[{t}]"),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(LINE, max_size=6), lines=st.lists(LINE, max_size=12), keep_required=st.booleans())
def test_random_toml_ish_text_gives_a_config_or_a_config_error_never_a_traceback(
    tmp_path_factory, prefix, lines, keep_required
):
    text = "\n".join(prefix) + "\n" + (config_text() if keep_required else "") + "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("fuzz") / "device.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_device_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert isinstance(config, DeviceConfig)
        assert math.isfinite(config.runtime.calibration_s) and 1 <= config.runtime.threads <= 16


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_give_a_config_error_never_a_traceback(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "device.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError):
        load_device_config(path)
