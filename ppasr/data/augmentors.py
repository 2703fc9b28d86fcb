"""Audio-level augmentors (noise, speed, shift, volume, resample, reverb, telephone, pitch) and the parameter spec every augmentor declares.

Each augmentor class lists its JSON ``params`` in ``PARAMS`` (name -> ``(kind, default)``), checked by
:func:`check_params`; called with ``(samples, sample_rate, rng)`` it returns ``(samples, sample_rate)``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ppasr.data.audio import AudioError, read_audio, resample
from ppasr.data.manifest import read_manifest
from ppasr.logger import logger

REQUIRED = object()


def check_params(params: dict[str, Any], spec: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Check names and types of ``params`` against ``spec`` and fill in defaults.

    ``spec`` maps a name to ``(kind, default)``; kind is one of ``number``,
    ``int``, ``bool``, ``str``; a default of ``REQUIRED`` marks a mandatory param.
    """
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"unknown param(s) {unknown}; allowed: {sorted(spec)}")
    out: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        if name not in params:
            if default is REQUIRED:
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


def check_range(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    """Raise ValueError when a min param exceeds its max param."""
    if lo > hi:
        raise ValueError(f"'{lo_name}' ({lo}) is greater than '{hi_name}' ({hi})")


def _power(x: np.ndarray) -> float:
    """Mean power of a signal, computed in float64."""
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


class NoisePerturb:
    """Add a random noise clip from a manifest at a random SNR.

    A clip shorter than the utterance is tiled (looped) to cover it, starting at
    a random offset; a longer clip contributes a random window.  The noise is
    scaled so that ``10*log10(P_speech / P_noise)`` equals the drawn SNR over
    the utterance.  Silent speech or silent noise leaves the audio unchanged.
    Decoded clips are cached lazily in a bounded LRU cache (per process).
    """

    PARAMS = {
        "min_snr_dB": ("number", REQUIRED),
        "max_snr_dB": ("number", REQUIRED),
        "noise_manifest_path": ("str", REQUIRED),
    }

    def __init__(self, min_snr_dB: float, max_snr_dB: float, noise_manifest_path: str,
                 max_cache_samples: int = 1 << 24) -> None:
        """Read the noise manifest; the clips themselves are decoded on first use."""
        check_range("min_snr_dB", min_snr_dB, "max_snr_dB", max_snr_dB)
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
        check_range("min_speed_rate", min_speed_rate, "max_speed_rate", max_speed_rate)
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

    PARAMS = {"min_shift_ms": ("number", REQUIRED), "max_shift_ms": ("number", REQUIRED)}

    def __init__(self, min_shift_ms: float, max_shift_ms: float) -> None:
        """Validate the shift range."""
        check_range("min_shift_ms", min_shift_ms, "max_shift_ms", max_shift_ms)
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

    PARAMS = {"min_gain_dBFS": ("number", REQUIRED), "max_gain_dBFS": ("number", REQUIRED)}

    def __init__(self, min_gain_dBFS: float, max_gain_dBFS: float) -> None:
        """Validate the gain range."""
        check_range("min_gain_dBFS", min_gain_dBFS, "max_gain_dBFS", max_gain_dBFS)
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

    PARAMS = {"new_sample_rate": ("int", REQUIRED)}

    def __init__(self, new_sample_rate: int) -> None:
        """Validate the target rate."""
        if new_sample_rate <= 0:
            raise ValueError(f"'new_sample_rate' must be > 0, got {new_sample_rate}")
        self.new_sample_rate = new_sample_rate

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Return the resampled samples and the new rate."""
        return resample(samples, sample_rate, self.new_sample_rate), self.new_sample_rate


def impulse_response(rt60: float, drr_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then a diffuse tail of Gaussian noise whose
    amplitude falls 60 dB in ``rt60`` seconds, ``drr_db`` below the direct sound in energy."""
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / rt60)  # ln(1000): -60 dB of amplitude at rt60
    delay = int(rng.uniform(0.002, 0.01) * sample_rate)  # first reflections arrive a few ms after the direct path
    tail[:delay] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(np.sum(tail ** 2), 1e-12))
    tail[0] = 1.0
    return tail


class RoomReverb:
    """Reverberation of a synthesised room: reverberation time and direct-to-reverberant ratio drawn per
    utterance. The output keeps the input's length and RMS level (the tail past the end is cut)."""

    PARAMS = {"min_rt60": ("number", 0.2), "max_rt60": ("number", 0.8),
              "min_drr_dB": ("number", 0.0), "max_drr_dB": ("number", 12.0)}

    def __init__(self, min_rt60: float = 0.2, max_rt60: float = 0.8, min_drr_dB: float = 0.0,
                 max_drr_dB: float = 12.0) -> None:
        if min_rt60 <= 0:
            raise ValueError(f"'min_rt60' must be > 0, got {min_rt60}")
        check_range("min_rt60", min_rt60, "max_rt60", max_rt60)
        check_range("min_drr_dB", min_drr_dB, "max_drr_dB", max_drr_dB)
        self.rt60 = (min_rt60, max_rt60)
        self.drr = (min_drr_dB, max_drr_dB)

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        ir = impulse_response(rng.uniform(*self.rt60), rng.uniform(*self.drr), sample_rate, rng)
        power = _power(samples)
        if samples.size == 0 or power == 0:
            return samples, sample_rate
        size = samples.size + ir.size - 1
        n = 1 << (size - 1).bit_length()
        wet = np.fft.irfft(np.fft.rfft(samples, n) * np.fft.rfft(ir, n), n)[:samples.size]
        wet *= np.sqrt(power / max(_power(wet), 1e-20))
        return wet.astype(np.float32), sample_rate


class TelephoneBand:
    """A telephone channel: a band of roughly 300–3400 Hz (edges drawn per utterance), and optionally
    G.711-style 8-bit μ-law quantisation of the band-limited signal."""

    PARAMS = {"min_low_hz": ("number", 200.0), "max_low_hz": ("number", 400.0),
              "min_high_hz": ("number", 3000.0), "max_high_hz": ("number", 3700.0), "mu_law": ("bool", True)}

    def __init__(self, min_low_hz: float = 200.0, max_low_hz: float = 400.0, min_high_hz: float = 3000.0,
                 max_high_hz: float = 3700.0, mu_law: bool = True) -> None:
        check_range("min_low_hz", min_low_hz, "max_low_hz", max_low_hz)
        check_range("min_high_hz", min_high_hz, "max_high_hz", max_high_hz)
        check_range("max_low_hz", max_low_hz, "min_high_hz", min_high_hz)
        if min_low_hz < 0:
            raise ValueError(f"'min_low_hz' must be >= 0, got {min_low_hz}")
        self.low = (min_low_hz, max_low_hz)
        self.high = (min_high_hz, max_high_hz)
        self.mu_law = mu_law

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        low, high = rng.uniform(*self.low), rng.uniform(*self.high)
        if samples.size == 0:
            return samples, sample_rate
        spectrum = np.fft.rfft(samples)
        freqs = np.fft.rfftfreq(samples.size, 1.0 / sample_rate)
        spectrum[(freqs < low) | (freqs > high)] = 0.0
        band = np.fft.irfft(spectrum, samples.size)
        if self.mu_law:
            peak = float(np.max(np.abs(band)))
            if peak > 0:
                x = band / peak
                coded = np.round(np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256) * 127) / 127
                band = np.sign(coded) * np.expm1(np.abs(coded) * np.log(256)) / 255 * peak
        return band.astype(np.float32), sample_rate


def stretch(samples: np.ndarray, factor: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Make ``samples`` ``factor`` times longer without changing its frequencies (a phase vocoder: the
    magnitudes of neighbouring frames interpolated, each bin's phase advanced by its measured frequency)."""
    n = samples.size
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(samples.astype(np.float64), (n_fft // 2, n_fft // 2 + hop))
    frames_in = 1 + (padded.size - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:frames_in]
    spectrum = np.fft.rfft(frames * window, axis=1)
    steps = np.arange(0.0, frames_in - 1, 1.0 / factor)  # where each output frame reads the input
    index = steps.astype(int)
    frac = (steps - index)[:, None]
    magnitude = (1 - frac) * np.abs(spectrum[index]) + frac * np.abs(spectrum[index + 1])
    expected = 2 * np.pi * hop * np.arange(spectrum.shape[1]) / n_fft
    deviation = np.angle(spectrum[index + 1]) - np.angle(spectrum[index]) - expected
    deviation -= 2 * np.pi * np.round(deviation / (2 * np.pi))
    phase = np.angle(spectrum[0]) + np.concatenate([np.zeros((1, expected.size)),
                                                    np.cumsum(expected + deviation, axis=0)[:-1]])
    out_frames = np.fft.irfft(magnitude * np.exp(1j * phase), n_fft, axis=1) * window
    # overlap-add, hop by hop (n_fft is a multiple of hop), normalised by the summed squared windows
    frames_out, parts = len(steps), n_fft // hop
    out, norm = np.zeros((frames_out + parts - 1, hop)), np.zeros((frames_out + parts - 1, hop))
    for j, (part, weight) in enumerate(zip(out_frames.reshape(frames_out, parts, hop).transpose(1, 0, 2),
                                           (window ** 2).reshape(parts, hop))):
        out[j:j + frames_out] += part
        norm[j:j + frames_out] += weight
    out = (out / np.maximum(norm, 1e-3)).ravel()
    return out[n_fft // 2:n_fft // 2 + int(round(n * factor))]


class PitchShift:
    """Move every frequency of the voice (pitch and formants, i.e. a shorter or longer vocal tract) by a
    number of semitones drawn per utterance, keeping its duration and level: the ``speed`` augmentor moves
    them only together with the tempo. A phase-vocoder stretch, then a resampling back to the original
    length."""

    PARAMS = {"min_semitones": ("number", -2.0), "max_semitones": ("number", 2.0)}

    def __init__(self, min_semitones: float = -2.0, max_semitones: float = 2.0) -> None:
        check_range("min_semitones", min_semitones, "max_semitones", max_semitones)
        if max(abs(min_semitones), abs(max_semitones)) > 12:
            raise ValueError("a shift of more than 12 semitones (an octave) is not a voice any more")
        self.semitones = (min_semitones, max_semitones)

    def __call__(self, samples: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        factor = 2.0 ** (rng.uniform(*self.semitones) / 12.0)
        if samples.size < 1024 or abs(factor - 1.0) < 1e-4:
            return samples, sample_rate
        longer = stretch(samples, factor)
        out = resample(longer.astype(np.float32), int(round(sample_rate * factor)), sample_rate)
        out = np.pad(out, (0, max(0, samples.size - out.size)))[:samples.size]
        out *= np.sqrt(_power(samples) / max(_power(out), 1e-20))  # the level is the volume augmentor's
        return out.astype(np.float32), sample_rate
