"""Synthetic corpus generator: grammar, pronunciation, audio format and determinism."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import run_cli
from ppasr.demo.espeak import create_engine, open_engine, to_pinyin
from ppasr.demo.grammar import get_grammar, zh_number
from ppasr.demo.synth import (HELD_OUT_VARIANTS, NOISE_KINDS, NOISE_RMS, SPLITS, TRAIN_VARIANTS, UNVOICED_VARIANTS,
                              generate_corpus, generate_noise, is_test_sentence, plan_utterances, sample_sentences)

NUM = 10


def _read_annotation(path: str) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same zh corpus made with 2 workers and with 1, plus one with another seed."""
    out = {}
    for key, seed, workers in (("a", 123, 2), ("b", 123, 1), ("c", 124, 1)):
        out[key] = tmp_path_factory.mktemp(key)
        generate_corpus(NUM, seed=seed, language="zh", grammar="demo", name="demo",
                        output_dir=str(out[key]), num_workers=workers, progress=False)
    return out


def test_annotation_format(corpora: dict[str, Path]) -> None:
    root = corpora["a"]
    rows = _read_annotation(str(root / "annotation" / "demo.txt"))
    assert len(rows) == NUM
    for i, (path, text) in enumerate(rows, start=1):
        assert path == str(root / "audio" / "demo" / f"demo_{i:06d}.wav")
        assert Path(path).is_file()
        assert re.fullmatch(r"[\u4e00-\u9fa5]{4,12}", text), text
    assert [text for _, text in rows] == sample_sentences(NUM, 123, "zh", "demo")


def test_audio_is_16k_mono_plausible_speech(corpora: dict[str, Path]) -> None:
    for path, _ in _read_annotation(str(corpora["a"] / "annotation" / "demo.txt")):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        samples, _ = soundfile.read(path, dtype="float32")
        assert 0.5 <= len(samples) / 16000 <= 10.0
        assert np.abs(samples).max() > 0.2
        edge = samples[:800]  # the first 50 ms are added silence with a faint dither
        assert 0 < np.sqrt(np.mean(edge ** 2)) < 0.01 < np.sqrt(np.mean(samples ** 2))


def test_same_seed_same_bytes_any_worker_count(corpora: dict[str, Path]) -> None:
    annotations = [(corpora[key] / "annotation" / "demo.txt").read_text(encoding="utf-8") for key in "ab"]
    assert annotations[0].replace(str(corpora["a"]), "") == annotations[1].replace(str(corpora["b"]), "")
    for i in range(1, NUM + 1):
        name = f"audio/demo/demo_{i:06d}.wav"
        assert (corpora["a"] / name).read_bytes() == (corpora["b"] / name).read_bytes(), name


def test_different_seed_differs(corpora: dict[str, Path]) -> None:
    assert _read_annotation(str(corpora["a"] / "annotation" / "demo.txt")) != \
        _read_annotation(str(corpora["c"] / "annotation" / "demo.txt"))
    first = "audio/demo/demo_000001.wav"
    assert (corpora["a"] / first).read_bytes() != (corpora["c"] / first).read_bytes()


def test_cli_english_relative_paths(tmp_path: Path) -> None:
    run_cli("tools/generate_audio.py", "--num_samples", "3", "--language", "en", "--name", "en_demo",
            "--num_workers", "1", "--seed", "5", cwd=tmp_path)
    rows = _read_annotation(str(tmp_path / "dataset" / "annotation" / "en_demo.txt"))
    assert [path for path, _ in rows] == [f"dataset/audio/en_demo/en_demo_00000{i}.wav" for i in (1, 2, 3)]
    for path, text in rows:
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", text), text
        samples, sr = soundfile.read(tmp_path / path, dtype="float32")
        assert sr == 16000 and samples.ndim == 1 and 0.5 <= len(samples) / sr <= 10.0


def test_demo_grammar_is_compact_and_full_is_rich() -> None:
    demo, full = get_grammar("zh", "demo"), get_grammar("zh", "full")
    assert 80 <= len(demo.charset()) <= 150
    assert len(full.charset()) >= 300 and demo.charset() < full.charset()
    assert demo.num_derivations >= 3000
    sentences = sample_sentences(3000, 0, "zh", "demo")
    assert len(set(sentences)) == 3000
    assert all(4 <= len(s) <= 12 for s in sentences)
    counts = {c: sum(s.count(c) for s in sentences) for c in demo.charset()}
    assert min(counts.values()) >= 20  # every character is seen many times
    assert sample_sentences(1000, 0, "zh", "demo") == sentences[:1000]
    assert get_grammar("en", "demo").charset() <= set("abcdefghijklmnopqrstuvwxyz'")


def test_exhausted_grammar_repeats_only_after_a_full_round() -> None:
    grammar = get_grammar("en", "demo")
    language = {grammar.expand(t, i) for t, size in enumerate(grammar.template_sizes) for i in range(size)}
    training = {sentence for sentence in language if not is_test_sentence(sentence)}
    sentences = sample_sentences(len(training) + 5, 3, "en", "demo")
    assert set(sentences[:len(training)]) == training and set(sentences) == training


def test_pinyin_voice_reads_every_syllable_as_mandarin() -> None:
    # the trap: the plain cmn voice reads some Hanzi as letters plus an English tone digit
    text = "".join(sorted(get_grammar("zh", "demo").charset()))
    syllables = to_pinyin(text).split()
    assert len(syllables) == len(text) and all(re.fullmatch(r"[a-z]+[1-5]", s) for s in syllables)
    assert to_pinyin("把空调调到二十一度") == "ba3 kong1 tiao2 tiao2 dao4 er4 shi2 yi1 du4"
    with open_engine("library") as config:
        engine = create_engine(config)
        assert "(en)" in engine.phonemes("哪儿", "cmn")
        for syllable in syllables:
            phonemes = engine.phonemes(syllable, "cmn-latn-pinyin")
            # one Mandarin syllable with one tone contour, no switch to English
            assert "(en)" not in phonemes and len(re.findall(r"\d+", phonemes)) == 1, (syllable, phonemes)


def test_zh_number() -> None:
    assert [zh_number(n) for n in (0, 7, 10, 11, 20, 21, 105, 110, 1010)] == \
        ["零", "七", "十", "十一", "二十", "二十一", "一百零五", "一百一十", "一千零一十"]
    assert zh_number(2, liang=True) == "两" and zh_number(12, liang=True) == "十二"


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="espeakng-loader"):
        with open_engine("auto"):
            pass


# ---- splits: held-out voices, templates and sentences never reach training ------------------------

def test_splits_use_their_own_voices_rates_and_pitches() -> None:
    installed = set(HELD_OUT_VARIANTS + TRAIN_VARIANTS + UNVOICED_VARIANTS)
    assert not set(HELD_OUT_VARIANTS) & set(TRAIN_VARIANTS)
    count = 2000
    for split in ("train", "test", "unseen"):
        plans = plan_utterances(["灯"] * count, [""] * count, 0, "zh", split, installed)
        variants = {plan.voice.split("+")[1] for plan in plans}
        spec = SPLITS[split]
        assert variants == set(spec.variants), split  # all of its own, nothing else
        assert {plan.rate for plan in plans} == set(range(spec.rates[0], spec.rates[1] + 1)), split
        assert {plan.pitch for plan in plans} == set(range(spec.pitches[0], spec.pitches[1] + 1)), split
    assert set(SPLITS["train"].variants) == set(TRAIN_VARIANTS)
    assert SPLITS["unseen"].rates[1] > SPLITS["train"].rates[1]  # partly faster than any training voice
    with pytest.raises(RuntimeError, match="unseen"):
        plan_utterances(["灯"], [""], 0, "zh", "unseen", set(TRAIN_VARIANTS))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_test_sentences_never_occur_in_training(language: str) -> None:
    train = sample_sentences(5000, 0, language, "demo", "train")
    test = sample_sentences(100, 1, language, "demo", "test")
    unseen = sample_sentences(100, 2, language, "demo", "unseen")
    assert not set(train) & (set(test) | set(unseen))
    assert not any(map(is_test_sentence, train)) and all(map(is_test_sentence, test + unseen))
    # held-out templates: other sentence patterns over the characters training teaches
    training, held_out = get_grammar(language, "demo"), get_grammar(language, "demo", held_out=True)
    assert held_out.charset() <= training.charset()
    assert not set(unseen) & set(training.sample(training.num_derivations, np.random.default_rng(0)))
    assert len(set(unseen)) == 100


def test_test_splits_share_test_txt_with_other_corpora(tmp_path: Path) -> None:
    annotation = tmp_path / "annotation" / "test.txt"
    annotation.parent.mkdir()
    annotation.write_text("dataset/audio/aishell/a.wav\t你好\n", encoding="utf-8")
    for split, num in (("test", 3), ("unseen", 4), ("test", 2)):  # a rerun replaces only its own lines
        assert generate_corpus(num, seed=1, split=split, output_dir=str(tmp_path), num_workers=1,
                               progress=False) == str(annotation)
    lines = annotation.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "dataset/audio/aishell/a.wav\t你好"
    assert [line.split("\t")[0] for line in lines[1:]] == \
        [str(tmp_path / "audio" / "demo_unseen" / f"demo_unseen_00000{i}.wav") for i in (1, 2, 3, 4)] + \
        [str(tmp_path / "audio" / "demo_test" / f"demo_test_00000{i}.wav") for i in (1, 2)]
    assert [line.split("\t")[1] for line in lines[-2:]] == sample_sentences(2, 1, "zh", "demo", "test")
    assert not (tmp_path / "annotation" / "demo.txt").exists()


def test_unseen_split_is_deterministic_any_worker_count(tmp_path: Path) -> None:
    for workers in (1, 2):
        generate_corpus(4, seed=3, split="unseen", output_dir=str(tmp_path / str(workers)), num_workers=workers,
                        progress=False)
    for i in range(1, 5):
        name = f"audio/demo_unseen/demo_unseen_{i:06d}.wav"
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


def test_noise_clips(tmp_path: Path) -> None:
    for out in ("a", "b"):
        assert generate_noise(6, seed=2, output_dir=str(tmp_path / out)) == str(tmp_path / out / "audio" / "noise")
    names = sorted(p.name for p in (tmp_path / "a" / "audio" / "noise").iterdir())
    assert names == [f"demo_noise_00{i}_{kind}.wav" for i, kind in enumerate(NOISE_KINDS + ("white",), start=1)]
    spectra = {}
    for name in names:
        samples, sr = soundfile.read(tmp_path / "a" / "audio" / "noise" / name, dtype="float32")
        assert sr == 16000 and len(samples) == 5 * sr
        assert np.sqrt(np.mean(samples ** 2)) == pytest.approx(NOISE_RMS, rel=0.01)
        assert (tmp_path / "b" / "audio" / "noise" / name).read_bytes() == \
            (tmp_path / "a" / "audio" / "noise" / name).read_bytes()
        power = np.abs(np.fft.rfft(samples)) ** 2
        spectra[name.split("_")[-1][:-4]] = power[:len(power) // 8].sum() / power.sum()  # share below 1 kHz
    assert spectra["white"] < 0.2 < spectra["pink"] < spectra["brown"]
    assert spectra["hum"] > 0.9
