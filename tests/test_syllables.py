"""Timestamps snapped to syllable onsets (ppasr/serve/syllables.py), on real eSpeak NG speech whose
syllable starts are known exactly: each character synthesised alone, trimmed, and joined with short
gaps at recorded offsets. The CTC times a forward-only model gives are imitated from the truth: late
by a lag, and one phrase emitted in a burst."""
from __future__ import annotations

import numpy as np
import pytest

from ppasr.decode.hypothesis import Timestamp
from ppasr.demo.espeak import create_engine, open_engine, to_pinyin
from ppasr.serve.syllables import assign, between_onsets, energy_db, snap_to_syllables, syllable_onsets

RATE = 16000
SENTENCE = "请把客厅的空调温度调到二十六度"


@pytest.fixture(scope="module")
def spoken() -> tuple[np.ndarray, list[float]]:
    """The sentence as 16 kHz samples (0.3 s of quiet noise first) and each character's true start (ms)."""
    import soxr

    rng = np.random.default_rng(5)
    pieces, starts = [np.zeros(int(0.3 * RATE), np.float32)], []
    with open_engine("auto") as config:
        engine = create_engine(config)
        for char in SENTENCE:
            raw, rate = engine.synthesize(to_pinyin(char), "cmn-latn-pinyin", 160, 50, 0)
            audio = soxr.resample(raw.astype(np.float32) / 32768.0, rate, RATE)
            loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
            starts.append(1000.0 * sum(len(p) for p in pieces) / RATE)
            pieces.append(audio[loud[0]:loud[-1] + 1])
            pieces.append(np.zeros(int(rng.uniform(0.0, 0.06) * RATE), np.float32))
    samples = np.concatenate(pieces + [np.zeros(int(0.3 * RATE), np.float32)])
    samples += np.random.default_rng(6).standard_normal(len(samples)).astype(np.float32) * 1e-3
    return samples, starts


def ctc_like(starts: list[float], lag: float, burst: bool = True) -> list[Timestamp]:
    """Each character at its start plus ``lag``; characters 4-7 (空调温度) in a burst 60 ms apart."""
    times = [s + lag for s in starts]
    if burst:
        times[4:8] = [times[7] - 60 * (7 - k) for k in range(4, 8)]
    return [Timestamp(c, round(t), round(t) + 40) for c, t in zip(SENTENCE, times)]


@pytest.mark.parametrize("lag", [100.0, 250.0, 400.0])
def test_characters_start_at_their_syllables_whatever_the_models_lag(spoken, lag):
    samples, truth = spoken
    units = ctc_like(truth, lag)
    snapped = snap_to_syllables(units, samples, RATE)
    before = np.abs(np.array([u.start_ms for u in units]) - truth).mean()
    after = np.abs(np.array([u.start_ms for u in snapped]) - truth)
    assert before > lag * 0.8 and after.mean() < 40, (before, after)
    assert [u.text for u in snapped] == list(SENTENCE)
    starts = [u.start_ms for u in snapped]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    duration = 1000 * len(samples) / RATE
    assert all(u.start_ms < u.end_ms <= duration for u in snapped)
    assert all(a.end_ms <= b.start_ms for a, b in zip(snapped, snapped[1:]))


@pytest.mark.parametrize("lag", [150.0, 250.0])
def test_characters_the_model_missed_leave_their_syllables_out(spoken, lag):
    samples, truth = spoken
    units = ctc_like(truth, lag, burst=False)
    missed = units[:-3]  # 十六度 not recognised (yet): their syllables are in the audio
    snapped = snap_to_syllables(missed, samples, RATE)
    error = np.abs(np.array([u.start_ms for u in snapped]) - truth[:-3])
    assert error.mean() < 60, error


def test_segment_offsets_shift_the_result(spoken):
    samples, truth = spoken
    alone = snap_to_syllables(ctc_like(truth, 150.0), samples, RATE)
    shifted = snap_to_syllables(ctc_like([t + 5000 for t in truth], 150.0), samples, RATE, offset_ms=5000)
    assert [(u.start_ms + 5000, u.end_ms + 5000) for u in alone] == [(u.start_ms, u.end_ms) for u in shifted]


def test_words_numbers_and_silence_keep_the_ctc_times(spoken):
    samples, truth = spoken
    english = [Timestamp("turn", 100, 300), Timestamp("on", 400, 500)]
    assert snap_to_syllables(english, samples, RATE) == english
    number = ctc_like(truth, 150.0)[:3] + [Timestamp("26", 2000, 2400)]
    assert snap_to_syllables(number, samples, RATE) == number
    quiet = ctc_like(truth, 150.0)
    assert snap_to_syllables(quiet, np.zeros(RATE, np.float32), RATE) == quiet
    assert snap_to_syllables([], samples, RATE) == []


def test_assignment_leaves_out_onsets_only_at_a_price():
    onsets = np.array([0.0, 200.0, 400.0, 600.0, 800.0])
    # three characters late and bunched: they take three consecutive onsets, the certain ones kept in order
    assert assign(np.array([560.0, 600.0, 640.0]), onsets, np.ones(5)).tolist() == [2, 3, 4]
    # a certain onset (a deep dip) is kept even where the time is nearer an uncertain one (a shallow dip)
    certainty = np.array([1.0, 1.0, 0.05, 1.0, 1.0])
    assert assign(np.array([0.0, 200.0, 450.0, 800.0]), onsets, certainty).tolist() == [0, 1, 3, 4]
    assert assign(np.array([0.0, 200.0, 450.0, 800.0]), onsets, np.ones(5)).tolist() == [0, 1, 2, 4]


def test_a_syllable_after_silence_starts_at_the_foot_of_its_rise():
    """A voiced syllable fading in over 100 ms (50 dB) after 0.5 s of quiet: it crosses the speech
    threshold (26 dB below the loudest frame) about half-way up, 50 ms late, but began where the rise
    did (a frame's time is its 25 ms window's start, so the foot may read up to 50 ms early)."""
    t = np.arange(int(1.0 * RATE)) / RATE
    ramp = np.clip((t - 0.5) / 0.1, 0.0, 1.0)
    envelope = np.where(t < 0.5, 0.0, 10 ** (-2.5 * (1.0 - ramp))) * (t < 0.8)
    voiced = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 20))
    samples = (0.3 * envelope * voiced + 1e-5 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    onsets, certainty = syllable_onsets(energy_db(samples, RATE))
    assert len(onsets) == 1 and certainty[0] == 1.0
    assert 450.0 <= onsets[0] <= 510.0, onsets


def test_more_characters_than_onsets_the_others_still_snap():
    onsets, certainty = np.array([0.0, 200.0, 400.0, 600.0]), np.ones(4)
    # five characters, four syllables: the extra one keeps its own time, the rest take the onsets
    assert between_onsets(np.array([20.0, 230.0, 310.0, 420.0, 590.0]), onsets, certainty).tolist() == \
        [0.0, 200.0, 310.0, 400.0, 600.0]


def test_inserted_characters_leave_the_real_ones_on_their_syllables(spoken):
    samples, truth = spoken
    units = ctc_like(truth, 150.0)
    # the model repeats 客 and 温 (客客, 温温), and emits 空调温度 in a burst: more characters than syllables
    extra = [Timestamp(units[2].text, units[2].start_ms + 60, units[2].end_ms + 60),
             Timestamp(units[6].text, units[6].start_ms + 60, units[6].end_ms + 60)]
    stuttered = units[:3] + extra[:1] + units[3:7] + extra[1:] + units[7:]
    snapped = snap_to_syllables(stuttered, samples, RATE)
    real = [u for k, u in enumerate(snapped) if k not in (3, 8)]
    error = np.abs(np.array([u.start_ms for u in real]) - truth)
    assert error.mean() < 40, error
    starts = [u.start_ms for u in snapped]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
