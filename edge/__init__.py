"""forcecast edge: everything that runs on the device, and every contract shared with it.

This package is the bottom layer of forcecast. It owns the sensor and dataset schema, the DSP
that training and the device share, and (as the project grows) the model-package reader, the BLE
wire protocol and the step metrics. It imports nothing else of forcecast and never TensorFlow,
so that it installs and runs on a Raspberry Pi with only the ``edge`` extra.
"""

if __name__ != "forcecast.edge":  # one module, one name (no bare import)
    raise ImportError(f"import forcecast's device package as 'forcecast.edge', not {__name__!r}")

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forcecast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
