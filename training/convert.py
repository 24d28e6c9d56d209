"""Keras model → TFLite flatbuffer in one of four builds, with an audit of the ops used.

Builds: ``float32``; ``float16`` (weights in half precision); ``dynamic`` (int8 weights, float
activations); ``int8`` (full integer: int8 weights, activations, input and output tensors, calibrated on
a representative dataset). Inputs have static shapes with batch 1, as on the device. Only TFLite builtin
ops are allowed: a Flex (SELECT_TF_OPS) or custom op fails the conversion.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.errors import EXIT_REFUSED, ForcecastRuntimeError

Mode = Literal["float32", "float16", "dynamic", "int8"]
MODES: tuple[Mode, ...] = ("float32", "float16", "dynamic", "int8")
SIGNATURE = "serve"


class ConversionError(ForcecastRuntimeError):
    """The converter failed, or produced ops the device cannot run."""

    reason = "conversion_failed"
    exit_code = EXIT_REFUSED


def convert(
    model: Any,
    mode: Mode,
    representative: Callable[[], Iterator[dict[str, NDArray[np.float32]]]] | None = None,
) -> bytes:
    """Convert a Keras model with inputs ``imu`` (and ``static``) to TFLite bytes.

    Parameters
    ----------
    model
        A Keras model as built by :func:`forcecast.training.models.build_model`.
    mode
        One of :data:`MODES`.
    representative
        For ``int8``: yields ``{"imu": (1, window, channels), "static": (1, n)}`` float32 samples of real
        (normalised) inputs, drawn from the training split.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "int8" and representative is None:
        raise ValueError("int8 conversion needs a representative dataset")
    specs = [tf.TensorSpec((1, *t.shape[1:]), tf.float32, name=t.name.split(":")[0]) for t in model.inputs]
    names = [s.name for s in specs]
    folder = tempfile.mkdtemp(prefix="forcecast-export-")
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        if len(specs) == 2:
            archive.add_endpoint(
                SIGNATURE, lambda imu, static: model([imu, static], training=False), input_signature=specs
            )
        else:
            archive.add_endpoint(SIGNATURE, lambda imu: model([imu], training=False), input_signature=specs)
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if mode == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            assert representative is not None  # refused above without one
            converter.representative_dataset = lambda: ({n: s[n] for n in names} for s in representative())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises many types; all mean "this build failed"
            raise ConversionError(f"{mode} conversion failed: {exc}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    audit_ops(flatbuffer)
    return bytes(flatbuffer)


def op_names(flatbuffer: bytes) -> list[str]:
    """Sorted distinct operator names in a TFLite model, as the device's builtin kernels (without delegates) read it.

    Not the reference kernels (``BUILTIN_REF``): LiteRT 1.2.0, the device's runtime, registers newer versions of some
    ops (e.g. a dynamic-range ``FULLY_CONNECTED`` version 12) only among its optimised kernels.
    """
    from forcecast.edge.interpreter import runtime_module

    module = runtime_module()
    interpreter = module.Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    return sorted({d["op_name"] for d in interpreter._get_ops_details()})


def audit_ops(flatbuffer: bytes) -> list[str]:
    """Refuse a model with Flex (TensorFlow) or custom ops; return its builtin ops."""
    ops = op_names(flatbuffer)
    bad = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE") or not op.isupper()]
    if bad:
        raise ConversionError(
            f"the model uses ops the device cannot run (only TFLite builtins allowed): {', '.join(bad)}"
        )
    return ops
