import pytest

from forcecast.edge.schema import (
    KNOWN_COLUMNS,
    PLACES,
    all_force_columns,
    all_imu_columns,
    force_column,
    imu_column,
    parse_column,
)


def test_every_canonical_column_parses_back():
    for name in KNOWN_COLUMNS:
        spec = parse_column(name)
        assert spec is not None and spec.name == name


def test_imu_column_fields_and_units():
    spec = parse_column("l_shank_gyr_z")
    assert (spec.kind, spec.place, spec.quantity, spec.axis, spec.unit) == ("imu", "l_shank", "gyr", "z", "rad/s")
    spec = parse_column("r_grf_ml")
    assert (spec.kind, spec.place, spec.quantity, spec.axis, spec.unit) == ("force", "r", "grf", "ml", "N")


@pytest.mark.parametrize("name", ["l_shank_acc_X", "shank_acc_x", "l_arm_acc_x", "l_grf_z", "time", "pelvis_mag_x", ""])
def test_unknown_names_are_rejected(name):
    assert parse_column(name) is None


def test_builders_refuse_bad_parts():
    assert imu_column("pelvis", "acc", "x") == "pelvis_acc_x"
    assert force_column("l", "ap") == "l_grf_ap"
    with pytest.raises(ValueError, match="not an IMU channel"):
        imu_column("l_hand", "acc", "x")
    with pytest.raises(ValueError, match="not a force channel"):
        force_column("l", "z")


def test_canonical_counts():
    assert len(all_imu_columns()) == len(PLACES) * 6
    assert len(all_force_columns()) == 6
