"""Synthetic corpus generator: grammar, pronunciation, audio format and determinism."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import run_cli
from ppasr.demo.synth import (create_engine, generate_corpus, get_grammar, open_engine,
                         sample_sentences, to_pinyin, zh_number)

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
    size = get_grammar("en", "demo").num_derivations
    sentences = sample_sentences(size + 5, 3, "en", "demo")
    assert len(set(sentences[:size])) == size and len(set(sentences)) == size


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
