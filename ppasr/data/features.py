"""Acoustic features and mean/std normalisation.

All three methods share PPASR's framing (Hann window, scaled power spectrum): ``linear`` is PPASR's
log spectrogram, ``fbank`` log mel energies, ``mfcc`` their DCT. Vectorised numpy throughout.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ppasr.data.audio import AudioError, normalize_db
from ppasr.errors import UserError

FEATURE_METHODS = ("linear", "fbank", "mfcc")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides what a feature vector means; stored beside mean/std."""

    method: str = "linear"
    sample_rate: int = 16000
    window_ms: float = 20.0
    stride_ms: float = 10.0
    target_db: float = -20.0
    n_mels: int = 80
    n_mfcc: int = 13

    def __post_init__(self) -> None:
        if self.method not in FEATURE_METHODS:
            raise ValueError(f"unknown feature method {self.method!r}; choose one of {FEATURE_METHODS}")

    @property
    def dim(self) -> int:
        """Number of feature bins per frame."""
        if self.method == "linear":
            return int(0.001 * self.sample_rate * self.window_ms) // 2 + 1
        return self.n_mels if self.method == "fbank" else self.n_mfcc

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureConfig":
        return cls(**json.loads(text))


def power_spectrum(samples: np.ndarray, sample_rate: int, window_ms: float = 20.0, stride_ms: float = 10.0,
                   n_fft: int | None = None) -> np.ndarray:
    """PPASR's scaled power spectrum [n_fft/2+1, frames] of Hann-windowed frames."""
    stride = int(0.001 * sample_rate * stride_ms)
    window = int(0.001 * sample_rate * window_ms)
    if len(samples) < window:
        raise AudioError(f"audio is shorter than one {window_ms} ms window")
    n_frames = (len(samples) - window) // stride + 1
    samples = np.ascontiguousarray(samples)
    frames = np.lib.stride_tricks.as_strided(
        samples, shape=(window, n_frames), strides=(samples.strides[0], samples.strides[0] * stride))
    weighting = np.hanning(window)[:, None]
    power = np.abs(np.fft.rfft(frames * weighting, n=n_fft or window, axis=0)) ** 2
    scale = np.sum(weighting ** 2) * sample_rate
    power[1:-1, :] *= 2.0 / scale
    power[(0, -1), :] /= scale
    return power


def linear_spectrogram(samples: np.ndarray, sample_rate: int, window_ms: float = 20.0,
                       stride_ms: float = 10.0, eps: float = 1e-14) -> np.ndarray:
    """PPASR's log power spectrogram [window/2+1, frames]."""
    return np.log(power_spectrum(samples, sample_rate, window_ms, stride_ms) + eps).astype(np.float32)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Triangular filters [n_mels, n_fft/2+1], evenly spaced on the mel scale from 0 Hz to Nyquist.

    Weights are computed from each bin's exact frequency (not rounded to bins), so no filter is
    empty even when filters are narrower than the bin spacing.
    """
    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    edges = np.linspace(0.0, float(to_mel(sample_rate / 2)), n_mels + 2)
    bins = to_mel(np.arange(n_fft // 2 + 1) * sample_rate / n_fft)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def log_mel_spectrogram(samples: np.ndarray, sample_rate: int, n_mels: int = 80, window_ms: float = 20.0,
                        stride_ms: float = 10.0, eps: float = 1e-10) -> np.ndarray:
    """Log mel filterbank energies [n_mels, frames] on the same frames as the linear spectrogram."""
    n_fft = 1 << int(np.ceil(np.log2(0.001 * sample_rate * window_ms)))
    power = np.ascontiguousarray(power_spectrum(samples, sample_rate, window_ms, stride_ms, n_fft), dtype=np.float32)
    return np.log(mel_filterbank(n_mels, n_fft, sample_rate) @ power + np.float32(eps))


def mfcc(samples: np.ndarray, sample_rate: int, n_mfcc: int = 13, n_mels: int = 80, window_ms: float = 20.0,
         stride_ms: float = 10.0) -> np.ndarray:
    """MFCCs [n_mfcc, frames]: orthonormal DCT-II of the log mel energies."""
    from scipy.fft import dct

    log_mel = log_mel_spectrogram(samples, sample_rate, n_mels, window_ms, stride_ms)
    return dct(log_mel, type=2, axis=0, norm="ortho")[:n_mfcc].astype(np.float32)


class AudioFeaturizer:
    """Turn 16 kHz float samples into a [dim, frames] float32 feature matrix."""

    def __init__(self, config: FeatureConfig):
        self.config = config

    def featurize(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        c = self.config
        if sample_rate != c.sample_rate:
            raise ValueError(f"featurizer expects {c.sample_rate} Hz audio, got {sample_rate} Hz")
        return self.extract(normalize_db(samples, c.target_db))

    def extract(self, samples: np.ndarray) -> np.ndarray:
        """Features of samples already at the configured rate and loudness (frame by frame, so a
        stream can compute them chunk by chunk)."""
        c = self.config
        if c.method == "linear":
            return linear_spectrogram(samples, c.sample_rate, c.window_ms, c.stride_ms)
        if c.method == "fbank":
            return log_mel_spectrogram(samples, c.sample_rate, c.n_mels, c.window_ms, c.stride_ms)
        return mfcc(samples, c.sample_rate, c.n_mfcc, c.n_mels, c.window_ms, c.stride_ms)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (used to check CTC feasibility)."""
        c = self.config
        stride = int(0.001 * c.sample_rate * c.stride_ms)
        window = int(0.001 * c.sample_rate * c.window_ms)
        return (num_samples - window) // stride + 1 if num_samples >= window else 0


def read_mean_std(path: str) -> tuple[np.ndarray, np.ndarray, FeatureConfig]:
    """Mean [dim, 1], std [dim, 1] (float32) and the feature config of a ``mean_std.npz``.

    Anything wrong with the file is a ``UserError`` naming it and the command that writes a good one.
    A PPASR-made file has no config: it was linear 161-bin features.
    """
    remake = "rerun `python3 create_data.py` to write it again"
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; create it with `python3 create_data.py`")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not the keys mean/std")
        with data:
            missing = {"mean", "std"} - set(data.files)
            if missing:
                raise ValueError(f"keys {sorted(missing)} are missing")
            mean, std = data["mean"].astype(np.float32), data["std"].astype(np.float32)
            config_json = str(data["feature_config"]) if "feature_config" in data.files else None
        config = FeatureConfig.from_json(config_json) if config_json else FeatureConfig()
    except (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a mean/std file written by create_data.py ({e}); {remake}") from None
    if mean.shape != (config.dim, 1) or std.shape != (config.dim, 1):
        raise UserError(f"{path}: mean/std have shapes {mean.shape}/{std.shape}, expected ({config.dim}, 1) for "
                        f"{config.method} features; {remake}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise UserError(f"{path}: mean/std contain NaN or inf; {remake}")
    return mean, std, config


class FeatureNormalizer:
    """Mean/std normalisation loaded from ``mean_std.npz`` together with its feature config."""

    def __init__(self, mean_std_path: str, eps: float = 1e-20):
        self.mean, self.std, self.feature_config = read_mean_std(mean_std_path)
        self.inv_std = (1.0 / (self.std + eps)).astype(np.float32)

    def apply(self, feature: np.ndarray) -> np.ndarray:
        return (feature - self.mean) * self.inv_std

    def check_method(self, method: str | None, source: str) -> None:
        """Raise a clear error when the requested feature method differs from the recorded one."""
        if method and method != self.feature_config.method:
            raise UserError(
                f"{source} was computed for '{self.feature_config.method}' features but "
                f"--feature_method={method}; rerun `python3 create_data.py --feature_method={method}` "
                f"or pass --feature_method={self.feature_config.method}")


def save_mean_std(path: str, mean: np.ndarray, std: np.ndarray, config: FeatureConfig) -> None:
    """Write mean/std [dim, 1] plus the feature config (atomically)."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, mean=mean.reshape(-1, 1).astype(np.float64), std=std.reshape(-1, 1).astype(np.float64),
             feature_config=np.array(config.to_json()))
    os.replace(tmp, path)
