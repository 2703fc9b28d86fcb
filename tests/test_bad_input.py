"""Only what is raised on purpose for bad input becomes a skip or one error line; a bug keeps its traceback."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile

from helpers import run_cli

from ppasr.data import features
from ppasr.data.dataset import ManifestDataset
from ppasr.data.features import FeatureNormalizer
from ppasr.utils import read_vocabulary


def test_dataset_skips_bad_audio_but_a_featuriser_bug_keeps_its_traceback(prepared_corpus, tmp_path, monkeypatch,
                                                                           caplog):
    short = tmp_path / "short.wav"  # 5 ms: shorter than one analysis window
    soundfile.write(short, np.full(80, 0.1, np.float32), 16000)
    good = prepared_corpus / "dataset/audio/tiny/tiny_000008.wav"
    manifest = tmp_path / "manifest"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(path), "duration": duration, "text": "灯"}) + "\n"
                                for path, duration in ((short, 0.005), (good, 5.53))))
    dataset = ManifestDataset(str(manifest), read_vocabulary(str(prepared_corpus / "dataset/vocabulary.txt")),
                              FeatureNormalizer(str(prepared_corpus / "dataset/mean_std.npz")), train=False)
    with caplog.at_level(logging.WARNING, logger="ppasr"):
        assert dataset[0] is None
    assert f"skip: {short}: audio is shorter than one" in caplog.text
    assert dataset[1][0].shape[0] == 80

    def broken(*_args, **_kwargs):
        raise ValueError("operands could not be broadcast together")  # what a featuriser bug looks like

    monkeypatch.setattr(features, "log_mel_spectrogram", broken)
    with pytest.raises(ValueError, match="broadcast"):
        dataset[1]


@pytest.mark.parametrize("case", ["missing", "not utf-8", "no text", "unwritable output"])
def test_build_lm_bad_input_is_one_error_line(tmp_path, case):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes({"missing": None, "not utf-8": "灯\n".encode("gbk"), "no text": b"\n \n"}.get(case) or b"a b\n")
    if case == "missing":
        corpus.unlink()
    output = tmp_path / ("corpus.txt/lm.arpa" if case == "unwritable output" else "lm.arpa")
    proc = run_cli("tools/build_lm.py", f"--manifest={corpus}", f"--output={output}", cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert str(corpus if case != "unwritable output" else output) in lines[0]


def test_a_bug_in_build_lm_keeps_its_traceback(tmp_path, monkeypatch):
    from ppasr import scripts
    from ppasr.decode import lm_builder

    def broken(_raw):
        raise ValueError("math domain error")  # what a bug in the estimator looks like

    (tmp_path / "corpus.txt").write_text("a b\n", encoding="utf-8")
    monkeypatch.setattr(lm_builder, "estimate_kneser_ney", broken)
    monkeypatch.setattr("sys.argv", ["build_lm.py", f"--manifest={tmp_path}/corpus.txt",
                                     f"--output={tmp_path}/lm.arpa"])
    with pytest.raises(ValueError, match="math domain"):
        scripts.build_lm()


@pytest.mark.parametrize("flag, named", [("--name=../up", "--name '../up'"), ("--output_dir=taken", "--output_dir")])
def test_generate_audio_bad_input_is_one_error_line(tmp_path, flag, named):
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = run_cli("tools/generate_audio.py", "--num_samples=1", flag, cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], \
        proc.stderr


def test_a_bug_in_generate_audio_keeps_its_traceback(tmp_path, monkeypatch):
    from ppasr import scripts
    from ppasr.demo import synth

    def broken(*_args):
        raise ValueError("probabilities do not sum to 1")  # what a bug in sentence sampling looks like

    monkeypatch.setattr(synth, "sample_sentences", broken)
    monkeypatch.setattr("sys.argv", ["generate_audio.py", "--num_samples=1", f"--output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="sum to 1"):
        scripts.generate_audio()
