"""Chinese characters' start times moved from the model's CTC spikes to the syllable onsets in the audio.

A streaming (forward-only) CTC model emits a character once it has heard enough of it, typically
100-250 ms after the syllable began, and a model that has memorised phrases emits some of them in a
burst. Every Chinese character is one syllable, and syllables are separated by dips of the signal's
energy, so the audio itself says where characters can start. This module finds those onsets (energy
valleys and the starts of speech after silence) and assigns the recognised characters to them in
order with a dynamic programme: each character goes to an onset near its spike time shifted back by
the model's lag (estimated per utterance, so no constant tuned to one model), and leaving out a clear
onset costs as much as a large time error. The CTC path keeps deciding which characters there are and
roughly when; the audio decides exactly where each one starts. Ends: the next character's start, or
where a pause (150 ms of silence) begins if sooner.
"""
from __future__ import annotations

import numpy as np

from ppasr.data.text import is_cjk
from ppasr.decode.hypothesis import Timestamp

HOP_MS = 10
WINDOW_MS = 25
SPEECH_RANGE_DB = 26.0  # frames within this of the loudest are speech
MIN_RANGE_DB = 10.0  # a signal whose loudness varies less has no syllables to find
VALLEY_PROMINENCE_DB = 3.0  # an energy dip at least this deep separates two syllables
FULL_VALLEY_DB = 20.0  # a dip this deep (or a start after silence) is a certain syllable boundary
MIN_PAUSE_MS = 150  # a character ends where a silence this long begins
MERGE_MS = 80  # onsets closer than this are one (no Mandarin syllable is shorter)
RISE_DB = 0.5  # a frame this much quieter than the next is still part of the rise that starts speech ...
MAX_RISE_MS = 100  # ... for at most this long before the threshold is crossed
MISS_COST_MS = 300.0  # a character's time error counts at most this much ...
SKIP_COST_MS = 300.0  # ... and leaving out a certain boundary costs this much
MAX_CELLS = 4_000_000  # characters x onsets: longer unsplit audio keeps the CTC times


def energy_db(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log energy (dB) of 10 ms frames, 100 Hz - 5 kHz, lightly smoothed."""
    hop, window = sample_rate * HOP_MS // 1000, sample_rate * WINDOW_MS // 1000
    if len(samples) < window:
        return np.zeros(0)
    count = 1 + (len(samples) - window) // hop
    n_fft = 1 << (window - 1).bit_length()
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float32), window)[::hop][:count]
    power = np.abs(np.fft.rfft(frames * np.hanning(window), n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = power[:, (freqs >= 100) & (freqs <= 5000)].sum(axis=1)
    return np.convolve(np.pad(10.0 * np.log10(band + 1e-10), 1, mode="edge"), np.ones(3) / 3, mode="valid")


def speech_frames(energy: np.ndarray) -> np.ndarray:
    """Which frames are speech: within ``SPEECH_RANGE_DB`` of the loudest."""
    return energy > energy.max() - SPEECH_RANGE_DB


def rise_foot(energy: np.ndarray, frame: int) -> int:
    """Where the rise that crosses the speech threshold at ``frame`` began: a syllable after silence
    is only within ``SPEECH_RANGE_DB`` of the loudest frame once its vowel sounds, but its (quieter)
    consonant started at the foot of that rise."""
    foot = frame
    while foot > 0 and (frame - foot) * HOP_MS < MAX_RISE_MS and energy[foot - 1] < energy[foot] - RISE_DB:
        foot -= 1
    return foot


def syllable_onsets(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate syllable onsets (ms) and how certain each is (0-1): energy valleys within speech
    (certainty by depth) and the foot of every rise into speech after silence (certain)."""
    from scipy.signal import find_peaks

    if energy.size == 0 or energy.max() - energy.min() < MIN_RANGE_DB:  # silence, a steady tone: no syllables
        return np.zeros(0), np.zeros(0)
    threshold = energy.max() - SPEECH_RANGE_DB
    speech = speech_frames(energy)
    found: dict[int, float] = {}
    valleys, properties = find_peaks(-energy, prominence=VALLEY_PROMINENCE_DB)
    for frame, depth in zip(valleys, properties["prominences"]):
        if energy[frame] > threshold - 10:
            found[int(frame)] = min(float(depth), FULL_VALLEY_DB) / FULL_VALLEY_DB
    starts = {int(frame) for frame in np.flatnonzero(speech & ~np.concatenate([[False], speech[:-1]]))}
    found.update(dict.fromkeys(starts, 1.0))
    onsets: list[list[float]] = []  # [frame, certainty], merged where the threshold is crossed ...
    for frame in sorted(found):
        if onsets and (frame - onsets[-1][0]) * HOP_MS < MERGE_MS:
            onsets[-1][1] = max(onsets[-1][1], found[frame])  # keep the earlier time, the surer weight
        else:
            onsets.append([frame, found[frame]])
    for k, (frame, _) in enumerate(onsets):  # ... then a start of speech is timed at the foot of its rise
        if frame in starts:
            onsets[k][0] = max(rise_foot(energy, frame), onsets[k - 1][0] + 1 if k else 0)
    table = np.array(onsets, dtype=float).reshape(-1, 2)
    return table[:, 0] * HOP_MS, table[:, 1]


def model_lag(spikes: np.ndarray, onsets: np.ndarray) -> float:
    """How long after a syllable's onset this model emits it: the median distance from each spike
    back to the nearest onset before it (a lag longer than a syllable would read as a shorter one)."""
    before = np.searchsorted(onsets, spikes, side="right") - 1
    lags = (spikes - onsets[np.maximum(before, 0)])[before >= 0]
    return float(np.median(lags)) if lags.size else 0.0


def assign(targets: np.ndarray, onsets: np.ndarray, certainty: np.ndarray,
           price: np.ndarray | None = None) -> np.ndarray:
    """Indices of strictly increasing onsets, one per target time, minimising the capped distances plus
    the cost of the onsets passed over (by certainty) and the ``price`` of each onset taken (default 0)."""
    n, m = len(targets), len(onsets)
    cost = np.minimum(np.abs(onsets[None, :] - targets[:, None]), MISS_COST_MS)
    if price is not None:
        cost = cost + price[None, :]
    skipped = SKIP_COST_MS * np.concatenate([[0.0], np.cumsum(certainty)])  # cost of onsets [0, j)
    positions = np.arange(m)
    total = cost[0] + skipped[:m]
    back = np.zeros((n, m), dtype=np.int64)
    for i in range(1, n):
        # previous character at j' < j: total[j'] + cost of the onsets strictly between j' and j
        base = total - skipped[1:]
        best = np.minimum.accumulate(base)
        lower = np.concatenate([[True], base[1:] < best[:-1]])  # ties keep the earlier onset
        where = np.maximum.accumulate(np.where(lower, positions, 0))
        new = np.full(m, np.inf)
        new[1:] = best[:-1] + skipped[1:m] + cost[i, 1:]
        back[i, 1:] = where[:-1]
        total = new
    j = int(np.argmin(total + skipped[m] - skipped[1:]))
    chosen = np.zeros(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        chosen[i] = j
        j = back[i, j]
    return chosen


def between_onsets(targets: np.ndarray, onsets: np.ndarray, certainty: np.ndarray) -> np.ndarray:
    """Start times when the audio shows fewer onsets than there are characters (syllables run together):
    a character may also start at its own target, between onsets, at the price of a full miss, so the
    others still take the onsets that fit them."""
    own = np.setdiff1d(targets, onsets)  # sorted, distinct, none at an onset's time
    if len(onsets) + len(own) < len(targets):  # characters at the very same time: nothing to snap to
        return targets
    order = np.argsort(np.concatenate([onsets, own]))
    times = np.concatenate([onsets, own])[order]
    weights = np.concatenate([certainty, np.zeros(len(own))])[order]
    price = np.concatenate([np.zeros(len(onsets)), np.full(len(own), MISS_COST_MS)])[order]
    return times[assign(targets, times, weights, price)]


def pause_starts(speech: np.ndarray) -> np.ndarray:
    """Where (ms) each pause of at least ``MIN_PAUSE_MS`` begins (shorter silences are stop closures)."""
    edges = np.diff(np.concatenate([[1], speech.astype(np.int8), [1]]))
    begins, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return begins[(ends - begins) * HOP_MS >= MIN_PAUSE_MS] * float(HOP_MS)


def snap_to_syllables(units: list[Timestamp], samples: np.ndarray, sample_rate: int,
                      offset_ms: float = 0.0) -> list[Timestamp]:
    """``units`` (times in the recording, ``samples`` starting at ``offset_ms``) with each Chinese
    character's start at its syllable onset. Unchanged when any unit is not a single Chinese character
    (English words, converted numbers)."""
    if not units or not all(len(u.text) == 1 and is_cjk(u.text) for u in units):
        return list(units)
    energy = energy_db(samples, sample_rate)
    onsets, certainty = syllable_onsets(energy)
    if onsets.size == 0 or len(onsets) * len(units) > MAX_CELLS:
        return list(units)
    spikes = np.array([u.start_ms - offset_ms for u in units], dtype=float)
    targets = np.maximum(spikes - model_lag(spikes, onsets), 0.0)
    starts = onsets[assign(targets, onsets, certainty)] if len(onsets) >= len(units) else \
        between_onsets(targets, onsets, certainty)
    pauses = pause_starts(speech_frames(energy))
    out = []
    for i, unit in enumerate(units):
        pause = pauses[pauses > starts[i]]
        end = min(starts[i + 1] if i + 1 < len(units) else np.inf,
                  pause[0] if pause.size else len(energy) * HOP_MS)
        end = max(end, starts[i] + HOP_MS)
        out.append(Timestamp(unit.text, round(offset_ms + starts[i]), round(offset_ms + end)))
    return out
