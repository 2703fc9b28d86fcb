"""Energy-based splitting of long audio on silence (for infer_path.py --is_long_audio)."""
from __future__ import annotations

import numpy as np


def split_on_silence(samples: np.ndarray, sample_rate: int, frame_ms: float = 30.0, min_silence_ms: float = 300.0,
                     max_segment_s: float = 30.0, threshold_db: float = -35.0) -> list[tuple[int, int]]:
    """Return (start, end) sample ranges of speech, cut where silence lasts ``min_silence_ms``.

    A frame is silent when its RMS is ``threshold_db`` below the clip's loudest frames (95th
    percentile), so the split adapts to the recording level. Segments longer than
    ``max_segment_s`` are cut at their quietest frame.
    """
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n_frames = len(samples) // frame
    if n_frames == 0:
        return [(0, len(samples))] if len(samples) else []
    frames = samples[:n_frames * frame].reshape(n_frames, frame).astype(np.float64)
    energy_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    voiced = energy_db > np.percentile(energy_db, 95) + threshold_db
    min_silence = max(1, int(min_silence_ms / frame_ms))
    segments, start, silent_run = [], None, 0
    for i, is_voiced in enumerate(voiced):
        if is_voiced:
            if start is None:
                start = i
            silent_run = 0
        elif start is not None:
            silent_run += 1
            if silent_run >= min_silence:
                segments.append((start, i - silent_run + 1))
                start, silent_run = None, 0
    if start is not None:
        segments.append((start, n_frames - silent_run))
    max_frames = max(1, int(max_segment_s * 1000 / frame_ms))
    pad = min_silence // 2
    result = []
    for begin, end in segments:
        while end - begin > max_frames:
            window = energy_db[begin + max_frames // 2:begin + max_frames]
            cut = begin + max_frames // 2 + int(np.argmin(window))
            result.append((begin, cut))
            begin = cut
        result.append((begin, end))
    return [(max(0, b - pad) * frame, min(n_frames, e + pad) * frame) for b, e in result]
