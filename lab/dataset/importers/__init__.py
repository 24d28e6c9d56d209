"""Import lab recordings (C3D, OpenSim ``.mot``/``.sto``, CSV + a mapping file) into dataset format v1.

This is lab-layer code: the device never imports it. ``ezc3d`` is needed for C3D files only and is
imported when one is read.
"""

from forcecast.lab.dataset.importers.importer import MASS_SOURCE_COLUMN, REPORT_FILE, ImportReport, import_lab_data
from forcecast.lab.dataset.importers.mapping import Mapping, MappingError, load_mapping
from forcecast.lab.dataset.importers.sync import LagEstimate, estimate_lag, trial_lag

__all__ = [
    "MASS_SOURCE_COLUMN",
    "REPORT_FILE",
    "ImportReport",
    "LagEstimate",
    "Mapping",
    "MappingError",
    "estimate_lag",
    "import_lab_data",
    "load_mapping",
    "trial_lag",
]
