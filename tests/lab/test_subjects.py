from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.lab.dataset import Subject, read_subjects, write_subjects

HEADER = "subject_id,body_mass_kg,height_m,hka_deg,affected_side,group\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subjects.csv"
    path.write_text(text)
    return path


def test_round_trip_keeps_values_and_unknown_alignment(tmp_path):
    subjects = [
        Subject("A1", 70.5, 1.72, 4.5, "left", {"group": "knee_oa"}),
        Subject("B2", 60.0, 1.60, None, "none", {"group": "control"}),
    ]
    path = tmp_path / "subjects.csv"
    write_subjects(path, subjects)
    read, problems = read_subjects(path)
    assert problems == []
    assert read == subjects
    assert read[1].hka_deg is None


def test_each_bad_value_is_named_with_row_and_column(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + "\n".join(
            [
                "S1,70,172,3,left,x",  # height in cm
                "S2,70000,1.7,3,left,x",  # mass in grams
                "S3,70,1.7,abc,left,x",  # hka not a number
                "S1,70,1.7,3,right,x",  # duplicate id
                "S5,70,1.7,3,both,x",  # bad side
                "S6,70,1.7,45,none,x",  # implausible alignment
                "S7,70,1.7,,none,x",  # fine: unknown alignment
            ]
        )
        + "\n",
    )
    subjects, problems = read_subjects(path)
    found = {(p.row, p.column) for p in problems}
    assert found == {
        (1, "height_m"),
        (2, "body_mass_kg"),
        (3, "hka_deg"),
        (4, "subject_id"),
        (5, "affected_side"),
        (6, "hka_deg"),
    }
    by_row = {p.row: p.message for p in problems}
    assert "centimetres" in by_row[1]
    assert "grams" in by_row[2]
    assert "first on row 1" in by_row[4]
    assert [s.subject_id for s in subjects] == ["S7"]  # rows with errors are left out


def test_missing_column_and_missing_file(tmp_path):
    _, problems = read_subjects(write(tmp_path, "subject_id,body_mass_kg,height_m\nS1,70,1.7\n"))
    assert "hka_deg" in problems[0].message and "affected_side" in problems[0].message
    _, problems = read_subjects(tmp_path / "nope.csv")
    assert "not found" in problems[0].message


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    subjects, problems = read_subjects(write(folder, HEADER + text))
    assert isinstance(subjects, list) and isinstance(problems, list)
    for s in subjects:
        assert s.subject_id and 20 <= s.body_mass_kg <= 300
