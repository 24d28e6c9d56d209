"""The device-info characteristic: who the device is and which model it runs, in one 512-byte attribute.

It is readable by any bonded host, so it carries no personal data: no patient id, body mass, height,
knee alignment or feedback limit (those stay on the device and in the records the host already logs).
Its JSON must fit one ATT attribute value (512 bytes, Core spec Vol 3 Part F 3.2.9): text fields are cut
to :data:`TEXT_CHARS` printable ASCII characters, the model hash to its first 16 hex digits, and if the
whole still does not fit, :data:`DROPPABLE` fields go first, in that order, named under ``"omitted"``.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from typing import Any

from forcecast.edge.contract import ModelContract
from forcecast.edge.package import ModelPackage
from forcecast.edge.protocol import VERSION as PROTOCOL_VERSION
from forcecast.edge.runtime.config import DeviceConfig

INFO_MAX_BYTES = 512
"""The largest attribute value ATT allows; a long read of device info never needs more."""
TEXT_CHARS = 32
"""Longest text (device id, versions) carried; longer text is cut and ends in ``~``."""
DROPPABLE = ("contract", "model_sha256", "quantisation", "firmware", "rate_hz", "legs")
"""Descriptive fields left out, in this order, when the JSON would exceed :data:`INFO_MAX_BYTES`."""
UNCUT = frozenset({"package_sha256"})
"""Top-level text never cut (the host compares it whole); every other text is cut to :data:`TEXT_CHARS`."""
PERSONAL_KEYS = frozenset({"patient_id", "body_mass_kg", "height_m", "hka_deg", "affected_side", "peak_limit_bw"})
"""Keys that must never appear in device info."""


def device_info(
    config: DeviceConfig, package: ModelPackage, contract: ModelContract, package_sha256: str | None = None
) -> dict[str, Any]:
    """The device-info JSON (as a dict) for the model the device runs, within the 512-byte budget.

    Parameters
    ----------
    config
        The device configuration (device id, legs).
    package, contract
        The running model package and its contract.
    package_sha256
        The package file's SHA-256 (read from ``package.path`` when not given).
    """
    if package_sha256 is None:
        package_sha256 = hashlib.sha256(package.path.read_bytes()).hexdigest() if package.path.exists() else ""
    manifest = package.manifest
    info = {
        "device_id": short_text(config.device_id),
        "firmware": short_text(version("forcecast")),
        "protocol": PROTOCOL_VERSION,
        "model_version": short_text(manifest["model_version"]),
        "model_sha256": str(manifest.get("model_sha256", ""))[:16],
        "package_sha256": package_sha256,
        "quantisation": short_text(manifest["quantisation"].get("mode"), 16),
        "rate_hz": contract.rate_hz,
        "legs": list(config.runtime.legs),
        "contract": {"places": list(contract.leg_places), "window": contract.window, "hop": contract.out_len},
    }
    return fit_info(info)


def short_text(value: object, limit: int = TEXT_CHARS) -> str | None:
    """``value`` as printable ASCII of at most ``limit`` characters (None stays None)."""
    if value is None:
        return None
    text = "".join(c if " " <= c <= "~" else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "~"


def encode_info(info: dict[str, Any]) -> bytes:
    """The bytes a host reads (the encoding of :meth:`forcecast.edge.link.DeviceLink.device_info`)."""
    return json.dumps(info, separators=(",", ":")).encode()


def fit_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without personal keys, its text cut to :data:`TEXT_CHARS`, shortened to fit :data:`INFO_MAX_BYTES`.

    Raises
    ------
    ValueError
        If even without every droppable field it does not fit (a new field that is too big: a bug).
    """
    fitted = {
        k: short_text(v) if isinstance(v, str) and k not in UNCUT else v
        for k, v in info.items()
        if k not in PERSONAL_KEYS
    }
    omitted: list[str] = []
    for name in DROPPABLE:
        if len(encode_info(fitted)) <= INFO_MAX_BYTES:
            break
        if name in fitted:
            del fitted[name]
            omitted.append(name)
            fitted["omitted"] = omitted
    size = len(encode_info(fitted))
    if size > INFO_MAX_BYTES:
        raise ValueError(f"device info is {size} bytes even without {', '.join(DROPPABLE)}; at most {INFO_MAX_BYTES}")
    return fitted
