"""Keras → TFLite builds run on the device runtime and agree with Keras (needs TensorFlow)."""

import numpy as np
import pytest

from forcecast.edge.interpreter import RuntimeMissingError, TFLiteModel, runtime_module

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from forcecast.training.config import ModelConfig
    from forcecast.training.models import build_model

    keras.utils.set_random_seed(0)
    config = ModelConfig(conv_filters=(4, 8), lstm_units=8, static_units=4, dense_units=16, dropout=0.0)
    return build_model(config, window=32, n_channels=12, n_static=6, out_len=4)


def representative():
    rng = np.random.default_rng(1)
    for _ in range(30):
        yield {
            "imu": rng.normal(size=(1, 32, 12)).astype(np.float32),
            "static": rng.normal(size=(1, 6)).astype(np.float32),
        }


@pytest.mark.parametrize(
    ("mode", "tolerance"), [("float32", 1e-5), ("float16", 5e-3), ("dynamic", 5e-2), ("int8", 0.1)]
)
def test_builds_match_keras(tiny_model, mode, tolerance):
    from forcecast.training.convert import convert, op_names

    flatbuffer = convert(tiny_model, mode, representative)
    ops = op_names(flatbuffer)
    assert "WHILE" not in ops and not any(op.startswith("Flex") for op in ops)
    model = TFLiteModel(flatbuffer)
    assert set(model.inputs) == {"imu", "static"}
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=(1, 32, 12)).astype(np.float32)
        s = rng.normal(size=(1, 6)).astype(np.float32)
        expected = np.asarray(tiny_model([x, s], training=False))
        (got,) = model(imu=x, static=s).values()
        assert got.shape == (1, 4, 3)
        assert np.max(np.abs(got - expected)) <= tolerance * max(1.0, float(np.max(np.abs(expected))))
    if mode == "int8":
        assert all(np.dtype(i.dtype) == np.int8 for i in model.inputs.values())


def test_wrong_input_shape_is_named(tiny_model):
    from forcecast.training.convert import convert

    model = TFLiteModel(convert(tiny_model, "float32"))
    with pytest.raises(ValueError, match="input 'imu' has shape"):
        model(imu=np.zeros((1, 16, 12)), static=np.zeros((1, 6)))
    with pytest.raises(ValueError, match="missing model input"):
        model(imu=np.zeros((1, 32, 12)))


def test_missing_runtime_and_missing_edgetpu_are_clear(tiny_model):
    from forcecast.training.convert import convert

    with pytest.raises(RuntimeMissingError, match="no TFLite runtime found"):
        runtime_module("no_such_runtime.interpreter")
    with pytest.raises(RuntimeMissingError, match="libedgetpu"):
        TFLiteModel(convert(tiny_model, "float32"), edgetpu=True)
