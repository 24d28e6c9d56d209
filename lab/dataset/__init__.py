"""Dataset interchange format v1: reading, writing, validation and alignment.

See ``README.md`` ("Dataset format v1") for the contract these modules implement.
"""

from forcecast.lab.dataset.align import resample_trial
from forcecast.lab.dataset.checks import check_trial
from forcecast.lab.dataset.dataset import CheckReport, Dataset, TrialSummary, check_dataset
from forcecast.lab.dataset.problems import DatasetError, Problem
from forcecast.lab.dataset.subjects import SUBJECTS_FILE, Subject, load_subjects, read_subjects, write_subjects
from forcecast.lab.dataset.trial import (
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
