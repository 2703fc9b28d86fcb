import numpy as np
import pytest

from ppasr.data.audio import read_audio
from ppasr.data.features import AudioFeaturizer, FeatureConfig, FeatureNormalizer, save_mean_std
from ppasr.errors import UserError

from helpers import REFERENCE, TEST_WAV


def test_linear_spectrogram_matches_ppasr_reference():
    samples, sr = read_audio(str(TEST_WAV))
    feature = AudioFeaturizer(FeatureConfig()).featurize(samples, sr)
    reference = np.load(REFERENCE / "test_wav_linear_spectrogram.npz")["feature"]
    assert feature.shape == reference.shape == (161, 838)
    difference = np.abs(feature - reference)
    # Near-silent bins (log power below -22, i.e. < 3e-10) sit at the float32 rounding noise of the
    # gain-normalised samples, which differs in the last bits between numpy builds and CPUs.
    audible = reference > -22
    assert audible.mean() > 0.5
    assert difference[audible].max() < 1e-4
    assert difference.max() < 5e-3


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
    with pytest.raises(UserError, match="fbank"):
        normalizer.check_method("linear", path)


def test_ppasr_made_mean_std_without_config_is_linear(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, mean=np.zeros((161, 1)), std=np.ones((161, 1)))
    assert FeatureNormalizer(str(path)).feature_config.method == "linear"


def test_fbank_of_a_tone_peaks_in_the_band_of_its_frequency():
    from ppasr.data.features import log_mel_spectrogram, mel_filterbank

    sr = 16000
    fb = mel_filterbank(80, 512, sr)
    assert (fb.sum(axis=1) > 0).all(), "no empty filter"
    centres_hz = np.arange(257)[fb.argmax(axis=1)] * sr / 512
    assert np.all(np.diff(centres_hz) >= 0)
    for hz in (300.0, 1000.0, 4000.0):
        tone = np.sin(2 * np.pi * hz * np.arange(sr) / sr).astype(np.float32)
        band = int(np.median(log_mel_spectrogram(tone, sr).argmax(axis=0)))
        assert abs(centres_hz[band] - hz) <= max(60.0, 0.06 * hz), (hz, centres_hz[band])


def test_mfcc_is_the_dct_of_fbank():
    from scipy.fft import idct

    samples, sr = read_audio(str(TEST_WAV))
    fbank = AudioFeaturizer(FeatureConfig(method="fbank", n_mels=40)).featurize(samples, sr)
    coefficients = AudioFeaturizer(FeatureConfig(method="mfcc", n_mels=40, n_mfcc=40)).featurize(samples, sr)
    np.testing.assert_allclose(idct(coefficients, type=2, axis=0, norm="ortho"), fbank, atol=1e-3)
