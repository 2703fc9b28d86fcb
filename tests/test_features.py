import numpy as np
import pytest

from ppasr.audio import read_audio
from ppasr.features import AudioFeaturizer, FeatureConfig, FeatureNormalizer, save_mean_std

from conftest import REFERENCE, TEST_WAV


def test_linear_spectrogram_matches_ppasr_reference():
    samples, sr = read_audio(str(TEST_WAV))
    feature = AudioFeaturizer(FeatureConfig()).featurize(samples, sr)
    reference = np.load(REFERENCE / "test_wav_linear_spectrogram.npz")["feature"]
    assert feature.shape == reference.shape == (161, 838)
    assert np.abs(feature - reference).max() < 1e-4


@pytest.mark.parametrize("method,dim", [("fbank", 80), ("mfcc", 13), ("linear", 161)])
def test_feature_methods_shape_and_frame_count(method, dim):
    samples, sr = read_audio(str(TEST_WAV))
    featurizer = AudioFeaturizer(FeatureConfig(method=method))
    feature = featurizer.featurize(samples, sr)
    assert feature.shape == (dim, featurizer.num_frames(len(samples)))
    assert np.isfinite(feature).all() and feature.std() > 0.1


def test_resampled_audio_gives_same_frames(tmp_path, reference_audio):
    import soundfile

    samples, sr = reference_audio
    import soxr

    path = tmp_path / "x44.wav"
    soundfile.write(path, np.stack([soxr.resample(samples, sr, 44100)] * 2, axis=1), 44100)
    loaded, loaded_sr = read_audio(str(path))
    assert loaded_sr == 16000 and loaded.ndim == 1 and abs(len(loaded) - len(samples)) <= 2


def test_normalizer_records_feature_config_and_rejects_mismatch(tmp_path):
    config = FeatureConfig(method="fbank", n_mels=40)
    path = str(tmp_path / "mean_std.npz")
    save_mean_std(path, np.ones(40), np.full(40, 2.0), config)
    data = np.load(path)
    assert data["mean"].shape == (40, 1) and data["std"].shape == (40, 1)
    normalizer = FeatureNormalizer(path)
    assert normalizer.feature_config == config
    out = normalizer.apply(np.full((40, 3), 5.0, dtype=np.float32))
    assert np.allclose(out, 2.0)
    normalizer.check_method("fbank", path)
    with pytest.raises(SystemExit, match="fbank"):
        normalizer.check_method("linear", path)


def test_ppasr_made_mean_std_without_config_is_linear(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, mean=np.zeros((161, 1)), std=np.ones((161, 1)))
    assert FeatureNormalizer(str(path)).feature_config.method == "linear"
