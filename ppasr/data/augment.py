"""Data augmentation for training: audio-level perturbations and SpecAugment.

The pipeline is configured by a JSON list in PPASR's ``conf/augmentation.json``
format::

    [{"type": "speed", "params": {"min_speed_rate": 0.9, ...}, "prob": 1.0}, ...]

Two stages are exposed, because they run at different points of the data path:

* :meth:`AugmentationPipeline.transform_audio` runs the audio-level augmentors
  (``noise``, ``speed``, ``shift``, ``volume``, ``resample``) in config order on
  raw samples, before feature extraction.  It takes and returns
  ``(samples, sample_rate)``: only ``resample`` changes the rate, and the caller
  must compute features at the *returned* rate (each later augmentor in the
  chain already receives the current rate).
* :meth:`AugmentationPipeline.transform_feature` runs the feature-level
  augmentor (``specaug``) on a normalised ``[D, T]`` feature.  PPASR built this
  stage but never called it; callers of ours must call it after normalisation.

Each entry fires independently with probability ``prob``.  All randomness comes
from one :class:`numpy.random.Generator` owned by the pipeline; call
:meth:`AugmentationPipeline.reseed` in every DataLoader worker (and every epoch)
so that workers draw independent streams (PPASR gave every worker the same
seed, so they produced identical augmentations).
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ppasr.data.audio import AudioError, read_audio, resample
from ppasr.errors import UserError
from ppasr.logger import logger
from ppasr.data.manifest import read_manifest

__all__ = [
    "AugmentationPipeline",
    "NoisePerturb",
    "ResamplePerturb",
    "ShiftPerturb",
    "SpecAugment",
    "SpeedPerturb",
    "VolumePerturb",
    "build_augmentation_pipeline",
]

_REQUIRED = object()


def _power(x: np.ndarray) -> float:
    """Mean power of a signal, computed in float64."""
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def _check_params(params: dict[str, Any], spec: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Check names and types of ``params`` against ``spec`` and fill in defaults.

    ``spec`` maps a name to ``(kind, default)``; kind is one of ``number``,
    ``int``, ``bool``, ``str``; a default of ``_REQUIRED`` marks a mandatory param.
    """
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"unknown param(s) {unknown}; allowed: {sorted(spec)}")
    out: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        if name not in params:
            if default is _REQUIRED:
                raise ValueError(f"missing required param '{name}'")
            out[name] = default
            continue
        value = params[name]
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "str":
            ok = isinstance(value, str)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            ok = False
        elif not math.isfinite(value):
            ok = False
        elif kind == "int":
            ok = float(value).is_integer()
            value = int(value) if ok else value
        else:
            ok = True
            value = float(value)
        if not ok:
            raise ValueError(f"param '{name}' must be a finite {kind}, got {value!r}")
        out[name] = value
    return out


def _check_range(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    """Raise ValueError when a min param exceeds its max param."""
    if lo > hi:
        raise ValueError(f"'{lo_name}' ({lo}) is greater than '{hi_name}' ({hi})")


class NoisePerturb:
    """Add a random noise clip from a manifest at a random SNR.

    A clip shorter than the utterance is tiled (looped) to cover it, starting at
    a random offset; a longer clip contributes a random window.  The noise is
    scaled so that ``10*log10(P_speech / P_noise)`` equals the drawn SNR over
    the utterance.  Silent speech or silent noise leaves the audio unchanged.
    Decoded clips are cached lazily in a bounded LRU cache (per process).
    """

    PARAMS = {
        "min_snr_dB": ("number", _REQUIRED),
        "max_snr_dB": ("number", _REQUIRED),
        "noise_manifest_path": ("str", _REQUIRED),
    }

    def __init__(self, min_snr_dB: float, max_snr_dB: float, noise_manifest_path: str,
                 max_cache_samples: int = 1 << 24) -> None:
        """Read the noise manifest; the clips themselves are decoded on first use."""
        _check_range("min_snr_dB", min_snr_dB, "max_snr_dB", max_snr_dB)
        self.min_snr_dB = min_snr_dB
        self.max_snr_dB = max_snr_dB
        self.manifest_path = noise_manifest_path
        self.noise_paths = self._read_manifest(Path(noise_manifest_path))
        self.max_cache_samples = max_cache_samples
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cached_samples = 0

    @staticmethod
    def _read_manifest(path: Path) -> list[str]:
        """Return the audio paths listed in a PPASR JSON-lines manifest.

        Relative paths are taken from the working directory (as PPASR does),
        falling back to the manifest's own directory.
        """
        if not path.is_file():  # not an error: noise augmentation is skipped with a warning
            raise FileNotFoundError(2, "noise manifest not found", str(path))
        paths = []
        for item in read_manifest(str(path), required=("audio_filepath",)):
            audio = Path(item["audio_filepath"])
            if not audio.is_absolute() and not audio.exists():
                audio = path.parent / audio
            paths.append(str(audio))
        return paths

    def _clip(self, path: str, sample_rate: int) -> np.ndarray:
        """Return the decoded clip at ``sample_rate``, through the LRU cache."""
        key = (path, sample_rate)
        clip = self._cache.get(key)
        if clip is not None:
            self._cache.move_to_end(key)
            return clip
        clip, _ = read_audio(path, sample_rate)
        if clip.size <= self.max_cache_samples:
            self._cache[key] = clip
            self._cached_samples += clip.size
            while self._cached_samples > self.max_cache_samples:
                _, old = self._cache.popitem(last=False)
                self._cached_samples -= old.size
        return clip

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return ``samples`` mixed with noise, and the unchanged rate."""
        if not self.noise_paths:
            return samples, sample_rate
        path = self.noise_paths[int(rng.integers(len(self.noise_paths)))]
        snr_db = rng.uniform(self.min_snr_dB, self.max_snr_dB)
        try:
            clip = self._clip(path, sample_rate)
        except AudioError as e:
            logger.warning(f"noise clip {path} skipped from now on: {e}")
            self.noise_paths.remove(path)
            return samples, sample_rate
        n = samples.size
        if clip.size == 0:
            return samples, sample_rate
        if clip.size < n:
            start = int(rng.integers(clip.size))
            reps = -(-(start + n) // clip.size)
            noise = np.tile(clip, reps)[start:start + n]
        else:
            start = int(rng.integers(clip.size - n + 1))
            noise = clip[start:start + n]
        p_speech, p_noise = _power(samples), _power(noise)
        if p_speech == 0.0 or p_noise == 0.0:
            return samples, sample_rate
        scale = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
        return (samples + scale * noise).astype(np.float32), sample_rate


class SpeedPerturb:
    """Change speed (and pitch) by linear-interpolation resampling.

    The output has ``round(n / rate)`` samples. The rate is drawn uniformly from the range, as
    PPASR's ``SpeedPerturbAugmentor`` (an entry without ``num_rates`` means exactly that);
    ``num_rates > 0`` draws from ``linspace(min_speed_rate, max_speed_rate, num_rates)`` instead.
    """

    PARAMS = {
        "min_speed_rate": ("number", 0.9),
        "max_speed_rate": ("number", 1.1),
        "num_rates": ("int", 0),
    }

    def __init__(self, min_speed_rate: float = 0.9, max_speed_rate: float = 1.1,
                 num_rates: int = 0) -> None:
        """Validate the rate range."""
        if min_speed_rate <= 0:
            raise ValueError(f"'min_speed_rate' must be > 0, got {min_speed_rate}")
        _check_range("min_speed_rate", min_speed_rate, "max_speed_rate", max_speed_rate)
        if num_rates < 0:
            raise ValueError(f"'num_rates' must be >= 0, got {num_rates}")
        self.min_speed_rate = min_speed_rate
        self.max_speed_rate = max_speed_rate
        self.rates = np.linspace(min_speed_rate, max_speed_rate, num_rates) if num_rates else None

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return the speed-perturbed samples and the unchanged rate."""
        if self.rates is not None:
            rate = float(rng.choice(self.rates))
        else:
            rate = float(rng.uniform(self.min_speed_rate, self.max_speed_rate))
        n = samples.size
        new_n = max(1, int(round(n / rate)))
        if new_n == n:
            return samples, sample_rate
        positions = np.linspace(0.0, n - 1, new_n)
        out = np.interp(positions, np.arange(n), samples)
        return out.astype(np.float32), sample_rate


class ShiftPerturb:
    """Shift audio in time by a random number of milliseconds, zero-padding.

    As in PPASR, a positive shift moves the signal earlier (drops the start,
    pads zeros at the end); a negative shift delays it.  Length is unchanged.
    """

    PARAMS = {"min_shift_ms": ("number", _REQUIRED), "max_shift_ms": ("number", _REQUIRED)}

    def __init__(self, min_shift_ms: float, max_shift_ms: float) -> None:
        """Validate the shift range."""
        _check_range("min_shift_ms", min_shift_ms, "max_shift_ms", max_shift_ms)
        self.min_shift_ms = min_shift_ms
        self.max_shift_ms = max_shift_ms

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return the shifted samples and the unchanged rate."""
        shift_ms = rng.uniform(self.min_shift_ms, self.max_shift_ms)
        n = samples.size
        shift = max(-n, min(n, int(shift_ms * sample_rate / 1000.0)))
        if shift == 0:
            return samples, sample_rate
        out = np.zeros_like(samples)
        if shift > 0:
            out[:n - shift] = samples[shift:]
        else:
            out[-shift:] = samples[:n + shift]
        return out, sample_rate


class VolumePerturb:
    """Apply a random gain in dB.

    Like PPASR the result is not clipped to [-1, 1]: features are normalised
    afterwards, and clipping would add distortion that real recordings lack.
    """

    PARAMS = {"min_gain_dBFS": ("number", _REQUIRED), "max_gain_dBFS": ("number", _REQUIRED)}

    def __init__(self, min_gain_dBFS: float, max_gain_dBFS: float) -> None:
        """Validate the gain range."""
        _check_range("min_gain_dBFS", min_gain_dBFS, "max_gain_dBFS", max_gain_dBFS)
        self.min_gain_dBFS = min_gain_dBFS
        self.max_gain_dBFS = max_gain_dBFS

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return the scaled samples and the unchanged rate."""
        gain_db = rng.uniform(self.min_gain_dBFS, self.max_gain_dBFS)
        return (samples * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32), sample_rate


class ResamplePerturb:
    """Resample to ``new_sample_rate`` and return audio at that rate.

    Downsampling removes the band above the new Nyquist frequency.  The new
    rate is returned with the samples; the caller computes features at it (or
    resamples back itself if its featurizer needs a fixed rate).
    """

    PARAMS = {"new_sample_rate": ("int", _REQUIRED)}

    def __init__(self, new_sample_rate: int) -> None:
        """Validate the target rate."""
        if new_sample_rate <= 0:
            raise ValueError(f"'new_sample_rate' must be > 0, got {new_sample_rate}")
        self.new_sample_rate = new_sample_rate

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return the resampled samples and the new rate."""
        return resample(samples, sample_rate, self.new_sample_rate), self.new_sample_rate


class SpecAugment:
    """SpecAugment (time warp, frequency masks, time masks) on a ``[D, T]`` feature.

    * Time warp (``W > 0``): a centre frame ``c`` in ``[W, T - W)`` moves to
      ``w`` in ``[c - W + 1, c + W]``; both sides are stretched by linear
      interpolation along time (PPASR used PIL bicubic resizing; ``warp_mode``
      is accepted for config compatibility and must be ``"PIL"``).
    * ``n_freq_masks`` bands of width uniform in ``[0, F]``.
    * Time masks of width uniform in ``[0, T]`` capped at ``p`` times the frame
      count.  With ``adaptive_number_ratio > 0`` the mask count is
      ``min(int(ratio * frames), max_n_time_masks)``; with
      ``adaptive_size_ratio > 0`` the maximum width is ``int(ratio * frames)``.
    * Masked cells become 0 (``replace_with_zero``) or the feature's mean.

    The input array is not modified.
    """

    PARAMS = {
        "F": ("int", _REQUIRED),
        "T": ("int", _REQUIRED),
        "n_freq_masks": ("int", _REQUIRED),
        "n_time_masks": ("int", _REQUIRED),
        "p": ("number", 1.0),
        "W": ("int", 0),
        "adaptive_number_ratio": ("number", 0.0),
        "adaptive_size_ratio": ("number", 0.0),
        "max_n_time_masks": ("int", 20),
        "replace_with_zero": ("bool", True),
        "warp_mode": ("str", "PIL"),
    }

    def __init__(self, F: int, T: int, n_freq_masks: int, n_time_masks: int, p: float = 1.0,
                 W: int = 0, adaptive_number_ratio: float = 0.0, adaptive_size_ratio: float = 0.0,
                 max_n_time_masks: int = 20, replace_with_zero: bool = True,
                 warp_mode: str = "PIL") -> None:
        """Validate the SpecAugment parameters."""
        for name, value in (("F", F), ("T", T), ("n_freq_masks", n_freq_masks),
                            ("n_time_masks", n_time_masks), ("W", W),
                            ("adaptive_number_ratio", adaptive_number_ratio),
                            ("adaptive_size_ratio", adaptive_size_ratio),
                            ("max_n_time_masks", max_n_time_masks)):
            if value < 0:
                raise ValueError(f"'{name}' must be >= 0, got {value}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"'p' must be in [0, 1], got {p}")
        if warp_mode != "PIL":
            raise ValueError(f"'warp_mode' must be 'PIL', got {warp_mode!r}")
        self.F, self.T, self.W, self.p = F, T, W, p
        self.n_freq_masks, self.n_time_masks = n_freq_masks, n_time_masks
        self.adaptive_number_ratio = adaptive_number_ratio
        self.adaptive_size_ratio = adaptive_size_ratio
        self.max_n_time_masks = max_n_time_masks
        self.replace_with_zero = replace_with_zero

    @staticmethod
    def _stretch(x: np.ndarray, frames: int) -> np.ndarray:
        """Resize ``x`` ([D, t]) to ``frames`` frames by linear interpolation, ends aligned."""
        pos = np.linspace(0.0, x.shape[1] - 1, frames)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, x.shape[1] - 1)
        frac = (pos - i0).astype(x.dtype)
        return x[:, i0] * (1 - frac) + x[:, i1] * frac

    def _time_warp(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Warp ``x`` along time around a random centre frame."""
        frames = x.shape[1]
        if self.W == 0 or frames - self.W <= self.W:
            return x
        centre = int(rng.integers(self.W, frames - self.W))
        warped = int(rng.integers(centre - self.W, centre + self.W)) + 1
        left = self._stretch(x[:, :centre], warped)
        right = self._stretch(x[:, centre:], frames - warped)
        return np.concatenate([left, right], axis=1)

    def __call__(self, feature: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return an augmented copy of ``feature`` ([D, T])."""
        if np.ndim(feature) != 2:
            raise ValueError(f"expected a [D, T] feature, got shape {np.shape(feature)}")
        x = self._time_warp(np.array(feature, dtype=np.float32), rng)
        n_bins, frames = x.shape
        fill = x.mean(dtype=np.float64) if x.size and not self.replace_with_zero else 0.0
        for _ in range(self.n_freq_masks):
            width = min(int(rng.integers(self.F, endpoint=True)), n_bins)
            start = int(rng.integers(n_bins - width, endpoint=True))
            x[start:start + width, :] = fill
        if self.adaptive_number_ratio > 0:
            n_masks = min(int(frames * self.adaptive_number_ratio), self.max_n_time_masks)
        else:
            n_masks = self.n_time_masks
        max_width = int(frames * self.adaptive_size_ratio) if self.adaptive_size_ratio > 0 else self.T
        for _ in range(n_masks):
            width = min(int(rng.integers(max_width, endpoint=True)), int(frames * self.p))
            start = int(rng.integers(frames - width, endpoint=True))
            x[:, start:start + width] = fill
        return x


_AUDIO_AUGMENTORS: dict[str, type] = {
    "noise": NoisePerturb,
    "speed": SpeedPerturb,
    "shift": ShiftPerturb,
    "volume": VolumePerturb,
    "resample": ResamplePerturb,
}
_FEATURE_AUGMENTORS: dict[str, type] = {"specaug": SpecAugment}
_ENTRY_KEYS = {"type", "params", "prob", "aug_type"}


def _load_config(config: str | os.PathLike | list | None) -> list:
    """Turn a JSON string, a JSON file path, a list or None into a list of entries."""
    if config is None:
        return []
    if isinstance(config, list):
        return config
    if isinstance(config, os.PathLike):
        config = os.fspath(config)
    if not isinstance(config, str):
        raise ValueError(f"augmentation config must be a JSON string, a path, a list or None, "
                         f"got {type(config).__name__}")
    text = config.strip()
    if text in ("", "None"):
        return []
    if text[0] in "[{":
        source = "augmentation config string"
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"augmentation config file not found: {path}")
        source = f"augmentation config file {path}"
        text = path.read_text(encoding="utf-8")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON in {source}: {e}") from e
    if not isinstance(entries, list):
        raise ValueError(f"{source} must be a JSON list of augmentor entries, "
                         f"got {type(entries).__name__}")
    return entries


class AugmentationPipeline:
    """Configured chain of augmentors with its own random stream.

    ``config`` is a JSON string, a path to a JSON file, a list of entries, or
    ``None``/``'None'`` (augmentation disabled: both transforms are identities).
    The initial stream is the one :meth:`reseed` gives for ``(seed, 0, 0)``.
    A noise entry whose manifest is missing or empty is dropped with one warning.
    """

    def __init__(self, config: str | os.PathLike | list | None, seed: int = 0) -> None:
        """Parse and validate ``config``; raise ValueError naming a bad entry."""
        self.audio_augmentors: list[tuple[float, Callable]] = []
        self.feature_augmentors: list[tuple[float, SpecAugment]] = []
        for index, entry in enumerate(_load_config(config)):
            self._add_entry(index, entry)
        self.reseed(seed, 0, 0)

    def _add_entry(self, index: int, entry: Any) -> None:
        """Build one augmentor from a config entry and append it to its stage."""
        where = f"augmentation config entry {index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        kind = entry.get("type")
        where += f" (type {kind!r})"
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_ENTRY_KEYS)}")
        if kind in _AUDIO_AUGMENTORS:
            cls, stage, target = _AUDIO_AUGMENTORS[kind], "audio", self.audio_augmentors
        elif kind in _FEATURE_AUGMENTORS:
            cls, stage, target = _FEATURE_AUGMENTORS[kind], "feature", self.feature_augmentors
        else:
            known = sorted(_AUDIO_AUGMENTORS) + sorted(_FEATURE_AUGMENTORS)
            raise ValueError(f"{where}: unknown augmentor type; known types: {known}")
        if entry.get("aug_type", stage) != stage:
            raise ValueError(f"{where}: 'aug_type' must be {stage!r}, got {entry['aug_type']!r}")
        prob = entry.get("prob", 1.0)
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
            raise ValueError(f"{where}: 'prob' must be a number in [0, 1], got {prob!r}")
        params = entry.get("params")
        if not isinstance(params, dict):
            raise ValueError(f"{where}: 'params' must be an object, got {params!r}")
        try:
            augmentor = cls(**_check_params(params, cls.PARAMS))
        except FileNotFoundError as e:
            logger.warning(f"{where}: noise manifest not found ({e.filename}); noise augmentation is skipped")
            return
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        if isinstance(augmentor, NoisePerturb) and not augmentor.noise_paths:
            logger.warning(f"{where}: noise manifest {augmentor.manifest_path} is empty; "
                           "noise augmentation is skipped")
            return
        target.append((float(prob), augmentor))

    @property
    def enabled(self) -> bool:
        """Whether any augmentor is active."""
        return bool(self.audio_augmentors or self.feature_augmentors)

    def reseed(self, seed: int, epoch: int, worker_id: int) -> None:
        """Start a fresh random stream derived from ``(seed, epoch, worker_id)``.

        Streams for different triples are statistically independent
        (``numpy.random.SeedSequence``); the same triple reproduces exactly.
        Call it in each DataLoader worker at the start of every epoch.
        """
        for name, value in (("seed", seed), ("epoch", epoch), ("worker_id", worker_id)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        self.rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), int(worker_id)])))

    def transform_audio(self, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        """Run the audio-level augmentors; return ``(samples, sample_rate)``.

        The returned rate differs from the input only when ``resample`` fired.
        """
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D samples, got shape {samples.shape}")
        for prob, augmentor in self.audio_augmentors:
            if self.rng.random() < prob and samples.size:
                samples, sample_rate = augmentor(samples, sample_rate, self.rng)
        return samples, sample_rate

    def transform_feature(self, feature: np.ndarray) -> np.ndarray:
        """Run the feature-level augmentors on a normalised ``[D, T]`` feature."""
        for prob, augmentor in self.feature_augmentors:
            if self.rng.random() < prob:
                feature = augmentor(feature, self.rng)
        return feature


def build_augmentation_pipeline(config_path: str | os.PathLike | None,
                                seed: int = 0) -> AugmentationPipeline:
    """Build a pipeline from a JSON config file; ``None`` or ``'None'`` disables it.

    A missing, unreadable or invalid file is a ``UserError`` naming the file and the problem.
    """
    if config_path is None or str(config_path).strip() in ("", "None"):
        return AugmentationPipeline(None, seed)
    path = Path(config_path)
    fix = "fix it (PPASR's format: conf/augmentation.json) or pass --augment_conf_path=None"
    if not path.is_file():
        raise UserError(f"augmentation config file {path} not found; {fix}")
    try:
        return AugmentationPipeline(path, seed)
    except (ValueError, OSError) as e:  # UnicodeDecodeError is a ValueError
        message = str(e) if str(path) in str(e) else f"augmentation config file {path}: {e}"
        raise UserError(f"{message}; {fix}") from None
