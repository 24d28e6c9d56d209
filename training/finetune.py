"""Fine-tuning: start a run from a trained run's weights (``forcecast train --init-from RUN``).

The new run takes the source run's ``model.keras`` weights and its normalisation (the weights were
learned on inputs scaled by it), freezes the layers whose names match ``[fit] freeze`` patterns, and
trains on its own data as usual. It is refused, with a message naming what differs, when the source
model's inputs (contract fields such as rate, sensors, window, static features) or its architecture
(layer by layer, weight shapes) do not match what this run would build.

Provenance goes to ``metrics.json`` (``init_from``) and to the contract's ``notes`` (so it travels
into the model package).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forcecast.edge.config import ConfigError, to_dict
from forcecast.edge.contract import ContractError, ModelContract
from forcecast.training.config import FitConfig, ModelConfig, load_train_config

MODEL_FILE = "model.keras"
CONTRACT_FILE = "contract.json"
# Contract fields that carry fitted numbers or free text rather than what the model expects.
NOT_COMPARED = ("inputs", "static", "targets", "notes", "channels", "static_units")
# [model] keys that change weight shapes (the rest, e.g. dropout, may differ when fine-tuning).
SHAPE_KEYS = (
    "architecture",
    "use_static",
    "conv_filters",
    "kernel_size",
    "time_pools",
    "lstm_units",
    "static_units",
    "dense_units",
    "resnet_blocks",
    "inception_modules",
    "encoder_blocks",
    "attention_heads",
)


class InitError(ConfigError):
    """The run to start from is missing, unreadable or does not match this run; names what and where."""

    reason = "init_invalid"


@dataclass
class FineTune:
    """A loaded source run, ready to initialise a freshly built model.

    Attributes
    ----------
    run
        The source run folder.
    source_model
        Its Keras model.
    source_contract
        Its contract.
    contract
        This run's contract with the source normalisation adopted and provenance in ``notes``.
    patterns
        Layer-name patterns to freeze.
    model_sha256
        SHA-256 of the source ``model.keras``.
    frozen
        Names of the layers frozen by :meth:`apply` (filled when it runs).
    """

    run: Path
    source_model: Any
    source_contract: ModelContract
    contract: ModelContract
    patterns: tuple[str, ...]
    model_sha256: str
    source_model_config: ModelConfig | None
    source_fingerprint: str | None
    frozen: list[str] = field(default_factory=list)

    def apply(self, model: Any, model_config: ModelConfig | None = None) -> list[str]:
        """Copy the source weights into ``model`` and freeze the matching layers (before compiling).

        Parameters
        ----------
        model
            The model this run built, uncompiled.
        model_config
            This run's ``[model]`` table, used only to explain a mismatch.

        Returns
        -------
        list of str
            Names of the frozen layers.

        Raises
        ------
        InitError
            If the architectures differ (naming the layer, the shapes and the ``[model]`` keys that
            differ) or a freeze pattern matches no layer.
        """
        check_architecture(self.source_model, model, self.run, self.source_model_config, model_config)
        for source_layer, layer in zip(weighted_layers(self.source_model), weighted_layers(model), strict=True):
            layer.set_weights(source_layer.get_weights())
        self.frozen = freeze_layers(model, self.patterns)
        self.contract = replace(
            self.contract,
            notes={**self.contract.notes, "frozen_layers": ", ".join(self.frozen) or "none"},
        )
        return self.frozen

    def provenance(self) -> dict[str, Any]:
        """What ``metrics.json`` records under ``init_from``."""
        return {
            "run": str(self.run.resolve()),
            "model_sha256": self.model_sha256,
            "data_fingerprint_sha256": self.source_fingerprint,
            "normalisation": "source run's",
            "freeze": list(self.patterns),
            "frozen_layers": list(self.frozen),
        }


def start_from(fit: FitConfig, contract: ModelContract) -> FineTune | None:
    """Load ``fit.init_from`` (if set) and check it against this run's contract.

    Parameters
    ----------
    fit
        This run's ``[fit]`` table (``init_from``, ``freeze``).
    contract
        The contract this run fitted on its training data.

    Returns
    -------
    FineTune or None
        ``None`` when ``init_from`` is empty.

    Raises
    ------
    InitError
        If the run folder, its model or contract is missing or unreadable, or the contract differs in
        a field that defines the model's inputs or outputs.
    """
    if not fit.init_from:
        return None
    run = Path(fit.init_from)
    model_path, contract_path = run / MODEL_FILE, run / CONTRACT_FILE
    for path in (model_path, contract_path):
        if not path.is_file():
            raise InitError(f"[fit] init_from = {fit.init_from!r}: {path} not found (expected a 'forcecast train' run)")
    try:
        source_contract = ModelContract.load(contract_path)
    except ContractError as exc:
        raise InitError(f"[fit] init_from: {exc}") from None
    differences = contract_differences(source_contract, contract)
    if differences:
        raise InitError(
            f"[fit] init_from = {fit.init_from!r}: the source model expects other inputs or outputs: "
            + "; ".join(differences)
        )
    import keras

    try:
        source_model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file.
        raise InitError(f"[fit] init_from: {model_path} could not be loaded: {exc}") from None
    source_config, source_fingerprint = _source_details(run)
    adopted = replace(
        contract,
        inputs=source_contract.inputs,
        static=source_contract.static,
        targets=source_contract.targets,
        notes={**contract.notes, "init_from": f"{run.resolve()} (model.keras SHA-256 {_sha256(model_path)[:16]}...)"},
    )
    return FineTune(
        run=run,
        source_model=source_model,
        source_contract=source_contract,
        contract=adopted,
        patterns=tuple(fit.freeze),
        model_sha256=_sha256(model_path),
        source_model_config=source_config,
        source_fingerprint=source_fingerprint,
    )


def contract_differences(source: ModelContract, mine: ModelContract) -> list[str]:
    """``field: source value vs this run's value`` for every input/output-defining contract field that differs."""
    a, b = source.to_dict(), mine.to_dict()
    out = []
    for key in sorted(set(a) | set(b)):
        if key in NOT_COMPARED:
            continue
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)!r} in the source run, {b.get(key)!r} here")
    return out


def weighted_layers(model: Any) -> list[Any]:
    """The layers of ``model`` that hold weights, in build order."""
    return [layer for layer in model.layers if layer.weights]


def check_architecture(
    source: Any,
    model: Any,
    run: Path,
    source_config: ModelConfig | None = None,
    model_config: ModelConfig | None = None,
) -> None:
    """Raise :class:`InitError` unless ``model`` has the same weighted layers and weight shapes as ``source``."""
    hint = ""
    if source_config is not None and model_config is not None:
        a, b = to_dict(source_config), to_dict(model_config)
        keys = [f"[model] {k}: {a[k]!r} in the source run, {b[k]!r} here" for k in SHAPE_KEYS if a[k] != b[k]]
        hint = f" ({'; '.join(keys)})" if keys else ""
    where = f"[fit] init_from = {str(run)!r}"
    if source.name != model.name:
        raise InitError(f"{where}: the source model is {source.name!r}, this run builds {model.name!r}{hint}")
    mine, theirs = weighted_layers(model), weighted_layers(source)
    if len(mine) != len(theirs):
        raise InitError(
            f"{where}: the source model has {len(theirs)} layers with weights, this run's has {len(mine)}{hint}"
        )
    for i, (s, m) in enumerate(zip(theirs, mine, strict=True)):
        s_shapes = [tuple(w.shape) for w in s.weights]
        m_shapes = [tuple(w.shape) for w in m.weights]
        if s_shapes != m_shapes:
            raise InitError(
                f"{where}: layer {i} ({s.name!r} in the source, {m.name!r} here) has weight shapes "
                f"{s_shapes} in the source and {m_shapes} here{hint}"
            )


def freeze_layers(model: Any, patterns: tuple[str, ...]) -> list[str]:
    """Set ``trainable = False`` on every layer whose name matches a pattern; returns their names.

    Raises
    ------
    InitError
        If a pattern matches no layer (naming the layers there are).
    """
    frozen: list[str] = []
    for pattern in patterns:
        matched = [layer for layer in model.layers if fnmatch.fnmatchcase(layer.name, pattern)]
        if not matched:
            names = ", ".join(layer.name for layer in weighted_layers(model))
            raise InitError(f"[fit] freeze: pattern {pattern!r} matches no layer (layers with weights: {names})")
        for layer in matched:
            layer.trainable = False
            if layer.name not in frozen:
                frozen.append(layer.name)
    return frozen


def _source_details(run: Path) -> tuple[ModelConfig | None, str | None]:
    """The source run's ``[model]`` table and data fingerprint, when its files are there and readable."""
    model_config = None
    fingerprint = None
    if (run / "config.toml").is_file():
        try:
            model_config = load_train_config(run / "config.toml").model
        except ConfigError:
            model_config = None  # written by another version: the weight shapes still decide
    if (run / "metrics.json").is_file():
        try:
            fingerprint = json.loads((run / "metrics.json").read_text()).get("data_fingerprint_sha256")
        except (json.JSONDecodeError, AttributeError):
            fingerprint = None
    return model_config, fingerprint


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
