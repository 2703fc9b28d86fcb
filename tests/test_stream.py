"""Exported model's streaming signature and the Predictor.new_stream() API."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from helpers import TEST_WAV, export_random_model
from ppasr.data.audio import normalize_gain, read_audio
from ppasr.decode.greedy import greedy_decode
from ppasr.serve.infer import Predictor


@pytest.fixture(scope="module")
def random_export_dir(prepared_corpus, tmp_path_factory):
    """A randomly initialised 2-layer model, exported: every layer's state must be carried."""
    root = tmp_path_factory.mktemp("stream") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    return export_random_model(root, seed=3, cnn_size=4, num_rnn_layers=2, rnn_size=24)


@pytest.fixture(scope="module", params=["onnxruntime", "paddle"])
def random_export(random_export_dir, request):
    """The exported model on each inference backend."""
    predictor = Predictor(str(random_export_dir), use_gpu=False, backend=request.param)
    assert predictor.backend.name == request.param
    return predictor


def _stream(predictor, samples, chunk, **kwargs):
    stream = predictor.new_stream(**kwargs)
    parts = [stream.accept(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
    return np.concatenate(parts + [stream.finish()])


def test_exported_model_takes_and_returns_the_gru_state(random_export):
    predictor = random_export
    feature = np.random.default_rng(0).normal(size=(predictor.feature_config.dim, 60)).astype(np.float32)
    fresh, state = predictor.run(feature, predictor.initial_state())
    assert state.shape == (2, 1, 24) and fresh.shape[0] == 14
    np.testing.assert_allclose(fresh.sum(axis=1), 1.0, atol=1e-5)
    carried, _ = predictor.run(feature, state)
    assert np.abs(carried - fresh).max() > 1e-3, "init_state_h_box must change the output"


@pytest.mark.parametrize("chunk", [480, 1600, 4000, 7777, 10 ** 7])
def test_stream_equals_whole_clip(random_export, chunk):
    predictor = random_export
    samples, sr = read_audio(str(TEST_WAV), 16000)
    whole = predictor.probabilities(samples, sr)
    fed = []
    run = predictor.run

    def counting_run(feature, state):
        fed.append(feature.shape[1])
        return run(feature, state)

    predictor.run = counting_run
    try:
        streamed = _stream(predictor, samples, chunk, gain=normalize_gain(samples))
    finally:
        del predictor.run
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    vocabulary = predictor.vocabulary
    assert greedy_decode(streamed[None], np.array([len(streamed)]), vocabulary)[0].text == \
        greedy_decode(whole[None], np.array([len(whole)]), vocabulary)[0].text
    # each chunk advances the model: only the convs' 3-6 frames of context are fed twice
    assert sum(fed) <= predictor.featurizer.num_frames(len(samples)) + 6 * len(fed)


def test_stream_rejects_audio_after_finish(random_export):
    stream = random_export.new_stream()
    stream.accept(np.zeros(100, dtype=np.float32))
    assert stream.finish().shape[0] == 0  # shorter than the convs' 7 frames
    with pytest.raises(ValueError):
        stream.accept(np.zeros(100, dtype=np.float32))


def test_default_gain_is_calibrated_on_the_first_second(random_export):
    predictor = random_export
    samples, sr = read_audio(str(TEST_WAV), 16000)
    gain = normalize_gain(samples[:sr])
    assert abs(gain - normalize_gain(samples)) > 0.05 * gain, "the clip should not make this test trivial"
    reference = predictor.run(predictor.featurizer.extract(samples * np.float32(gain)), predictor.initial_state())[0]
    for chunk in (1600, 8000):
        stream = predictor.new_stream()
        parts = [stream.accept(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
        assert sum(p.shape[0] for p in parts[:sr // chunk - 1]) == 0, "nothing before the gain is known"
        streamed = np.concatenate(parts + [stream.finish()])
        assert stream.gain == pytest.approx(gain)
        np.testing.assert_allclose(streamed, reference, atol=1e-4)
