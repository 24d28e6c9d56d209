"""The ``forcecast`` command: one entry point that dispatches to training, edge and host_app.

This package holds only the command-line front door. Each part registers its own subcommands
from a light module that imports nothing heavy at import time, so ``forcecast --help`` and
``forcecast edge ...`` work on a device that has only the ``edge`` extra installed.
"""
