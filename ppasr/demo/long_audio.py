"""Long synthesised recordings with known pauses: the truth a voice activity detector is measured against."""
from __future__ import annotations

import numpy as np

from ppasr.demo.espeak import create_engine, open_engine
from ppasr.demo.synth import SAMPLE_RATE, colored_noise, plan_utterances, render, sample_sentences


def long_recording(num_utterances: int, seed: int = 0, pause_s: tuple[float, float] = (0.6, 2.0),
                   snr_db: float | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Test-split utterances joined by pauses drawn from ``pause_s``, optionally under pink noise at ``snr_db``
    (relative to the speech's RMS). Returns float samples at 16 kHz and each utterance's speech as a
    (start, end) sample range: the rendered clip minus the silence ``render`` padded it with."""
    rng = np.random.default_rng(seed)
    sentences = sample_sentences(num_utterances, seed, "zh", "demo", "test")
    parts, truth, offset = [], [], 0
    with open_engine() as config:
        engine = create_engine(config)
        plans = plan_utterances(sentences, [""] * num_utterances, seed, "zh", "test", engine.variants())
        for plan in plans:
            pause = np.zeros(round(rng.uniform(*pause_s) * SAMPLE_RATE), dtype=np.float32)
            clip = render(plan, engine).astype(np.float32) / 32768.0
            parts += [pause, clip]
            offset += len(pause)
            truth.append((offset + round(plan.lead * SAMPLE_RATE), offset + len(clip) - round(plan.trail * SAMPLE_RATE)))
            offset += len(clip)
    parts.append(np.zeros(round(pause_s[1] * SAMPLE_RATE), dtype=np.float32))
    samples = np.concatenate(parts)
    if snr_db is not None:
        speech = np.concatenate([samples[a:b] for a, b in truth])
        noise = colored_noise(len(samples), 1.0, rng)
        noise *= np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
        samples = np.clip(samples + noise, -1.0, 1.0).astype(np.float32)
    return samples, truth


def score_segments(found: list[tuple[int, int]], truth: list[tuple[int, int]]) -> tuple[list[float], int, int, int]:
    """Boundary errors (ms), missed, false and merged counts of ``found`` segments against ``truth``."""
    def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    errors, missed = [], 0
    for utterance in truth:
        touching = [s for s in found if overlaps(s, utterance)]
        if not touching:
            missed += 1
            continue
        errors += [abs(touching[0][0] - utterance[0]) * 1000 / SAMPLE_RATE,
                   abs(touching[-1][1] - utterance[1]) * 1000 / SAMPLE_RATE]
    false = sum(not any(overlaps(s, u) for u in truth) for s in found)
    merged = sum(sum(overlaps(s, u) for u in truth) > 1 for s in found)
    return errors, missed, false, merged
