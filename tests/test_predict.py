"""a3c1911's Python API, ``ppasr.predict.Predictor``, on an exported tiny model: the same results as
infer_path.py, long audio, streaming chunks."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import soundfile

from conftest import TEST_WAV, run_cli


@pytest.fixture(scope="module")
def exported(trained_corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("predict") / "work"
    shutil.copytree(trained_corpus, work, symlinks=True)
    run_cli("export_model.py", "--resume_model=models/deepspeech2/epoch_2", cwd=work)
    return work


@pytest.mark.parametrize("decoder", ["ctc_greedy", "ctc_beam_search"])
def test_predict_matches_infer_path(exported, decoder, monkeypatch):
    from ppasr.predict import Predictor

    monkeypatch.chdir(exported)
    # a3c1911's constructor call, keyword for keyword (infer_path.py / infer_server.py)
    predictor = Predictor(model_dir="models/deepspeech2/infer/", vocab_path="dataset/vocabulary.txt",
                          decoder=decoder, alpha=1.2, beta=0.35, lang_model_path=None, beam_size=10,
                          cutoff_prob=1.0, cutoff_top_n=40, use_gpu=False)
    score, text = predictor.predict(audio_path=str(TEST_WAV), to_an=True)
    assert isinstance(score, float) and isinstance(text, str)
    proc = run_cli("infer_path.py", f"--wav_path={TEST_WAV}", "--use_gpu=False", f"--decoder={decoder}",
                   "--lang_model_path=None", cwd=exported)
    line = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"消耗时间：\d+ms, 识别结果: {re.escape(text)}, 得分: {int(score)}", line), (line, text, score)
    predictor.close()


def test_long_audio_and_streaming(exported, tmp_path, monkeypatch):
    from ppasr.predict import Predictor

    monkeypatch.chdir(exported)
    predictor = Predictor("models/deepspeech2/infer/", "dataset/vocabulary.txt", use_gpu=False)
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    long_clip = np.concatenate([samples, np.zeros(sr, dtype=np.float32), samples])
    soundfile.write(tmp_path / "long.wav", long_clip, sr)
    score, text = predictor.predict_long_audio(str(tmp_path / "long.wav"))
    _, single = predictor.predict(str(TEST_WAV))
    assert text == f"{single}，{single}" and 0 <= score <= 100

    stream = predictor.new_stream()
    frames = [stream.accept(samples[i:i + 4000]) for i in range(0, len(samples), 4000)] + [stream.finish()]
    probs = np.concatenate(frames)
    assert probs.shape == predictor.model.probabilities(samples, sr).shape
    assert isinstance(predictor.decode(probs)[1], str)
