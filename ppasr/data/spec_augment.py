"""SpecAugment on a normalised ``[D, T]`` feature (the feature-level augmentor ``specaug``)."""
from __future__ import annotations

import numpy as np

from ppasr.data.augmentors import REQUIRED


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
        "F": ("int", REQUIRED),
        "T": ("int", REQUIRED),
        "n_freq_masks": ("int", REQUIRED),
        "n_time_masks": ("int", REQUIRED),
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
