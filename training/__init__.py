"""forcecast training: fit, evaluate and quantise GRF models from datasets in format v1.

Layering: may import ``edge`` (so training runs the device's DSP code), never ``host_app``.
"""
