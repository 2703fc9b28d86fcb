"""Synthetic demo corpus: template-grammar sentences spoken by eSpeak NG.

Sentences come from small data-driven grammars (word lists plus ``{slot}`` templates) for
smart-home / assistant commands, in Mandarin or English, in a compact ``demo`` flavour (about a
hundred distinct Hanzi, short sentences) or a richer ``full`` one. Each sentence is spoken by
eSpeak NG with a voice variant, speaking rate and pitch drawn per utterance from a seeded RNG,
then trimmed, resampled to 16 kHz, padded with a little silence and dithered.

A corpus is one of three splits (``SPLITS``). ``train`` and ``test`` share voices, rates, pitches
and templates; ``unseen`` is spoken by voice variants, and says sentence templates, that ``train``
never uses, at rates and pitches partly outside its ranges: it measures whether a model learned
Mandarin or the training voices. Every sentence belongs either to training or to testing
(``is_test_sentence``), so no test sentence can occur in any training corpus, whatever the sizes
and seeds.

Mandarin is spoken from tone-numbered pinyin with the ``cmn-latn-pinyin`` voice: the plain
``cmn`` voice reads many characters as pinyin letters with the tone digit said in English
(哪儿 -> "na three ... five"), which would teach a recogniser the wrong sounds.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ppasr.demo.espeak import Engine, EngineConfig, EspeakError, create_engine, open_engine, speech_text
from ppasr.demo.grammar import LANGUAGES, get_grammar
from ppasr.demo.kokoro import SPEAKERS as KOKORO_SPEAKERS, SPEEDS as KOKORO_SPEEDS, KokoroEngine
from ppasr.errors import UserError


SAMPLE_RATE = 16000

GAIN_RANGE = (0.3, 0.9)  # peak level after normalisation
PAD_RANGE = (0.05, 0.3)  # seconds of silence added before and after the speech
NOISE_DB_RANGE = (-66.0, -54.0)  # dither level, dBFS (RMS)
VOICES = {"zh": ("cmn-latn-pinyin",), "en": ("en-us", "en")}

# eSpeak NG's voice variants (espeak-ng-data/voices/!v), both synthesisers (formant and klatt).
# Held out for the ``unseen`` split: whole families of near-identical files (Gene*, iven*, steph*,
# edward*) and single variants of every kind (male, female, klatt, echo, short syllables), chosen
# before any model was evaluated on them. Unvoiced (whispering) variants are used by no split:
# whispered Mandarin has no pitch, so it has no tones.
HELD_OUT_VARIANTS = ("Annie", "Denis", "Gene", "Gene2", "Reed", "RicishayMax2", "david", "ed", "edward",
                     "edward2", "grandma", "iven", "iven2", "iven3", "iven4", "klatt3", "quincy", "robert",
                     "steph", "steph2", "steph3", "travis")
UNVOICED_VARIANTS = ("caleb", "whisper", "whisperf")
TRAIN_VARIANTS = ("Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Demonic", "Diogo", "Henrique", "Hugo",
                  "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Mr serious", "Nguyen", "RicishayMax",
                  "RicishayMax3", "Storm", "Tweaky", "UniRobot", "adam", "anika", "anikaRobot", "announcer",
                  "antonio", "aunty", "belinda", "benjamin", "boris", "croak", "f1", "f2", "f3", "f4", "f5",
                  "fast", "grandpa", "gustave", "ian", "john", "kaukovalta", "klatt", "klatt2", "klatt4",
                  "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo",
                  "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "rob", "robosoft",
                  "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8",
                  "sandro", "shelby", "victor", "zac")


@dataclass(frozen=True)
class Split:
    """Who speaks a split and what they say."""

    variants: tuple[str, ...]
    rates: tuple[int, int]  # espeak words per minute (a Mandarin syllable counts as a word)
    pitches: tuple[int, int]  # espeak base pitch, 0-99 (50 is the voice's default)
    held_out_templates: bool  # the grammar's held-out templates instead of its training ones


SPLITS = {
    "train": Split(TRAIN_VARIANTS, (110, 200), (20, 80), held_out_templates=False),
    "test": Split(TRAIN_VARIANTS, (110, 200), (20, 80), held_out_templates=False),
    "unseen": Split(HELD_OUT_VARIANTS, (140, 220), (10, 90), held_out_templates=True),
}
TEST_SENTENCE_SHARE = 10  # one sentence in this many is reserved for the test splits


def is_test_sentence(sentence: str) -> bool:
    """Whether a sentence belongs to the test splits (a fixed hash: the same on every machine)."""
    return zlib.crc32(sentence.encode("utf-8")) % TEST_SENTENCE_SHARE == 0


def sample_sentences(num_samples: int, seed: int = 0, language: str = "zh",
                     grammar: str = "demo", split: str = "train") -> list[str]:
    """The sentences ``generate_corpus`` speaks for this seed and split, in order (utterance 1 first).

    ``train`` says only training sentences, ``test`` and ``unseen`` only test sentences
    (``is_test_sentence``).
    """
    wanted = split != "train"
    return get_grammar(language, grammar, SPLITS[split].held_out_templates).sample(
        num_samples, np.random.default_rng(seed), lambda sentence: is_test_sentence(sentence) == wanted)


# --------------------------------------------------------------------------- utterances


@dataclass(frozen=True)
class SynthesisPlan:
    """Everything needed to render one audio file; drawn in the parent, rendered anywhere."""

    path: str
    text: str
    speech: str
    voice: str
    rate: int
    pitch: int
    gain: float
    lead: float
    trail: float
    noise_db: float
    seed: int
    engine: str = "espeak"  # or "kokoro": then ``voice`` is a Kokoro speaker and ``rate`` its speed in percent


ENGINES = ("espeak", "kokoro", "mixed")
KOKORO_SHARE = 0.5  # of a mixed corpus


def plan_utterances(sentences: Sequence[str], paths: Sequence[str], seed: int, language: str,
                    split: str, installed: set[str], engine: str = "espeak") -> list[SynthesisPlan]:
    """Per-utterance voice and signal parameters, each from its own ``(seed, split, index)`` RNG.

    eSpeak voices are the split's variants that ``installed`` (the engine's variant names) has; Kokoro
    speakers are the split's (:data:`ppasr.demo.kokoro.SPEAKERS`). ``mixed`` draws the engine per utterance
    from a separate RNG, so the eSpeak utterances of a seed are the same whatever the engine.
    """
    spec = SPLITS[split]
    variants = [v for v in spec.variants if v in installed]
    if not variants and engine != "kokoro":
        raise EspeakError(f"eSpeak NG has none of the voice variants of the {split!r} split")
    if engine != "espeak" and language != "zh":
        raise UserError("the Kokoro voices speak Mandarin only (--language=zh)")
    plans = []
    for index, (sentence, path) in enumerate(zip(sentences, paths, strict=True)):
        rng = np.random.default_rng([seed, list(SPLITS).index(split), index])
        neural = engine == "kokoro" or (engine == "mixed" and np.random.default_rng(
            [seed, list(SPLITS).index(split), index, 1]).random() < KOKORO_SHARE)
        if neural:
            speakers = KOKORO_SPEAKERS[split]
            plans.append(SynthesisPlan(
                path=path, text=sentence, speech=sentence, voice=speakers[int(rng.integers(len(speakers)))],
                rate=int(round(100 * rng.uniform(*KOKORO_SPEEDS[split]))), pitch=0,
                gain=float(rng.uniform(*GAIN_RANGE)), lead=float(rng.uniform(*PAD_RANGE)),
                trail=float(rng.uniform(*PAD_RANGE)), noise_db=float(rng.uniform(*NOISE_DB_RANGE)),
                seed=int(rng.integers(2**31)), engine="kokoro"))
            continue
        voice = VOICES[language][int(rng.integers(len(VOICES[language])))]
        voice += "+" + variants[int(rng.integers(len(variants)))]
        plans.append(SynthesisPlan(
            path=path, text=sentence, speech=speech_text(sentence, language), voice=voice,
            rate=int(rng.integers(spec.rates[0], spec.rates[1] + 1)),
            pitch=int(rng.integers(spec.pitches[0], spec.pitches[1] + 1)),
            gain=float(rng.uniform(*GAIN_RANGE)), lead=float(rng.uniform(*PAD_RANGE)),
            trail=float(rng.uniform(*PAD_RANGE)), noise_db=float(rng.uniform(*NOISE_DB_RANGE)),
            seed=int(rng.integers(2**31))))
    return plans


def trim_silence(samples: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 margin: float = 0.02) -> np.ndarray:
    """Cut leading/trailing audio whose 10 ms RMS is ``threshold_db`` below the loudest frame."""
    frame = max(1, sample_rate // 100)
    count = len(samples) // frame
    if count == 0:
        return samples
    rms = np.sqrt(np.mean(samples[:count * frame].reshape(count, frame).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if len(loud) == 0:
        return samples
    keep = int(margin * sample_rate)
    return samples[max(0, loud[0] * frame - keep):min(len(samples), (loud[-1] + 1) * frame + keep)]


def render(utterance: SynthesisPlan, engine: Engine | None, neural: KokoroEngine | None = None) -> np.ndarray:
    """Synthesise (eSpeak ``engine`` or Kokoro ``neural``), trim, resample to 16 kHz, level, pad and dither:
    int16 samples."""
    import soxr

    if utterance.engine == "kokoro":
        if neural is None:
            raise ValueError("a Kokoro utterance needs the Kokoro engine")
        raw, rate = neural.synthesize(utterance.speech, utterance.voice, utterance.rate / 100), SAMPLE_RATE
        audio = trim_silence(raw, rate)
    else:
        raw, rate = engine.synthesize(utterance.speech, utterance.voice, utterance.rate, utterance.pitch,
                                      utterance.seed)
        audio = trim_silence(raw.astype(np.float32) / 32768.0, rate)
    if not np.any(audio):
        raise EspeakError(f"eSpeak produced silence for {utterance.text!r} ({utterance.voice})")
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    audio = audio * (utterance.gain / np.max(np.abs(audio)))
    audio = np.concatenate([np.zeros(round(utterance.lead * SAMPLE_RATE), np.float32), audio,
                            np.zeros(round(utterance.trail * SAMPLE_RATE), np.float32)])
    noise = np.random.default_rng(utterance.seed).standard_normal(len(audio))
    audio = audio + noise * 10 ** (utterance.noise_db / 20)
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM."""
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())


# --------------------------------------------------------------------------- noise clips

NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
NOISE_SECONDS = 5.0
NOISE_RMS = 0.1  # the noise augmentor scales each clip to its SNR; this only keeps files well-levelled


def colored_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)


def mains_hum(length: int, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz mains hum with decaying harmonics over a faint hiss."""
    t = np.arange(length) / SAMPLE_RATE
    base = float(rng.choice([50.0, 60.0]))
    hum = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
              for k in range(1, 9))
    return hum + 0.05 * rng.standard_normal(length)


def babble(length: int, rng: np.random.Generator, engine: Engine, language: str, grammar: str) -> np.ndarray:
    """Three to six training-split voices talking at once, each looped over the clip from a random offset."""
    count = int(rng.integers(3, 7))
    seed = int(rng.integers(2**31))
    plans = plan_utterances(sample_sentences(count, seed, language, grammar), [""] * count, seed, language,
                            "train", engine.variants())
    mix = np.zeros(length)
    for plan in plans:
        voice = render(plan, engine).astype(np.float64)
        mix += np.roll(np.resize(voice, length), int(rng.integers(length)))
    return mix


def generate_noise(num_clips: int, seed: int = 0, language: str = "zh", grammar: str = "demo",
                   name: str = "demo", output_dir: str = "dataset", backend: str = "auto") -> str:
    """Write ``num_clips`` noise clips (``NOISE_KINDS`` in turn, 5 s, 16 kHz) for noise augmentation.

    They go to ``<output_dir>/audio/noise/`` (create_data.py lists that folder in manifest.noise);
    babble is spoken by training voices only. Returns the folder.
    """
    folder = os.path.join(output_dir, "audio", "noise")
    os.makedirs(folder, exist_ok=True)
    length = int(NOISE_SECONDS * SAMPLE_RATE)
    with open_engine(backend) as config:
        engine = create_engine(config)
        for index in range(num_clips):
            kind = NOISE_KINDS[index % len(NOISE_KINDS)]
            rng = np.random.default_rng([seed, len(SPLITS), index])
            if kind == "hum":
                noise = mains_hum(length, rng)
            elif kind == "babble":
                noise = babble(length, rng, engine, language, grammar)
            else:
                noise = colored_noise(length, NOISE_KINDS.index(kind), rng)
            noise *= NOISE_RMS / np.sqrt(np.mean(noise ** 2))
            samples = np.clip(np.round(noise * 32767.0), -32768, 32767)
            write_wav(os.path.join(folder, f"{name}_noise_{index + 1:03d}_{kind}.wav"), samples)
    return folder


_worker_engine: Engine | None = None
_worker_kokoro: KokoroEngine | None = None


def _init_worker(config: EngineConfig, neural: bool) -> None:
    global _worker_engine, _worker_kokoro
    _worker_engine = create_engine(config)
    _worker_kokoro = KokoroEngine() if neural else None


def _render_to_file(utterance: SynthesisPlan) -> None:
    assert _worker_engine is not None, "worker not initialised"
    write_wav(utterance.path, render(utterance, _worker_engine, _worker_kokoro))


def generate_corpus(num_samples: int, seed: int = 0, language: str = "zh", grammar: str = "demo",
                    name: str = "demo", output_dir: str = "dataset", num_workers: int | None = None,
                    backend: str = "auto", progress: bool = True, split: str = "train",
                    engine: str = "espeak") -> str:
    """Synthesise ``num_samples`` utterances of a split and write PPASR's annotation file.

    ``train``: audio goes to ``<output_dir>/audio/<name>/<name>_000001.wav`` ... and the annotation
    ``<output_dir>/annotation/<name>.txt`` has one ``path<TAB>text`` line per utterance. ``test`` and
    ``unseen``: audio goes to ``audio/<name>_<split>/`` and the lines into ``annotation/test.txt``
    (create_data.py's test set), replacing that folder's earlier lines and keeping all others.
    Paths are as written here (relative to the current directory unless ``output_dir`` is
    absolute). Identical arguments give identical files, whatever ``num_workers`` is. ``engine``: eSpeak NG,
    the Kokoro neural voices, or ``mixed`` (half each).
    Returns the annotation path.
    """
    from ppasr.data.prepare import TEST_ANNOTATION, merge_test_lines, write_lines

    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of {LANGUAGES}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLITS)}")
    if num_samples < 1:
        raise ValueError("num_samples must be at least 1")
    if not re.fullmatch(r"[\w.-]+", name):
        raise UserError(f"--name {name!r} must be a plain file name (letters, digits, _ . -)")
    from tqdm import tqdm

    folder = name if split == "train" else f"{name}_{split}"
    sentences = sample_sentences(num_samples, seed, language, grammar, split)
    audio_dir = os.path.join(output_dir, "audio", folder)
    os.makedirs(audio_dir, exist_ok=True)
    os.makedirs(os.path.join(output_dir, "annotation"), exist_ok=True)
    paths = [os.path.join(audio_dir, f"{folder}_{i:06d}.wav") for i in range(1, num_samples + 1)]
    workers = max(1, min(num_workers or os.cpu_count() or 1, num_samples))
    with open_engine(backend) as config:
        plans = plan_utterances(sentences, paths, seed, language, split, create_engine(config).variants(), engine)
        neural = any(plan.engine == "kokoro" for plan in plans)
        if neural:
            KokoroEngine()  # fetch and check the model and voices once, before the workers start
        bar = tqdm(total=num_samples, unit="utt", desc=f"synthesising {folder}", disable=not progress)
        if workers == 1:
            espeak, kokoro = create_engine(config), KokoroEngine() if neural else None
            for plan in plans:
                write_wav(plan.path, render(plan, espeak, kokoro))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no inherited library or thread state
            chunk = max(1, min(16, num_samples // (workers * 8)))
            # recycled now and then: each library reload leaks a couple of KB inside eSpeak/libdl
            with context.Pool(workers, initializer=_init_worker, initargs=(config, neural),
                              maxtasksperchild=5000) as pool:
                for _ in pool.imap_unordered(_render_to_file, plans, chunksize=chunk):
                    bar.update()
        bar.close()
    lines = [f"{plan.path}\t{plan.text}" for plan in plans]
    if split == "train":
        annotation = os.path.join(output_dir, "annotation", f"{name}.txt")
        write_lines(annotation, lines)
    else:
        annotation = os.path.join(output_dir, "annotation", TEST_ANNOTATION)
        merge_test_lines(annotation, audio_dir.replace("\\", "/") + "/", lines)
    return annotation
