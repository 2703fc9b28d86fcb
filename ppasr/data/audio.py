"""Audio reading, resampling and loudness normalisation (float32 mono samples)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile

TARGET_SAMPLE_RATE = 16000


class AudioError(Exception):
    """Audio that cannot be used: missing, unreadable, empty or truncated."""


class AudioTooLarge(AudioError):
    """Audio whose decoding would cost more than a ``DecodeLimits`` allows."""


@dataclass(frozen=True)
class DecodeLimits:
    """What decoding one untrusted file may cost: a 100 kB Ogg Vorbis of 255 channels decodes to
    gigabytes, so the header is checked first and the decoded samples are counted as they come."""

    max_channels: int
    max_sample_rate: int
    max_samples: int  # decoded frames x channels
    max_seconds: float


DECODE_BLOCK_FRAMES = 16384
UNKNOWN_FRAMES = 2 ** 62


def audio_info(path: str | BinaryIO) -> tuple[float, int, int]:
    """Return (duration seconds, sample rate, channels) from the header of a file or an in-memory file."""
    if isinstance(path, str) and not os.path.isfile(path):
        raise AudioError("audio file not found")
    try:
        info = soundfile.info(path)
    except Exception as e:  # libsndfile raises RuntimeError/LibsndfileError on corrupt data
        raise AudioError(f"unreadable audio ({_short(e)})") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("audio has no samples")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def check_wav_complete(path: str) -> None:
    """Raise AudioError when a RIFF/WAV file's data chunk is shorter than its header declares.

    libsndfile silently reads a truncated WAV as shorter audio; a cut-off recording whose
    transcript no longer matches should not train the model.
    """
    import struct

    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = os.fstat(f.fileno()).st_size - f.tell()
                if 0 < size < 0xFFFFFFFF and available < size:
                    raise AudioError(f"truncated WAV (header declares {size} data bytes, file holds {available})")
                return
            f.seek(size + (size & 1), os.SEEK_CUR)


def read_audio(path: str | BinaryIO, target_sample_rate: int | None = TARGET_SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read any soundfile format (a path or an in-memory file such as an upload) as float32 mono,
    resampled to ``target_sample_rate`` if given."""
    if isinstance(path, str) and not os.path.isfile(path):
        raise AudioError("audio file not found")
    try:
        samples, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"unreadable audio ({_short(e)})") from e
    if samples.shape[0] == 0:
        raise AudioError("audio has no samples")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if target_sample_rate and sample_rate != target_sample_rate:
        mono = resample(mono, sample_rate, target_sample_rate)
        sample_rate = target_sample_rate
    return np.ascontiguousarray(mono, dtype=np.float32), int(sample_rate)


def read_untrusted_audio(file: BinaryIO, target_sample_rate: int, limits: DecodeLimits) -> np.ndarray:
    """Decode audio from outside (an upload) as float32 mono at ``target_sample_rate`` within ``limits``.

    The header's channels, sample rate and length are checked before any decoding; then the file is
    decoded, mixed down and resampled block by block while a running count of decoded samples stops a
    header that lies about its length. NaN or infinite samples are refused (they would come out as a
    transcript of garbage).
    """
    try:
        sound = soundfile.SoundFile(file)
    except Exception as e:
        raise AudioError(f"unreadable audio ({_short(e)})") from e
    with sound:
        channels, sample_rate, frames = sound.channels, sound.samplerate, sound.frames
        if channels > limits.max_channels:
            raise AudioTooLarge(f"audio has {channels} channels, the limit is {limits.max_channels} (--max_channels)")
        if sample_rate > limits.max_sample_rate:
            raise AudioTooLarge(f"audio sample rate {sample_rate} Hz, the limit is {limits.max_sample_rate} Hz "
                                f"(--max_sample_rate)")
        if frames <= 0 or sample_rate <= 0:
            raise AudioError("audio has no samples")
        if frames >= UNKNOWN_FRAMES:  # libsndfile's SF_COUNT_MAX: e.g. a FLAC whose header has no length
            raise AudioError("the audio header gives no length (an unfinished recording?)")
        _check_length(frames, channels, sample_rate, limits)
        import soxr

        resampler = soxr.ResampleStream(sample_rate, target_sample_rate, 1, dtype="float32") \
            if sample_rate != target_sample_rate else None
        parts, decoded = [], 0
        try:
            for block in sound.blocks(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
                decoded += block.shape[0]
                _check_length(decoded, channels, sample_rate, limits)
                if not np.isfinite(block).all():
                    raise AudioError("audio has NaN or infinite samples")
                mono = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0]
                parts.append(resampler.resample_chunk(mono) if resampler else mono.copy())
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"unreadable audio ({_short(e)})") from e
    if resampler:
        parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    if decoded == 0:
        raise AudioError("audio has no samples")
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _check_length(frames: int, channels: int, sample_rate: int, limits: DecodeLimits) -> None:
    if frames / sample_rate > limits.max_seconds:
        raise AudioTooLarge(f"audio is {frames / sample_rate:.0f} s long, the limit is {limits.max_seconds:.0f} s "
                            f"(--max_audio_seconds)")
    if frames * channels > limits.max_samples:
        raise AudioTooLarge(f"audio decodes to {frames * channels} samples (frames x channels), the limit is "
                            f"{limits.max_samples} (--max_decoded_samples)")


def resample(samples: np.ndarray, sample_rate: int, target_sample_rate: int) -> np.ndarray:
    """High-quality resampling (soxr)."""
    if sample_rate == target_sample_rate:
        return samples
    import soxr

    return soxr.resample(samples, sample_rate, target_sample_rate).astype(np.float32)


def rms_db(samples: np.ndarray) -> float:
    """Root-mean-square level in dBFS (PPASR's definition)."""
    mean_square = np.mean(samples ** 2)
    return float(10 * np.log10(mean_square)) if mean_square > 0 else -np.inf


def normalize_gain(samples: np.ndarray, target_db: float = -20.0, max_gain_db: float = 300.0) -> float:
    """Linear factor that brings ``samples`` to ``target_db`` dBFS RMS (1 for digital silence)."""
    level = rms_db(samples)
    if not np.isfinite(level):
        return 1.0
    return float(10.0 ** (min(max_gain_db, target_db - level) / 20.0))


def normalize_db(samples: np.ndarray, target_db: float = -20.0, max_gain_db: float = 300.0) -> np.ndarray:
    """Scale to ``target_db`` dBFS RMS, as PPASR's ``AudioSegment.normalize``.

    Digital silence cannot be normalised and is returned unchanged.
    """
    gain = normalize_gain(samples, target_db, max_gain_db)
    return samples if gain == 1.0 else samples * np.float32(gain)


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
