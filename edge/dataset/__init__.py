"""Dataset interchange format v1: reading, writing, validation and alignment.

See ``README.md`` ("Dataset format v1") for the contract these modules implement.
"""

from edge.dataset.align import resample_trial
from edge.dataset.checks import check_trial
from edge.dataset.dataset import CheckReport, Dataset, TrialSummary, check_dataset
from edge.dataset.problems import DatasetError, Problem
from edge.dataset.subjects import SUBJECTS_FILE, Subject, load_subjects, read_subjects, write_subjects
from edge.dataset.trial import (
    TRIALS_DIR,
    Stream,
    Trial,
    TrialRef,
    discover_trials,
    load_trial,
    read_trial,
    write_table,
    write_trial,
)

__all__ = [
    "SUBJECTS_FILE",
    "TRIALS_DIR",
    "CheckReport",
    "Dataset",
    "DatasetError",
    "Problem",
    "Stream",
    "Subject",
    "Trial",
    "TrialRef",
    "TrialSummary",
    "check_dataset",
    "check_trial",
    "discover_trials",
    "load_subjects",
    "load_trial",
    "read_subjects",
    "read_trial",
    "resample_trial",
    "write_subjects",
    "write_table",
    "write_trial",
]
