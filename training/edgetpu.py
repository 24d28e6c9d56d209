"""Edge TPU (Coral): which of our ops it can run, and the ``_edgetpu`` build when the compiler is installed.

The Edge TPU runs only full-integer (int8) models, and only the builtin ops in :data:`EDGETPU_OPS`
(Coral's "supported operations" table for compiler v16, each with limits on shapes). The compiler maps
ops from the start of the graph up to the first one it cannot run; everything after that runs on the
CPU, so one unsupported op early in the graph moves nearly all the work back to the CPU.
``edgetpu_compiler`` exists only for x86-64 Debian/Ubuntu (Coral's apt repository); when it is on
``PATH``, :func:`compile_for_edgetpu` produces the build that the device's delegate loads.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Final

from forcecast.training.convert import ConversionError

COMPILER: Final = "edgetpu_compiler"

EDGETPU_OPS: Final = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUARED_DIFFERENCE",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)


def compatibility(ops: list[str]) -> dict[str, bool]:
    """For each op kind in ``ops``: whether the Edge TPU can run it."""
    return {op: op in EDGETPU_OPS for op in sorted(set(ops))}


def compatibility_line(ops: list[str]) -> str:
    """One human-readable line: how many op kinds map to the Edge TPU and which do not."""
    table = compatibility(ops)
    unsupported = [op for op, ok in table.items() if not ok]
    line = f"Edge TPU: {len(table) - len(unsupported)} of {len(table)} op kinds supported"
    if unsupported:
        line += f"; not supported: {', '.join(unsupported)} (from the first of these on, ops run on the CPU)"
    return line


def find_compiler() -> str | None:
    """Path of ``edgetpu_compiler`` if it is on ``PATH``."""
    return shutil.which(COMPILER)


def compile_for_edgetpu(model: bytes, compiler: str) -> tuple[bytes, str]:
    """Compile an int8 model with ``edgetpu_compiler``; returns the ``_edgetpu`` bytes and the compiler log.

    Raises
    ------
    ConversionError
        If the compiler fails or writes no model (its log is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="forcecast-edgetpu-") as folder:
        source = Path(folder) / "model.tflite"
        source.write_bytes(model)
        done = subprocess.run(
            [compiler, "--show_operations", "--out_dir", folder, str(source)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        target = Path(folder) / "model_edgetpu.tflite"
        if done.returncode != 0 or not target.is_file():
            raise ConversionError(
                f"{compiler} failed (exit {done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}"
            )
        return target.read_bytes(), done.stdout


def describe(edgetpu_model: bytes, log: str) -> dict[str, Any]:
    """The manifest's ``edgetpu`` entry: size and hash (signed with the manifest) and the compiler's report."""
    return {
        "file": "model_edgetpu.tflite",
        "bytes": len(edgetpu_model),
        "sha256": hashlib.sha256(edgetpu_model).hexdigest(),
        "compiler_log": log.strip().splitlines()[-40:],
    }
