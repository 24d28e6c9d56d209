"""One trained run of the model comparison as the device would run it: int8 size, ops and inference time.

The run's Keras model is converted to full int8 by the quantize path (:func:`forcecast.training.convert.convert`,
calibrated on windows of the run's own training split, as ``forcecast quantize`` does), loaded into the
device's interpreter wrapper (:class:`forcecast.edge.interpreter.TFLiteModel`, one thread) and invoked on
encoded test windows: ``warmup`` calls first, then ``invocations`` timed ones (the interpreter call alone, as
the streaming runtime makes it with inputs encoded as they arrive), in wall-clock time and in the CPU time of
the calling thread (the figure a busy, shared machine does not distort). The algorithmic delay is the device's own
(:attr:`forcecast.edge.contract.ModelContract.latency_s`, the figure ``forcecast edge bench`` reports as its
oldest output). The int8 model's accuracy on the run's test subjects comes with it, so the cost of
quantisation is visible beside the float figures.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from forcecast.edge.contract import ModelContract
from forcecast.edge.interpreter import TFLiteModel, runtime_module
from forcecast.training.config import TrainConfig
from forcecast.training.convert import audit_ops, convert
from forcecast.training.data import LoadedData
from forcecast.training.evaluate import evaluate_sequences, headline_axes, load_keras_run, tflite_predictor
from forcecast.training.quantize import _representative
from forcecast.training.splits import split_sequences
from forcecast.training.windows import WindowSource

MODEL_FILE = "model.int8.tflite"
INVOCATIONS = 200
WARMUP = 20


def algorithmic_delay_ms(contract: ModelContract) -> dict[str, float]:
    """How far behind the newest sensor sample a block's outputs lie, by construction (before compute).

    ``newest_output``: the output delay alone; ``oldest_output``: the device's
    :attr:`~forcecast.edge.contract.ModelContract.latency_s` (delay plus the wait for the block), the figure
    the comparison's latency axis uses, as ``forcecast edge bench`` reports it.
    """
    return {
        "newest_output": round(1000.0 * contract.delay / contract.rate_hz, 2),
        "oldest_output": round(1000.0 * contract.latency_s, 2),
    }


def float_ops(flatbuffer: bytes) -> list[str]:
    """Ops of a TFLite model that read or write a float32 tensor (none in a model that is int8 throughout)."""
    interpreter = runtime_module().Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return sorted(
        {
            op["op_name"]
            for op in interpreter._get_ops_details()
            if any(dtypes[i] == np.float32 for i in [*op["inputs"], *op["outputs"]] if i >= 0)
        }
    )


def time_invocations(
    model: TFLiteModel, feeds: list[dict[str, Any]], invocations: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``invocations`` interpreter calls on encoded ``feeds`` (cycled).

    ``warmup`` untimed calls come first. The CPU time is the calling thread's (the interpreter runs on it with
    one thread), so time the process spent waiting for a core on a busy machine is not in it; the wall-clock
    time includes that wait.
    """
    if invocations < 1 or warmup < 0 or not feeds:
        raise ValueError("need invocations >= 1, warmup >= 0 and at least one input")
    for k in range(warmup):
        model.run_encoded(**feeds[k % len(feeds)])
    wall, cpu = [], []
    for k in range(invocations):
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        model.run_encoded(**feeds[k % len(feeds)])
        cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - started) / 1e6)
    return wall, cpu


def _percentiles(values: list[float]) -> dict[str, float | int]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4), "n": int(a.size)}


def bench_run(
    run: Path,
    config: TrainConfig,
    loaded: LoadedData,
    invocations: int = INVOCATIONS,
    warmup: int = WARMUP,
) -> dict[str, Any]:
    """Convert a trained run to int8, time it on the device interpreter and score it on its test subjects.

    Parameters
    ----------
    run
        The run folder (``model.keras`` and ``contract.json``).
    config
        The run's resolved configuration (its split gives the calibration and test windows).
    loaded
        The dataset as loaded for ``config.data``.
    invocations, warmup
        Timed and untimed interpreter calls.

    Returns
    -------
    dict
        ``int8_bytes``, ``ops``, ``float_ops``, ``inference_ms`` and ``inference_cpu_ms`` (wall-clock and
        thread CPU time: ``p50``, ``p99``, ``n``; see :func:`time_invocations`), ``runtime``,
        ``algorithmic_delay_ms``, ``int8_axes`` (per-axis metrics of the int8 model on the test subjects);
        the int8 model is written beside the run as :data:`MODEL_FILE`.

    Raises
    ------
    forcecast.training.convert.ConversionError
        If the model does not convert to int8 with builtin ops only.
    """
    model, contract = load_keras_run(run / "model.keras")
    use_static = bool(contract.static_features)
    _, sets = split_sequences(loaded, config)
    with warnings.catch_warnings():  # the converter's calibration uses TensorFlow's own, deprecated interpreter
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        flatbuffer = convert(model, "int8", _representative(sets["train"], contract, use_static))
    (run / MODEL_FILE).write_bytes(flatbuffer)
    tflite = TFLiteModel(flatbuffer, num_threads=1)
    source = WindowSource(sets["test"], contract, use_static)
    picks = np.linspace(0, len(source) - 1, min(len(source), 64)).astype(np.int64)
    feeds = []
    for k in picks:
        inputs, _ = source.gather(np.array([k]))
        named = {"imu": inputs[0], **({"static": inputs[1]} if use_static else {})}
        feeds.append({name: tflite.encode(name, value) for name, value in named.items()})
    wall, cpu = time_invocations(tflite, feeds, invocations, warmup)
    scored = evaluate_sequences(tflite_predictor(tflite, use_static), sets["test"], contract, use_static)
    return {
        "int8_bytes": len(flatbuffer),
        "ops": audit_ops(flatbuffer),
        "float_ops": float_ops(flatbuffer),
        "inference_ms": _percentiles(wall),
        "inference_cpu_ms": _percentiles(cpu),
        "runtime": tflite.runtime,
        "interpreter_threads": 1,
        "algorithmic_delay_ms": algorithmic_delay_ms(contract),
        "int8_axes": headline_axes(scored),
    }
