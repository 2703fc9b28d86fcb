"""Data augmentation for training: audio-level perturbations and SpecAugment.

The pipeline is configured by a JSON list in PPASR's ``conf/augmentation.json``
format::

    [{"type": "speed", "params": {"min_speed_rate": 0.9, ...}, "prob": 1.0}, ...]

Two stages are exposed, because they run at different points of the data path:

* :meth:`AugmentationPipeline.transform_audio` runs the audio-level augmentors
  (``noise``, ``speed``, ``shift``, ``volume``, ``resample``, ``reverb``, ``telephone``, ``pitch``) in config order on
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
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ppasr.data.augmentors import (NoisePerturb, PitchShift, ResamplePerturb, RoomReverb, ShiftPerturb,
                                   SpeedPerturb, TelephoneBand, VolumePerturb, check_params)
from ppasr.data.spec_augment import SpecAugment
from ppasr.errors import UserError
from ppasr.logger import logger


_AUDIO_AUGMENTORS: dict[str, type] = {
    "noise": NoisePerturb,
    "speed": SpeedPerturb,
    "shift": ShiftPerturb,
    "volume": VolumePerturb,
    "resample": ResamplePerturb,
    "reverb": RoomReverb,  # ours (not in PPASR): a synthesised room
    "telephone": TelephoneBand,  # ours: a 300-3400 Hz channel with mu-law
    "pitch": PitchShift,  # ours: pitch and formants moved, the duration kept
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
            augmentor = cls(**check_params(params, cls.PARAMS))
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
