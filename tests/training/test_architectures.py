"""The model zoo: every architecture builds with and without static features and converts to full int8."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import get_args

import numpy as np
import pytest

from forcecast.edge.config import ConfigError
from forcecast.training.architectures import REGISTRY, ZOO, ArchitectureSpec, architecture, cnn1d, tcn
from forcecast.training.architectures.transformer import positional_encoding
from forcecast.training.config import Architecture, ModelConfig

TINY = ModelConfig(conv_filters=(4, 8), lstm_units=8, static_units=4, dense_units=16, inception_modules=3)
WINDOW, CHANNELS, STATIC, OUT_LEN = 32, 24, 5, 4
RECURRENT_FLOAT_ISLAND = {"DEQUANTIZE", "SPLIT", "QUANTIZE"}


def test_the_registry_and_the_config_name_the_same_eight_or_more_architectures() -> None:
    assert set(ZOO) == set(get_args(Architecture)) and len(ZOO) >= 8
    assert ZOO[0] == "cnn_lstm"  # ours first, in tables and plots
    for name, spec in REGISTRY.items():
        assert spec.name == name and len(spec.description) > 20 and len(spec.reference) > 10
        assert spec.deployable or spec.not_deployable_reason
    assert architecture("tcn") is REGISTRY["tcn"]


def test_an_unknown_architecture_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown architecture 'wavenet'; choose from cnn_lstm, lstm, gru"):
        architecture("wavenet")


def test_a_spec_gives_a_reason_exactly_when_it_is_not_deployable() -> None:
    with pytest.raises(ValueError, match="exactly when"):
        ArchitectureSpec("cnn1d", "d", "r", cnn1d.backbone, deployable=False)
    with pytest.raises(ValueError, match="exactly when"):
        ArchitectureSpec("cnn1d", "d", "r", cnn1d.backbone, not_deployable_reason="why")


def test_model_config_refuses_bad_architecture_depths_by_name() -> None:
    with pytest.raises(ValueError, match="inception_modules must be 3, 6, 9 or 12, got 4"):
        ModelConfig(inception_modules=4)
    with pytest.raises(ValueError, match="resnet_blocks"):
        ModelConfig(resnet_blocks=0)
    with pytest.raises(ValueError, match="encoder_blocks"):
        ModelConfig(encoder_blocks=5)
    with pytest.raises(ValueError, match=r"divide the transformer width conv_filters\[1\] \(16\), got 3"):
        ModelConfig(architecture="transformer", attention_heads=3)
    assert ModelConfig(architecture="cnn1d", attention_heads=3).attention_heads == 3  # only the transformer cares


@pytest.mark.parametrize("window,kernel", [(16, 3), (32, 5), (128, 5), (128, 3), (256, 7), (4096, 3)])
def test_the_tcn_has_the_fewest_levels_that_see_the_whole_window(window: int, kernel: int) -> None:
    levels = tcn.levels_for(window, kernel)
    assert tcn.receptive_field(kernel, levels) >= window or levels == tcn.MAX_LEVELS
    assert levels == 1 or tcn.receptive_field(kernel, levels - 1) < window


def test_the_positional_encoding_is_the_sinusoid() -> None:
    table = positional_encoding(4, 6)
    assert table.shape == (4, 6) and table.dtype == np.float32
    assert table[0].tolist() == pytest.approx([0, 1, 0, 1, 0, 1])
    assert table[3, 2] == pytest.approx(np.sin(3 / 10000 ** (2 / 6)), rel=1e-5)
    assert table[3, 5] == pytest.approx(np.cos(3 / 10000 ** (4 / 6)), rel=1e-5)


@pytest.mark.tf
@pytest.mark.parametrize("name", ZOO)
def test_every_architecture_builds_with_and_without_static_and_converts_to_full_int8(name: Architecture) -> None:
    pytest.importorskip("tensorflow")
    import keras

    from forcecast.edge.interpreter import TFLiteModel
    from forcecast.training.convert import audit_ops, convert
    from forcecast.training.int8_bench import float_ops
    from forcecast.training.models import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    sizes = {}
    for use_static in (True, False):
        model = build_model(replace(TINY, architecture=name, use_static=use_static), WINDOW, CHANNELS, STATIC, OUT_LEN)
        assert [t.name.split(":")[0] for t in model.inputs] == (["imu", "static"] if use_static else ["imu"])
        assert tuple(model.outputs[0].shape) == (None, OUT_LEN, 3)
        sizes[use_static] = model.count_params()
        samples = [
            {
                "imu": rng.standard_normal((1, WINDOW, CHANNELS)).astype(np.float32),
                **({"static": rng.standard_normal((1, STATIC)).astype(np.float32)} if use_static else {}),
            }
            for _ in range(8)
        ]
        spec = REGISTRY[name]
        if not spec.deployable:
            continue
        flatbuffer = convert(model, "int8", partial(iter, samples))
        assert all(op.isupper() and not op.startswith("Flex") for op in audit_ops(flatbuffer))
        # The converter can leave one float island in an unrolled recurrent cell at some sizes (a gate SPLIT
        # between DEQUANTIZE and QUANTIZE, depending on the weights; none seen at the default sizes);
        # compare reports float_ops per model.
        allowed = RECURRENT_FLOAT_ISLAND if name in ("cnn_lstm", "lstm", "gru") else set()
        assert set(float_ops(flatbuffer)) <= allowed, "a full-int8 model computes nothing else in float"
        tflite = TFLiteModel(flatbuffer)
        assert {n: np.dtype(i.dtype).name for n, i in tflite.inputs.items()} == {n: "int8" for n in samples[0]}
        output = next(iter(tflite(**samples[0]).values()))
        assert output.shape == (1, OUT_LEN, 3) and np.isfinite(output).all()
        keras.backend.clear_session()
    assert sizes[True] > sizes[False]  # the static branch adds weights
