"""The model zoo: one module per architecture family and a registry of what each is and where it comes from.

Every architecture is a *backbone* that turns the IMU window ``(batch, window, channels)`` into one feature
vector per window; :func:`forcecast.training.models.build_model` adds the static-feature branch and the
output head around it, the same for all. Each entry of :data:`REGISTRY` says what the backbone is, the
literature it follows, and whether it converts to a full-int8 TFLite model with builtin ops only (the only
kind the device runs); a backbone that cannot is kept in the zoo for accuracy but marked not deployable,
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from forcecast.edge.config import ConfigError
from forcecast.training.architectures import cnn1d, cnn_lstm, inception, recurrent, resnet1d, tcn, transformer
from forcecast.training.config import Architecture, ModelConfig

Backbone = Callable[[Any, ModelConfig, int, int], Any]
"""``backbone(imu, config, window, n_channels)``: the Keras tensor of features, shape ``(batch, features)``."""


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture of the zoo.

    Attributes
    ----------
    name
        The ``[model] architecture`` value.
    description
        What the backbone does, in one line.
    reference
        The publication it follows (and how ours differs, where it does).
    backbone
        The builder (see :data:`Backbone`).
    deployable
        Whether it converts to full-int8 TFLite with builtin ops only.
    not_deployable_reason
        Why not, when it is not (empty otherwise).
    """

    name: Architecture
    description: str
    reference: str
    backbone: Backbone
    deployable: bool = True
    not_deployable_reason: str = ""

    def __post_init__(self) -> None:
        if self.deployable == bool(self.not_deployable_reason):
            raise ValueError(f"{self.name}: a reason is given exactly when an architecture is not deployable")


_SPECS = (
    ArchitectureSpec(
        "cnn_lstm",
        "2D convolutions across each sensor's x/y/z axes, then across all channels, max-pooling in time, "
        "an LSTM over the pooled sequence (unrolled)",
        "Sugiarto et al. 2025, BioMed Eng OnLine 24:78 (best of ten for 3D GRF in walking)",
        cnn_lstm.backbone,
    ),
    ArchitectureSpec(
        "lstm",
        "one LSTM layer over the raw window (unrolled), its last state",
        "Hochreiter & Schmidhuber 1997; LSTM baseline of Sugiarto et al. 2025",
        recurrent.lstm_backbone,
    ),
    ArchitectureSpec(
        "gru",
        "one GRU layer over the raw window (unrolled), its last state",
        "Cho et al. 2014, EMNLP (gated recurrent unit)",
        recurrent.gru_backbone,
    ),
    ArchitectureSpec(
        "cnn1d",
        "three 1D convolutions over time (channels as features), each followed by max-pooling, flattened",
        "1D-CNN baseline of Sugiarto et al. 2025",
        cnn1d.backbone,
    ),
    ArchitectureSpec(
        "tcn",
        "temporal convolutional network: residual blocks of two dilated causal convolutions, dilation "
        "doubling per level until the receptive field covers the window; the newest time step read out",
        "Bai, Kolter & Koltun 2018, arXiv:1803.01271 (weight normalisation left out)",
        tcn.backbone,
    ),
    ArchitectureSpec(
        "resnet1d",
        "residual blocks of three convolutions (long, medium, short kernels) with batch normalisation and "
        "shortcuts, max-pooling in time between blocks, flattened",
        "Wang, Yan & Oates 2017, IJCNN (time-series ResNet); pooled and flattened instead of global average "
        "pooling, so the readout knows where in the window the output block lies",
        resnet1d.backbone,
    ),
    ArchitectureSpec(
        "inception",
        "InceptionTime modules (bottleneck, three parallel kernel sizes and a max-pool branch, concatenated) "
        "with a shortcut around every three, max-pooling in time between groups, flattened",
        "Ismail Fawaz et al. 2020, Data Min Knowl Disc 34:1936 (InceptionTime); pooled and flattened instead "
        "of global average pooling, as for resnet1d",
        inception.backbone,
    ),
    ArchitectureSpec(
        "transformer",
        "patch embedding (strided convolution), sinusoidal positional encoding, encoder blocks of multi-head "
        "self-attention and a feed-forward layer with batch normalisation, flattened tokens",
        "Vaswani et al. 2017, NeurIPS (encoder); batch instead of layer normalisation as in Zerveas et al. "
        "2021, KDD (also keeps every op int8: TFLite's layer normalisation leaves a float op)",
        transformer.backbone,
    ),
)

REGISTRY: dict[str, ArchitectureSpec] = {spec.name: spec for spec in _SPECS}
ZOO: tuple[Architecture, ...] = tuple(spec.name for spec in _SPECS)
"""Every architecture, in the order tables and plots list them."""

if set(ZOO) != set(get_args(Architecture)):  # the config's Literal and the registry name the same zoo
    raise ImportError(
        f"the registry {sorted(ZOO)} and the Architecture literal {sorted(get_args(Architecture))} differ"
    )


def architecture(name: str) -> ArchitectureSpec:
    """The registry entry of ``name``.

    Raises
    ------
    ConfigError
        If ``name`` is not in the zoo, naming the choices.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; choose from {', '.join(ZOO)}") from None


__all__ = ["REGISTRY", "ZOO", "ArchitectureSpec", "Backbone", "architecture"]
