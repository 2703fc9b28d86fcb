"""Timestamp accuracy against the truth: demo test sentences spoken by eSpeak NG, whose word events give
the time each syllable (= character) starts, recognised by an exported model.

eSpeak reports its first word at position 0, before the pause it speaks first; that character's true
start is taken as the first 10 ms frame within 26 dB of the utterance's loudest one, when that is later.

Per decoder, for the times at the model's CTC spikes and at the syllable onsets that
``ppasr.serve.syllables`` moves them to (what infer_path.py and the server report), and per unit: the
words (jieba's segmentation of the reference; a word's start is its first character's) and the
characters whose recognised start could be compared (a hypothesis character aligned to an equal
reference character), the mean absolute error of their start times, its median and 90th percentile,
and the mean signed error (positive: the model places them late).

    python3 bench/bench_timestamps.py --model_dir demo_run/models/deepspeech2/infer \
        --lang_model_path demo_run/lm/demo.arpa
"""
from __future__ import annotations

import argparse
import ctypes
import difflib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.decode.options import DecodeOptions  # noqa: E402
from ppasr.decode.text_decoder import build_decoder, decode_one  # noqa: E402
from ppasr.demo.espeak import EspeakLibrary, open_engine  # noqa: E402
from ppasr.demo.synth import SAMPLE_RATE, plan_utterances, sample_sentences  # noqa: E402
from ppasr.serve.infer import Predictor, transcript  # noqa: E402

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _Event(ctypes.Structure):
    """eSpeak NG's ``espeak_EVENT`` (speak_lib.h)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]


class WordEvents(EspeakLibrary):
    """The library engine, also keeping the audio position (ms) of every word event it reports."""

    def __init__(self, library: str, data: str) -> None:
        super().__init__(library, data)
        self.word_ms: list[int] = []

    def _collect(self, wav, count: int, events: int) -> int:
        if events:
            array = ctypes.cast(events, ctypes.POINTER(_Event))
            i = 0
            while array[i].type != _EVENT_LIST_TERMINATED:
                if array[i].type == _EVENT_WORD:
                    self.word_ms.append(array[i].audio_position)
                i += 1
        return super()._collect(wav, count, events)


def speak(engine: WordEvents, utterance) -> tuple[np.ndarray, list[float]]:
    """16 kHz float samples of ``utterance`` (the demo's voice, rate, pitch, level, padding and noise, not
    trimmed) and the true start (ms) of each of its syllables."""
    import soxr

    engine.word_ms = []
    raw, rate = engine.synthesize(utterance.speech, utterance.voice, utterance.rate, utterance.pitch, utterance.seed)
    audio = raw.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    audio = audio * (utterance.gain / np.max(np.abs(audio)))
    lead = round(utterance.lead * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(round(utterance.trail * SAMPLE_RATE),
                                                                      np.float32)])
    audio = audio + np.random.default_rng(utterance.seed).standard_normal(len(audio)).astype(np.float32) * \
        10 ** (utterance.noise_db / 20)
    truth = [1000.0 * lead / SAMPLE_RATE + ms for ms in engine.word_ms]
    frame = SAMPLE_RATE // 100
    rms = np.sqrt(np.mean(audio[:len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    onset = 10.0 * np.flatnonzero(rms > rms.max() * 10 ** (-26 / 20))[0]
    if truth:
        truth[0] = max(truth[0], onset)
    return audio, truth


def start_errors(reference: str, truth: list[float], units) -> dict[int, float]:
    """Signed start-time errors (ms) of the recognised characters that align to equal reference ones, by
    the reference character's index."""
    hypothesis = "".join(u.text for u in units)
    matcher = difflib.SequenceMatcher(None, reference, hypothesis, autojunk=False)
    errors = {}
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            errors[a + k] = units[b + k].start_ms - truth[a + k]
    return errors


def word_starts(sentence: str) -> set[int]:
    """Indices of the characters that begin a word (jieba's segmentation)."""
    import jieba

    starts, at = set(), 0
    for word in jieba.cut(sentence):
        starts.add(at)
        at += len(word)
    return starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default="demo_run/models/deepspeech2/infer")
    parser.add_argument("--lang_model_path", default=None, help="also LM beam search with this LM")
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--split", default="test", choices=["test", "unseen"])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    predictor = Predictor(args.model_dir, use_gpu=False)
    decoders = {"greedy": DecodeOptions(),
                "beam 10, no LM": DecodeOptions(decoder="ctc_beam_search", lang_model_path=None)}
    if args.lang_model_path:
        decoders["beam 10, LM"] = DecodeOptions(decoder="ctc_beam_search", lang_model_path=args.lang_model_path,
                                               alpha=1.1513, beta=1.5)
    methods = ("CTC spikes", "syllables")
    errors: dict[tuple[str, str, str], list[float]] = {(name, method, unit): [] for name in decoders
                                                       for method in methods for unit in ("word", "char")}
    built = {name: build_decoder(options, predictor.vocabulary) for name, options in decoders.items()}
    sentences = sample_sentences(args.sentences, seed=args.seed, split=args.split)
    with open_engine("library") as config:
        engine = WordEvents(config.path, config.data)
        plans = plan_utterances(sentences, [""] * len(sentences), args.seed, "zh", args.split, engine.variants())
        used = 0
        for plan in plans:
            samples, truth = speak(engine, plan)
            if len(truth) != len(plan.text):  # one word event per syllable, or the truth is unknown
                continue
            used += 1
            words = word_starts(plan.text)
            probs = predictor.probabilities(samples, SAMPLE_RATE)
            for name, decoder in built.items():
                hypothesis = decode_one(decoder, probs)
                for method, audio in zip(methods, (None, samples)):
                    units = transcript(predictor, hypothesis, to_an=False, samples=audio).timestamps
                    found = start_errors(plan.text, truth, units)
                    errors[name, method, "char"].extend(found.values())
                    errors[name, method, "word"].extend(error for index, error in found.items() if index in words)
    reference_chars = sum(len(p.text) for p in plans)
    print(f"{used} of {len(plans)} {args.split} sentences ({reference_chars} characters), model {args.model_dir}, "
          f"output frame {predictor.frame_ms:g} ms")
    print(f"| {'decoder':<15} | {'starts at':<10} | unit | timed | MAE start ms | median ms | p90 ms | mean signed ms |")
    print(f"|{'-' * 17}|{'-' * 12}|------|-------|--------------|-----------|--------|----------------|")
    for (name, method, unit), values in errors.items():
        e = np.array(values)
        print(f"| {name:<15} | {method:<10} | {unit:<4} | {len(e):>5} | {np.abs(e).mean():>12.1f} | "
              f"{np.median(np.abs(e)):>9.1f} | {np.percentile(np.abs(e), 90):>6.1f} | {e.mean():>14.1f} |")
    for decoder in built.values():
        decoder.close()


if __name__ == "__main__":
    main()
