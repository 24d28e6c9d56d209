"""The shape of a package manifest: every field a reader relies on has the type it expects.

A manifest is parsed before its signature is checked (the signature names its key inside it), so it
is hostile input until proven otherwise. :func:`manifest_problem` names the first field whose type or
form is wrong, so that every command refuses it as ``manifest_invalid`` instead of failing later with
a ``TypeError`` somewhere else. The contract's *values* are checked by
:class:`forcecast.edge.contract.ModelContract` (``contract_invalid``), the golden pairs' numbers by the self-test.
Unknown top-level fields are allowed (the signature covers them).
"""

from __future__ import annotations

import re
from typing import Any, Final

MAX_DEPTH: Final = 32
"""Deepest nesting of objects and lists a manifest may have (a real one has 7: golden pairs hold 3-D inputs)."""
MAX_TEXT: Final = 200
"""Longest ``model_version``, ``created_utc`` or ``signed_by`` (they travel in 512-byte device info)."""
MAX_GOLDEN_PAIRS: Final = 64

_SHA256 = re.compile(r"[0-9a-f]{64}")


def nesting_depth(value: Any) -> int:
    """Deepest nesting of dicts and lists in ``value`` (0 for a scalar), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def manifest_problem(manifest: dict[str, Any], model_file: str) -> str | None:
    """The first field of ``manifest`` with the wrong type or form, as ``field: what is wrong``; None if none.

    Parameters
    ----------
    manifest
        A parsed manifest holding every required field.
    model_file
        The member name ``model_file`` must name.
    """
    checks = (
        _text_fields(manifest),
        None
        if manifest["model_file"] == model_file
        else f"model_file: {manifest['model_file']!r} is not {model_file!r}",
        _sha256("model_sha256", manifest["model_sha256"]),
        _count("model_bytes", manifest["model_bytes"]),
        _object("contract", manifest["contract"]),
        _quantisation(manifest["quantisation"]),
        _golden(manifest["golden"]),
        _accuracy(manifest.get("accuracy", {})),
        _object("training", manifest.get("training", {})),
        _edgetpu(manifest["edgetpu"]) if "edgetpu" in manifest else None,
    )
    return next((problem for problem in checks if problem is not None), None)


def _text_fields(manifest: dict[str, Any]) -> str | None:
    for name in ("model_version", "created_utc", "signed_by"):
        value = manifest[name]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT or not value.isprintable():
            return f"{name}: expected printable text of 1..{MAX_TEXT} characters, got {_short(value)}"
    return None


def _sha256(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        return f"{name}: expected 64 lowercase hex digits, got {_short(value)}"
    return None


def _count(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"{name}: expected a whole number ≥ 0, got {_short(value)}"
    return None


def _object(name: str, value: Any) -> str | None:
    return None if isinstance(value, dict) else f"{name}: expected an object, got {type(value).__name__}"


def _quantisation(value: Any) -> str | None:
    if not isinstance(value, dict):
        return _object("quantisation", value)
    if "mode" in value and not isinstance(value["mode"], str):
        return f"quantisation.mode: expected text, got {_short(value['mode'])}"
    ops = value.get("ops", [])
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        return "quantisation.ops: expected a list of operator names"
    edgetpu_ops = value.get("edgetpu_ops", {})
    if not isinstance(edgetpu_ops, dict) or not all(isinstance(ok, bool) for ok in edgetpu_ops.values()):
        return "quantisation.edgetpu_ops: expected an object of operator name -> true/false"
    return _object("quantisation.tensors", value.get("tensors", {}))


def _golden(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_GOLDEN_PAIRS:
        return f"golden: expected a list of at most {MAX_GOLDEN_PAIRS} pairs, got {_short(value)}"
    for index, pair in enumerate(value):
        if not isinstance(pair, dict) or not isinstance(pair.get("inputs"), dict) or "output" not in pair:
            return f"golden[{index}]: expected an object with 'inputs' (an object) and 'output'"
    return None


def _accuracy(value: Any) -> str | None:
    if not isinstance(value, dict):
        return _object("accuracy", value)
    builds = value.get("builds", {})
    if not isinstance(builds, dict):
        return _object("accuracy.builds", builds)
    for build, scores in builds.items():
        axes = scores.get("axes") if isinstance(scores, dict) else None
        if not isinstance(axes, dict):
            return f"accuracy.builds.{build}: expected an object with 'axes'"
        for axis, metrics in axes.items():
            if not isinstance(metrics, dict) or not all(_number(metrics.get(k)) for k in ("r", "nrmse_pct")):
                return f"accuracy.builds.{build}.axes.{axis}: expected numbers 'r' and 'nrmse_pct'"
    return None


def _edgetpu(value: Any) -> str | None:
    if not isinstance(value, dict):
        return _object("edgetpu", value)
    if "bytes" not in value or "sha256" not in value:
        return "edgetpu: expected 'bytes' and 'sha256'"
    return _count("edgetpu.bytes", value["bytes"]) or _sha256("edgetpu.sha256", value["sha256"])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str | int | float | bool) or value is None else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
