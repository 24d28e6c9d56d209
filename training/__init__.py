"""forcecast training: fit, evaluate and quantise GRF models from datasets in format v1.

Layering: may import ``edge`` (so training runs the device's DSP code), never ``host_app``.
"""

if __name__ != "forcecast.training":  # one module, one name (no bare import)
    raise ImportError(f"import forcecast's training package as 'forcecast.training', not {__name__!r}")
