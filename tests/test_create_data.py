"""create_data.py end to end on small real-audio corpora, including every bad-input case."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import run_cli

TEXTS = ["打开客厅的灯", "關閉空調", "今天天气怎么样", "播放音乐", "明天早上七点叫我", "北京下雨了吗",
         "把温度调到二十度", "你好小爱", "设置一个闹钟", "打开窗帘", "导航去上海", "音量调大一点"]


def make_corpus(root: Path, reference_audio, count: int = 12) -> list[Path]:
    samples, sr = reference_audio
    audio_dir = root / "dataset" / "audio" / "clips"
    audio_dir.mkdir(parents=True)
    lines, paths = [], []
    piece = len(samples) // count
    for i in range(count):
        path = audio_dir / f"clip_{i:02d}.wav"
        soundfile.write(path, samples[i * piece:(i + 1) * piece - 400 * i], sr, subtype="PCM_16")
        lines.append(f"dataset/audio/clips/{path.name}\t{TEXTS[i % len(TEXTS)]}")
        paths.append(path)
    (root / "dataset" / "annotation").mkdir(parents=True)
    (root / "dataset" / "annotation" / "clips.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def digest(paths) -> dict:
    return {str(p): hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_create_data_writes_the_four_files(tmp_path, reference_audio):
    make_corpus(tmp_path, reference_audio)
    proc = run_cli("create_data.py", "--num_workers=2", cwd=tmp_path)
    assert "-----------  Configuration Arguments -----------" in proc.stdout
    assert "count_threshold: 2" in proc.stdout
    train = read_jsonl(tmp_path / "dataset/manifest.train")
    test = read_jsonl(tmp_path / "dataset/manifest.test")
    assert len(train) == 11 and len(test) == 1
    longest = max(train + test, key=lambda x: x["duration"])
    assert test[0] == longest, "utterance 0 by descending duration goes to test"
    assert list(train[0]) == ["audio_filepath", "duration", "text"]
    assert "关闭空调" in {x["text"] for x in train + test}, "traditional characters become simplified"
    vocab = (tmp_path / "dataset/vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[0] == "<blank>\t-1"
    counts = [int(line.split("\t")[1]) for line in vocab[1:]]
    assert counts == sorted(counts, reverse=True) and min(counts) >= 2
    chars = "".join(x["text"] for x in train)
    assert {line.split("\t")[0] for line in vocab[1:]} == {c for c in set(chars) if chars.count(c) >= 2}
    stats = np.load(tmp_path / "dataset/mean_std.npz")
    assert stats["mean"].shape == (161, 1) and stats["std"].shape == (161, 1)
    assert json.loads(str(stats["feature_config"]))["method"] == "linear"
    assert "noise folder dataset/audio/noise not found" in proc.stdout


def test_mean_std_equals_direct_computation(tmp_path, reference_audio):
    make_corpus(tmp_path, reference_audio)
    run_cli("create_data.py", "--num_workers=2", "--feature_method=fbank", cwd=tmp_path)
    from ppasr.data.audio import read_audio
    from ppasr.data.features import AudioFeaturizer, FeatureConfig

    featurizer = AudioFeaturizer(FeatureConfig(method="fbank"))
    feats = [featurizer.featurize(*read_audio(str(tmp_path / x["audio_filepath"])))
             for x in read_jsonl(tmp_path / "dataset/manifest.train")]
    stacked = np.hstack(feats).astype(np.float64)
    stats = np.load(tmp_path / "dataset/mean_std.npz")
    assert np.allclose(stats["mean"][:, 0], stacked.mean(axis=1), atol=1e-6)
    assert np.allclose(stats["std"][:, 0], stacked.std(axis=1), atol=1e-6)


def test_resampling_never_modifies_user_audio(tmp_path, reference_audio):
    paths = make_corpus(tmp_path, reference_audio)
    import soxr

    samples, sr = soundfile.read(paths[0], dtype="float32")
    stereo = np.stack([soxr.resample(samples, sr, 44100)] * 2, axis=1)
    soundfile.write(paths[0], stereo, 44100, subtype="PCM_16")
    flac = paths[1].with_suffix(".flac")
    soundfile.write(flac, soundfile.read(paths[1])[0], sr, format="FLAC")
    annotation = tmp_path / "dataset/annotation/clips.txt"
    annotation.write_text(annotation.read_text(encoding="utf-8").replace(paths[1].name, flac.name), encoding="utf-8")
    before = digest(paths + [flac, annotation])
    run_cli("create_data.py", "--num_workers=2", cwd=tmp_path)
    assert digest(paths + [flac, annotation]) == before
    manifest = read_jsonl(tmp_path / "dataset/manifest.train") + read_jsonl(tmp_path / "dataset/manifest.test")
    converted = [x for x in manifest if "cache" in x["audio_filepath"]]
    assert len(converted) == 1
    info = soundfile.info(converted[0]["audio_filepath"])
    assert info.samplerate == 16000 and info.channels == 1
    assert any(x["audio_filepath"].endswith(".flac") for x in manifest), "FLAC is read as is"


def test_bad_inputs_are_skipped_with_reasons(tmp_path, reference_audio):
    paths = make_corpus(tmp_path, reference_audio)
    ann = tmp_path / "dataset" / "annotation"
    audio = tmp_path / "dataset" / "audio" / "clips"
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" + bytes(300))
    soundfile.write(audio / "empty.wav", np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    full = paths[0].read_bytes()
    (audio / "truncated.wav").write_bytes(full[:len(full) // 2])
    lines = [
        "dataset/audio/clips/missing.wav\t打开灯",
        "dataset/audio/clips/corrupt.wav\t打开灯",
        "dataset/audio/clips/empty.wav\t打开灯",
        "dataset/audio/clips/truncated.wav\t打开灯",
        "dataset/audio/clips/clip_00.wav 打开灯 no tab here",
        f"dataset/audio/clips/{paths[1].name}\t123 abc !!",
    ]
    (ann / "bad.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ann / "blank.txt").write_text("\n\n", encoding="utf-8")
    (ann / "gbk.txt").write_bytes(f"dataset/audio/clips/{paths[2].name}\t打开灯\n".encode("gbk"))
    before = digest(list(audio.iterdir()) + list(ann.iterdir()))
    proc = run_cli("create_data.py", "--num_workers=2", cwd=tmp_path)
    out = proc.stdout
    expected = {
        "bad.txt:1": "not found", "bad.txt:2": "unreadable", "bad.txt:3": "no samples",
        "bad.txt:4": "truncated", "bad.txt:5": "no TAB", "bad.txt:6": "empty after filtering",
        "gbk.txt:1": "not UTF-8", "blank.txt": "empty",
    }
    for where, reason in expected.items():
        line = next((l for l in out.splitlines() if l.startswith("skip:") and where in l), None)
        assert line is not None and reason in line, f"no skip line for {where}: {out}"
    assert "summary: kept 12 utterances" in out and "skipped 8" in out
    assert digest(list(audio.iterdir()) + list(ann.iterdir())) == before, "inputs must never change"


def test_nothing_usable_fails_with_clear_message(tmp_path):
    (tmp_path / "dataset" / "annotation").mkdir(parents=True)
    proc = run_cli("create_data.py", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "no *.txt annotation files" in proc.stderr
    (tmp_path / "dataset/annotation/a.txt").write_text("missing.wav\t你好\n", encoding="utf-8")
    proc = run_cli("create_data.py", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "no usable utterances" in proc.stderr
    assert "skip:" in proc.stdout and "missing.wav" in proc.stdout


def test_noise_manifest_lists_noise_files(tmp_path, reference_audio):
    make_corpus(tmp_path, reference_audio)
    noise = tmp_path / "dataset/audio/noise"
    noise.mkdir(parents=True)
    rng = np.random.default_rng(0)
    soundfile.write(noise / "white.wav", (rng.standard_normal(8000) * 0.1).astype(np.float32), 16000)
    (noise / "bad.wav").write_bytes(b"not audio")
    proc = run_cli("create_data.py", "--num_workers=1", cwd=tmp_path)
    items = read_jsonl(tmp_path / "dataset/manifest.noise")
    assert [Path(x["audio_filepath"]).name for x in items] == ["white.wav"]
    assert items[0]["duration"] == 0.5
    assert "bad.wav" in proc.stdout


@pytest.mark.parametrize("mode,text,expected", [("zh", "Hello 你好,世界 123", "你好世界"),
                                                ("en", "Hello, World's  2 Nd!", "hello world's 2 nd"),
                                                ("mixed", "打开 WiFi 吧", "打开 wifi 吧")])
def test_text_modes(mode, text, expected):
    from ppasr.data.text import clean_text

    assert clean_text(text, mode) == expected


def test_annotation_test_txt_is_the_whole_test_set(tmp_path, reference_audio):
    """PPASR 2.x / download_data: annotation/test.txt becomes manifest.test, nothing else does."""
    make_corpus(tmp_path, reference_audio)
    annotation = tmp_path / "dataset" / "annotation"
    lines = (annotation / "clips.txt").read_text(encoding="utf-8").splitlines()
    (annotation / "clips.txt").write_text("\n".join(lines[:9]) + "\n", encoding="utf-8")
    (annotation / "test.txt").write_text("\n".join(lines[9:]) + "\n", encoding="utf-8")
    run_cli("create_data.py", "--num_workers=2", cwd=tmp_path)
    train = read_jsonl(tmp_path / "dataset/manifest.train")
    test = read_jsonl(tmp_path / "dataset/manifest.test")
    assert sorted(x["audio_filepath"] for x in test) == sorted(line.split("\t")[0] for line in lines[9:])
    assert len(train) == 9 and not {x["audio_filepath"] for x in train} & {x["audio_filepath"] for x in test}
