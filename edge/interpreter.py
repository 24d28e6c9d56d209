"""Run a TFLite model on the device: pick a runtime, map named inputs, (de)quantise int8 tensors.

Runtime order: ``ai_edge_litert`` (LiteRT, the maintained successor), then ``tflite_runtime``, else a
clear refusal. With ``edgetpu=True`` the Coral delegate (``libedgetpu.so.1``) is loaded, and it is an
error if it is not there, rather than silently running on the CPU.
"""

from __future__ import annotations

import ctypes
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forcecast.edge.contract import ContractError, ModelContract
from forcecast.edge.errors import ForcecastRuntimeError

RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
EDGETPU_LIBRARY = "libedgetpu.so.1"


class RuntimeMissingError(ForcecastRuntimeError):
    """No TFLite runtime (or no Edge TPU library) is installed."""

    reason = "runtime_missing"


def runtime_module(preferred: str | None = None) -> Any:
    """The first importable TFLite interpreter module (or ``preferred`` if given)."""
    names = (preferred,) if preferred else RUNTIMES
    errors = []
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise RuntimeMissingError(
        "no TFLite runtime found; install one with: pip install 'forcecast[edge]' (ai-edge-litert) "
        f"or pip install tflite-runtime ({'; '.join(errors)})"
    )


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output: name, shape, dtype and int8 quantisation (scale 0 = float)."""

    name: str
    shape: tuple[int, ...]
    dtype: Any
    scale: float
    zero_point: int


class TFLiteModel:
    """A loaded model with named float inputs and outputs, whatever its internal quantisation.

    Parameters
    ----------
    model
        The ``.tflite`` bytes.
    num_threads
        Interpreter threads (1 on the device: predictable latency, a core left for the rest).
    edgetpu
        Load the Coral Edge TPU delegate.
    runtime
        Force a runtime module (``"ai_edge_litert.interpreter"`` or ``"tflite_runtime.interpreter"``).
    """

    def __init__(self, model: bytes, num_threads: int = 1, edgetpu: bool = False, runtime: str | None = None) -> None:
        module = runtime_module(runtime)
        self.runtime = module.__name__.split(".")[0]
        delegates = []
        if edgetpu:
            try:
                # Tried here first: when LiteRT's own load_delegate fails on a missing library, its half-made
                # Delegate's finaliser prints an AttributeError traceback into the device's log.
                ctypes.CDLL(EDGETPU_LIBRARY)
                delegates.append(module.load_delegate(EDGETPU_LIBRARY))
            except (OSError, ValueError) as exc:
                raise RuntimeMissingError(
                    f"Edge TPU requested but {EDGETPU_LIBRARY} could not be loaded: {exc}"
                ) from None
        self._interpreter = module.Interpreter(
            model_content=model, num_threads=num_threads, experimental_delegates=delegates or None
        )
        self._interpreter.allocate_tensors()
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"expected a model with one signature, found {sorted(signatures)}")
        self._runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        self.inputs = {n: _info(n, d) for n, d in self._runner.get_input_details().items()}
        self.outputs = {n: _info(n, d) for n, d in self._runner.get_output_details().items()}

    def check_contract(self, contract: ModelContract) -> None:
        """Check that the model's tensors are the ones ``contract`` describes.

        ``imu`` must be ``(1, window, channels)``, ``static`` present exactly when the contract has static
        features and ``(1, features)``, and the one output ``(1, out_len, output axes)``: a contract whose
        ``out_len`` or ``window`` is not the model's would otherwise run wrong or crash at the first step.

        Raises
        ------
        ContractError
            Naming each tensor whose name or shape does not match, and the shape the contract implies.
        """
        expected: dict[str, tuple[int, ...]] = {"imu": (1, contract.window, len(contract.channels))}
        if contract.static_features:
            expected["static"] = (1, len(contract.static_features))
        problems = []
        for name in sorted(set(expected) | set(self.inputs)):
            if name not in self.inputs:
                problems.append(f"the model has no input {name!r} (contract: shape {expected[name]})")
            elif name not in expected:
                problems.append(f"the model's input {name!r} is not in the contract")
            elif self.inputs[name].shape != expected[name]:
                problems.append(
                    f"input {name!r} has shape {self.inputs[name].shape}, the contract implies {expected[name]}"
                )
        output = (1, contract.out_len, len(contract.output_axes))
        if len(self.outputs) != 1:
            problems.append(f"the model has {len(self.outputs)} outputs, the contract one of shape {output}")
        else:
            name, info = next(iter(self.outputs.items()))
            if info.shape != output:
                problems.append(
                    f"output {name!r} has shape {info.shape}, the contract (out_len {contract.out_len}, "
                    f"{len(contract.output_axes)} axes) implies {output}"
                )
        if problems:
            raise ContractError("model tensors do not match the contract: " + "; ".join(problems))

    def ops(self) -> list[str]:
        """Names of the operators in the model's graph (after delegation)."""
        return [d["op_name"] for d in self._interpreter._get_ops_details()]

    def encode(self, name: str, values: NDArray[np.floating]) -> NDArray[Any]:
        """Float values as input ``name`` takes them (quantised for an int8 input), any leading shape."""
        return _quantise(np.asarray(values, dtype=np.float32), self.inputs[name])

    def run_encoded(self, **inputs: NDArray[Any]) -> dict[str, NDArray[np.float32]]:
        """Run on inputs already encoded with :meth:`encode` and shaped as the model wants; float outputs.

        The streaming runtime encodes every sample once as it arrives instead of re-encoding a whole
        window at every hop.
        """
        raw = self._runner(**inputs)
        return {name: _dequantise(raw[name], info) for name, info in self.outputs.items()}

    def __call__(self, **inputs: NDArray[np.floating]) -> dict[str, NDArray[np.float32]]:
        """Run once with float inputs by name; returns float outputs by name."""
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ValueError(f"missing model input(s): {', '.join(sorted(missing))}")
        feed = {}
        for name, info in self.inputs.items():
            value = np.asarray(inputs[name], dtype=np.float32)
            if value.shape != info.shape:
                raise ValueError(f"input {name!r} has shape {value.shape}, the model expects {info.shape}")
            feed[name] = _quantise(value, info)
        raw = self._runner(**feed)
        return {name: _dequantise(raw[name], info) for name, info in self.outputs.items()}


def _info(name: str, detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(name, tuple(int(v) for v in detail["shape"]), detail["dtype"], float(scale), int(zero_point))


def _quantise(value: NDArray[np.float32], info: TensorInfo) -> NDArray[Any]:
    if info.dtype == np.float32 or info.scale == 0.0:
        return value.astype(info.dtype)
    bounds = np.iinfo(info.dtype)
    quantised: NDArray[Any] = np.clip(np.round(value / info.scale) + info.zero_point, bounds.min, bounds.max)
    return quantised.astype(info.dtype)


def _dequantise(value: NDArray[Any], info: TensorInfo) -> NDArray[np.float32]:
    if info.dtype == np.float32 or info.scale == 0.0:
        return np.asarray(value, dtype=np.float32)
    return ((np.asarray(value, dtype=np.float32) - info.zero_point) * info.scale).astype(np.float32)
