"""Continuous GRF output: overlapping windows blended, each sample once and in order, no block-edge jumps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forcecast.edge.config import ConfigError, from_dict
from forcecast.edge.contract import ContractError, ModelContract, Normalisation
from forcecast.edge.interpreter import TensorInfo
from forcecast.edge.runtime import bench
from forcecast.edge.runtime.config import DeviceConfig, RuntimeConfig
from forcecast.edge.runtime.inference import (
    LegPredictor,
    Streaming,
    blend_windows,
    default_streaming,
    device_window_ends,
    latency_bound_s,
    slot_weights,
)
from forcecast.edge.schema import all_imu_columns

DATA = Path(__file__).parents[1] / "data"
PUBKEY = DATA / "forcecast-test.pub"
RATE = 100.0
COLUMNS = all_imu_columns(("r_shank",))
SLOT_BIAS = 0.1
"""The toy model's error per output slot (BW): its outputs drift over the window's output block, as real ones do."""


def toy_contract(window: int = 16, out_len: int = 4, delay: int = 2) -> ModelContract:
    return ModelContract(
        rate_hz=RATE,
        leg_places=("ipsi_shank",),
        window=window,
        out_len=out_len,
        delay=delay,
        static_features=(),
        inputs=Normalisation((0.0,) * 6, (1.0,) * 6),
        static=None,
        targets=Normalisation((0.0,) * 3, (1.0,) * 3),
    )


class ToyModel:
    """Predicts, for output slot ``j``, the first channel ``delay + out_len - 1 - j`` samples before the
    newest input (exactly the sample the slot stands for) plus a slot bias: a perfect model but for a
    systematic error that changes across its output block."""

    def __init__(self, contract: ModelContract) -> None:
        self.contract = contract
        self.inputs = {"imu": TensorInfo("imu", (1, contract.window, 6), np.float32, 0.0, 0)}
        self.calls = 0

    def encode(self, name: str, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def run_encoded(self, imu: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        k, d = self.contract.out_len, self.contract.delay
        x = imu[0, :, 0]
        slots = np.arange(k)
        own = x[x.size - 1 - d - (k - 1 - slots)]
        bias = SLOT_BIAS * (slots - (k - 1) / 2)
        y = np.column_stack([own + bias, 0.5 * own, -own])
        return {"grf": y[None]}


def toy_predictor(contract: ModelContract, streaming: Streaming) -> LegPredictor:
    return LegPredictor(ToyModel(contract), contract, COLUMNS, "r", None, streaming)


def ramp_stream(n: int, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A slow deterministic signal on every channel (a ramp with a gentle wave)."""
    t = t0 + np.arange(n) / RATE
    signal = 0.2 * t + 0.05 * np.sin(2 * np.pi * 0.7 * t)
    return t, np.repeat(signal[:, None], len(COLUMNS), axis=1)


def stream_through(
    predictor: LegPredictor, t: np.ndarray, x: np.ndarray, cuts: list[int]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Push the stream in chunks cut at ``cuts``; return all outputs and how many came out per chunk."""
    times, values, counts = [], [], []
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        out_t, out_y = predictor.push(t[a:b], x[a:b])
        times.append(out_t)
        values.append(out_y)
        counts.append(out_t.size)
    tail_t, tail_y = predictor.flush()
    return np.concatenate([*times, tail_t]), np.vstack([*values, tail_y]), counts


def test_the_block_scheme_jumps_at_block_edges_and_the_stream_does_not():
    contract = toy_contract()
    t, x = ramp_stream(600)
    runs = {}
    for name, streaming in (("blocks", Streaming.blocks(contract)), ("stream", default_streaming(contract))):
        predictor = LegPredictor(ToyModel(contract), contract, COLUMNS, "r", None, streaming)
        out_t, out_y, _ = stream_through(predictor, t, x, list(range(2, 600, 2)))  # the device's 20 ms chunks
        runs[name] = (out_t, out_y)
    starts = runs["blocks"][0][:: contract.out_len]
    blocks = bench.edge_jump(*runs["blocks"], starts, 1 / RATE)
    k = contract.out_len  # after the first window's block (a segment's start gives all its outputs at once)
    streamed = bench.edge_jump(runs["stream"][0][k:], runs["stream"][1][k:], starts, 1 / RATE)
    # blocks: the slot bias steps +0.1 BW inside a block and -0.3 BW at its edge (ramp steps are ~0.002 BW)
    assert blocks["v"]["edge"] > 0.25 and blocks["v"]["ratio"] > 2.5
    assert streamed["v"]["ratio"] == pytest.approx(1.0, abs=0.1)
    assert streamed["v"]["edge"] < 0.01 and streamed["pairs"]["edge"] > 100


def test_blending_with_lag_averages_overlapping_windows_with_tapered_weights():
    contract = toy_contract()
    t, x = ramp_stream(200)
    streaming = Streaming.for_model(contract, hop=1, lag=2)
    out_t, out_y, _ = stream_through(
        LegPredictor(ToyModel(contract), contract, COLUMNS, "r", None, streaming), t, x, []
    )
    weights = slot_weights(4)[1:]  # slots 1..3 reach each steady-state sample
    bias = SLOT_BIAS * (np.arange(1, 4) - 1.5)
    expected_bias = float(weights @ bias / weights.sum())
    truth = x[np.round(out_t * RATE).astype(int), 0]
    steady = (out_t > out_t[0] + 0.1) & (out_t < out_t[-1] - 0.1)  # not the first block nor the flushed tail
    np.testing.assert_allclose(out_y[steady, 0] - truth[steady], expected_bias, atol=1e-6)  # float32 inputs
    tail = out_y[-2:, 0] - truth[-2:]  # at the end, samples that waited in vain keep the windows that came
    np.testing.assert_allclose(
        tail, [SLOT_BIAS * (0.5 * weights[1] + 1.5 * weights[2]) / weights[1:].sum(), 0.15], atol=1e-6
    )
    assert Streaming.for_model(contract, 1, 2).latency_samples(contract) == contract.delay + 2


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=259), max_size=40),
    scheme=st.sampled_from([(1, 0), (1, 1), (2, 1), (1, 3), (4, 3), (3, 3)]),
    gap_at=st.one_of(st.none(), st.integers(min_value=30, max_value=230)),
)
def test_each_sample_is_emitted_once_in_order_whatever_the_chunks(cuts, scheme, gap_at):
    contract = toy_contract()
    streaming = Streaming.for_model(contract, *scheme)
    t, x = ramp_stream(260)
    if gap_at is not None:
        t[gap_at:] += 0.5  # a dropout: the segment ends, the buffer fills again
    whole_t, whole_y, _ = stream_through(
        LegPredictor(ToyModel(contract), contract, COLUMNS, "r", None, streaming), t, x, []
    )
    cut_t, cut_y, _ = stream_through(
        LegPredictor(ToyModel(contract), contract, COLUMNS, "r", None, streaming), t, x, sorted(set(cuts))
    )
    assert np.all(np.diff(cut_t) > 0)  # in order, none twice
    np.testing.assert_array_equal(cut_t, whole_t)  # the chunking changes nothing
    np.testing.assert_allclose(cut_y, whole_y, rtol=0, atol=1e-12)
    # every sample some window predicted is emitted: the same set the offline blend gives
    finite = np.ones(t.size, dtype=bool)
    segments = np.split(np.arange(t.size), [gap_at] if gap_at is not None else [])
    valid = np.concatenate([s[contract.window - 1 :] + 1 for s in segments if s.size >= contract.window])
    ends = device_window_ends(valid.astype(np.int64), streaming.hop)
    fed = x.astype(np.float32)  # as the predictor's buffer holds the inputs
    windows = np.stack([ToyModel(contract).run_encoded(fed[None, e - contract.window : e])["grf"][0] for e in ends])
    offline = blend_windows(ends, windows, contract, streaming)
    known = np.flatnonzero(np.isfinite(offline[:, 0]) & finite[: offline.shape[0]])
    np.testing.assert_array_equal(cut_t, t[known])
    np.testing.assert_allclose(cut_y, offline[known], rtol=0, atol=1e-12)


def test_the_block_scheme_is_the_old_one_block_for_block():
    contract = toy_contract()
    t, x = ramp_stream(120)
    model = ToyModel(contract)
    out_t, out_y, counts = stream_through(
        LegPredictor(model, contract, COLUMNS, "r", None, Streaming.blocks(contract)), t, x, list(range(1, 120))
    )
    w, k, d = contract.window, contract.out_len, contract.delay
    ends = np.arange(w, 121, k)
    assert model.calls == ends.size and set(counts) == {0, k}  # one inference per out_len samples, a block each
    fed = x.astype(np.float32)
    expected = np.vstack([ToyModel(contract).run_encoded(fed[None, e - w : e])["grf"][0] for e in ends])
    np.testing.assert_array_equal(out_t, np.concatenate([t[e - d - k : e - d] for e in ends]))
    np.testing.assert_allclose(out_y, expected, rtol=0, atol=1e-12)


def test_hop_one_runs_the_model_every_sample_and_emits_each_sample_at_the_delay():
    contract = toy_contract()
    t, x = ramp_stream(100)
    model = ToyModel(contract)
    predictor = LegPredictor(model, contract, COLUMNS, "r", None, default_streaming(contract))
    ages = []
    for i in range(t.size):  # one sample per chunk: the age of each output when it comes out
        out_t, _ = predictor.push(t[i : i + 1], x[i : i + 1])
        ages.extend(np.round((t[i] - out_t) * RATE).astype(int))
    assert model.calls == t.size - contract.window + 1
    # the first window gives its whole block; afterwards every sample is exactly `delay` samples old
    k, d = contract.out_len, contract.delay
    assert ages[:k] == list(range(d + k - 1, d - 1, -1)) and set(ages[k:]) == {d}


def test_default_latency_bound_meets_30_ms_with_the_device_polls():
    """Computed, not timed: the shipped test packages at the default settings and the device's polls."""
    from forcecast.edge.keys import load_public_key
    from forcecast.edge.package import open_package

    for name in ("grf_int8.fcpkg", "grf_float32.fcpkg"):
        _, contract = open_package(DATA / name, [load_public_key(PUBKEY)])
        streaming = default_streaming(contract)
        bound = latency_bound_s(contract, streaming, bench.DEVICE_CHUNK_S)
        assert bound <= 0.030 + 1e-9, (name, bound)
        per_poll = round(bench.DEVICE_CHUNK_S * contract.rate_hz)
        assert bound == pytest.approx((contract.delay + per_poll - 1) / contract.rate_hz)
        blocks = latency_bound_s(contract, Streaming.blocks(contract), bench.DEVICE_CHUNK_S)
        assert blocks == pytest.approx((contract.delay + contract.out_len - 1 + per_poll - 1) / contract.rate_hz)
        assert blocks - bound == pytest.approx((contract.out_len - 1) / contract.rate_hz)


@pytest.mark.parametrize(("scheme", "chunk"), [((1, 0), 2), ((1, 0), 3), ((1, 2), 2), ((2, 1), 1), ((4, 3), 2)])
def test_the_latency_bound_is_the_oldest_age_at_emission(scheme, chunk):
    contract = toy_contract()
    streaming = Streaming.for_model(contract, *scheme)
    predictor = toy_predictor(contract, streaming)
    t, x = ramp_stream(300)
    ages = []
    for a in range(0, t.size, chunk):
        out_t, _ = predictor.push(t[a : a + chunk], x[a : a + chunk])
        ages.extend(np.round((t[min(a + chunk, t.size) - 1] - out_t) * RATE).astype(int))
    steady = ages[contract.out_len :]  # after the first window's block
    bound = streaming.latency_samples(contract, chunk)
    assert max(steady) <= bound
    if streaming.hop == 1 or chunk == 1:  # reached; a longer hop may always end on a chunk's newest sample
        assert max(steady) == bound


def test_streaming_settings_are_checked():
    contract = toy_contract()
    with pytest.raises(ValueError, match="stream_hop: 3 samples"):
        RuntimeConfig(stream_hop=3, stream_lag=1)
    with pytest.raises(ConfigError, match="stream_lag"):
        from_dict(DeviceConfig, {"runtime": {"stream_lag": -1}}, "device.toml: ")
    with pytest.raises(ContractError, match=r"runtime.stream_hop = 8 .* out_len = 4 .* must be 1..4"):
        Streaming.for_model(contract, hop=8, lag=20)  # lag is capped at out_len - 1: a hop of 8 skips samples
    assert Streaming.for_model(contract, hop=2, lag=20) == Streaming(2, 3)
    assert Streaming.blocks(contract) == Streaming(4, 3)
    assert slot_weights(1).tolist() == [1.0] and np.all(slot_weights(5) > 0)
    assert slot_weights(4)[0] < slot_weights(4)[1] and slot_weights(4)[3] < slot_weights(4)[2]


@pytest.fixture(scope="module")
def short_walk() -> bench.Walk:
    return bench.record_walk(20.0)


@pytest.mark.parametrize("name", ["grf_int8.fcpkg", "grf_float32.fcpkg"])
def test_old_packages_stream_as_accurately_as_blocks_on_a_synthetic_walk(name, short_walk):
    loaded = bench.load_benched(DATA / name, [PUBKEY], short_walk.columns)
    runs: dict[str, bench.GrfRuns] = {"stream": {}, "blocks": {}}
    blocks = Streaming.blocks(loaded.contract)
    settings_ = {"stream": RuntimeConfig(), "blocks": RuntimeConfig(stream_hop=blocks.hop, stream_lag=blocks.lag)}
    for scheme, grf in runs.items():
        pipeline = bench._pipeline(loaded.model, loaded.contract, short_walk, None, settings_[scheme], grf)
        for chunk in short_walk.chunks(bench.DEVICE_CHUNK_S):
            pipeline.push(chunk.time_s, chunk.values)
        report = pipeline.finish()
        assert report.steps["r"] > 10
    streamed, offline = (bench._series(runs[s]["r"]) for s in ("stream", "blocks"))
    assert np.all(np.diff(streamed[0]) > 0) and np.all(np.isfinite(streamed[1]))
    scores = bench.accuracy(short_walk, streamed, offline)
    assert scores["samples"] > 1500
    for axis in ("v", "ap", "ml"):
        assert scores["streamed"][axis]["r"] > 0.9, (axis, scores)
        assert abs(scores["difference"][axis]["r"]) < 0.005, (axis, scores)
        assert abs(scores["difference"][axis]["rmse_bw"]) < 0.005, (axis, scores)


def test_the_whole_pipeline_gives_each_sample_once_whatever_the_chunks(short_walk):
    loaded = bench.load_benched(DATA / "grf_int8.fcpkg", [PUBKEY], short_walk.columns)
    outputs = []
    for chunk_s in (0.01, 0.37, 1.0):
        grf: bench.GrfRuns = {}
        # no start-up calibration: it takes whole chunks, so its estimate (hence every input) depends on them
        pipeline = bench._pipeline(loaded.model, loaded.contract, short_walk, None, RuntimeConfig(calibration_s=0), grf)
        for chunk in short_walk.chunks(chunk_s):
            pipeline.push(chunk.time_s, chunk.values)
        pipeline.finish()
        outputs.append(bench._series(grf["r"]))
    for t, y in outputs:
        assert np.all(np.diff(t) > 0) and np.allclose(np.diff(t), 0.01)  # each sample once, in order, no holes
        np.testing.assert_array_equal(t, outputs[0][0])
        np.testing.assert_allclose(y, outputs[0][1], rtol=0, atol=1e-9)


def test_a_model_whose_outputs_the_hop_would_skip_cannot_take_over_while_running():
    from forcecast.edge.runtime.pipeline import Pipeline

    contract = toy_contract(out_len=4)
    config = DeviceConfig(runtime=RuntimeConfig(stream_hop=4, stream_lag=3, calibration_s=0))
    pipeline = Pipeline(ToyModel(contract), contract, config, COLUMNS, RATE, 160.0, 35.0)
    assert pipeline.can_switch_to(toy_contract(out_len=4))
    shorter = toy_contract(out_len=2)
    assert not pipeline.can_switch_to(shorter)
    with pytest.raises(ContractError, match=r"runtime\.stream_hop"):
        pipeline.switch_model(ToyModel(shorter), shorter, "2.0")
    with pytest.raises(ContractError, match=r"must be 1\.\.2"):  # nor start with the runtime
        Pipeline(ToyModel(shorter), shorter, config, COLUMNS, RATE, 160.0, 35.0)
