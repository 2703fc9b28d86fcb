"""Hotwords (issue 19 part 2): the graph's bonus and its take-back, the beam search biased with and without
an LM, in worker processes, the flags, and per-request hotwords in the server and on its page."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import numpy as np
import pytest
from websockets.sync.client import connect

from helpers import run_cli
from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.hotwords import ROOT, HotwordGraph, compile_hotwords, read_hotwords_file
from ppasr.decode.lm_builder import build_lm
from ppasr.errors import UserError
from test_server import LIMITS, clips, post_audio, ws_url

VOCAB = ["_", "张", "三", "章", "山", "好", "天", "气", "很"]


def ids(text: str) -> list[int]:
    return [VOCAB.index(ch) for ch in text]


def walk(graph: HotwordGraph, text: str) -> list[tuple[float, float]]:
    """(bonus while going on, bonus if the utterance ended there) after each character of ``text``."""
    state, out = ROOT, []
    for token in ids(text):
        state = graph.step(state, token)
        out.append((graph.bonus(state), graph.final(state)))
    return out


def frame(**weights: float) -> np.ndarray:
    """One frame's probabilities: the given tokens (by character, ``blank`` for the blank), the rest tiny."""
    p = np.full(len(VOCAB), 1e-4)
    for name, value in weights.items():
        p[0 if name == "blank" else VOCAB.index(name)] = value
    return p / p.sum()


# 章 slightly ahead of 张, 山 slightly ahead of 三: the model "spells the name badly"
NAME = np.array([frame(章=0.55, 张=0.4), frame(blank=0.95), frame(山=0.6, 三=0.35), frame(blank=0.95)])


def decode(probs: np.ndarray, hotwords=None, **kwargs):
    decoder = BeamSearchDecoder(VOCAB, beam_size=kwargs.pop("beam_size", 8), num_processes=kwargs.pop("processes", 1),
                                hotwords=hotwords, **kwargs)
    try:
        return decoder.decode(probs[None], np.array([len(probs)]))[0]
    finally:
        decoder.close()


def test_a_partial_match_is_taken_back_and_a_completed_one_kept():
    graph = compile_hotwords([("张三好", 2.0)], VOCAB)
    assert walk(graph, "张三好") == [(2.0, 0.0), (4.0, 0.0), (6.0, 6.0)]
    assert walk(graph, "张三天") == [(2.0, 0.0), (4.0, 0.0), (0.0, 0.0)]  # left before completing: all given back
    assert walk(graph, "天张三好气") == [(0.0, 0.0), (2.0, 0.0), (4.0, 0.0), (6.0, 6.0), (6.0, 6.0)]


def test_longer_hotwords_continue_and_failure_links_keep_only_the_shorter_match():
    graph = compile_hotwords([("张三", 1.0), ("张三好", 1.0)], VOCAB)
    assert walk(graph, "张三好") == [(1.0, 0.0), (2.0, 2.0), (3.0, 3.0)]  # 张三 banked, then 好 adds one
    graph = compile_hotwords([("张三好", 1.0), ("三好天", 1.0)], VOCAB)
    # 张三 then 天: falls back to nothing; 张三好天: 张三好 done, then 三好天 via the failure link
    assert walk(graph, "张三天")[-1] == (0.0, 0.0)
    assert walk(graph, "张三好天") == [(1.0, 0.0), (2.0, 0.0), (3.0, 3.0), (6.0, 6.0)]


def test_each_hotword_keeps_its_weight_and_shared_tokens_take_the_larger():
    graph = compile_hotwords([("张三", 1.0), ("张山", 3.0)], VOCAB)
    assert walk(graph, "张三")[-1] == (4.0, 4.0)  # 张 shared (3), 三 (1)
    assert walk(graph, "张山")[-1] == (6.0, 6.0)


def test_hotwords_the_model_cannot_spell_are_skipped():
    import logging

    from ppasr.logger import logger

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        assert compile_hotwords([("王五", 2.0)], VOCAB) is None
    finally:
        logger.removeHandler(handler)
    assert seen == ["hotword '王五' skipped: the model's vocabulary has no '王五'"]
    with pytest.raises(ValueError, match="--max_hotwords"):
        compile_hotwords([("张三", 1.0)] * 3, VOCAB, max_count=2)
    with pytest.raises(ValueError, match="--max_hotword_chars"):
        compile_hotwords([("张三好", 1.0)], VOCAB, max_chars=2)


def test_hotwords_file(tmp_path):
    path = tmp_path / "hot.txt"
    path.write_text("# names\n张三\n章山 4.5\nnew york\n\n", encoding="utf-8")
    assert read_hotwords_file(str(path), 2.0) == [("张三", 2.0), ("章山", 4.5), ("new york", 2.0)]
    path.write_text("张三 -1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"hot.txt:1: the weight of '张三' must be > 0"):
        read_hotwords_file(str(path), 2.0)
    with pytest.raises(UserError, match="does not exist"):
        read_hotwords_file(str(tmp_path / "none.txt"), 2.0)


def test_recall_goes_up_on_a_badly_spelt_name():
    assert decode(NAME).text == "章山"
    hyp = decode(NAME, [("张三", 2.0)])
    assert hyp.text == "张三"
    assert [end for _, end in hyp.frames] == [1, 3] and hyp.frames[0][0] < hyp.frames[1][0]  # times still right


def test_an_empty_list_changes_nothing():
    probs = np.random.default_rng(0).dirichlet(np.full(len(VOCAB), 0.3), size=30)
    assert decode(probs, []) == decode(probs) == decode(probs, [("王五", 2.0)])


def test_an_unfinished_hotword_does_not_inflate_the_final_score():
    """Only 张三 was said: the prefix earns 张三好's bonus while it follows it, and gives it all back."""
    clear = np.array([frame(张=0.9), frame(blank=0.95), frame(三=0.9), frame(blank=0.95)])
    plain, biased = decode(clear, beam_size=50), decode(clear, [("张三好", 2.0)], beam_size=50)  # both exact
    assert biased.text == plain.text == "张三"
    assert biased.log_score == pytest.approx(plain.log_score)


def test_with_a_language_model_and_in_worker_processes(tmp_path):
    corpus = tmp_path / "lm.txt"
    corpus.write_text("天气很好\n章山很好\n章山\n章山\n三天\n很张\n", encoding="utf-8")  # knows 张, 三: rarely
    build_lm([str(corpus)], str(tmp_path / "lm.arpa"), order=3, token="char")
    lm = dict(lang_model_path=str(tmp_path / "lm.arpa"), alpha=0.5, beta=0.5)
    assert decode(NAME, **lm).text == "章山"  # the LM knows only 章山
    assert decode(NAME, [("张三", 4.0)], **lm).text == "张三"
    batch = np.stack([NAME, NAME[::-1]])
    decoder = BeamSearchDecoder(VOCAB, beam_size=8, num_processes=2, hotwords=[("张三", 4.0)], **lm)
    try:
        parallel = decoder.decode(batch, np.array([4, 4]))
        # a per-call graph replaces the decoder's own list
        unbiased = decoder.decode(batch, np.array([4, 4]), compile_hotwords([("天气", 4.0)], VOCAB))
    finally:
        decoder.close()
    assert parallel[0] == decode(NAME, [("张三", 4.0)], **lm) and parallel[0].text == "张三"
    assert unbiased[0].text == "章山"


def test_greedy_with_hotwords_is_refused_in_one_line(tmp_path):
    proc = run_cli("infer_path.py", "--hotwords=张三", "--use_gpu=False", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --hotwords/--hotwords_file need --decoder=ctc_beam_search (greedy decoding cannot be biased) "
        "(see infer_path.py --help)"]


def probable_hotword(root) -> str:
    """Two characters the exported model finds likely (each second best in some frame, in order) but does not
    output: with a large weight, beam search must output them when asked."""
    from ppasr.decode.text_decoder import GreedyDecoder, decode_one
    from ppasr.serve.infer import Predictor
    import soundfile

    predictor = Predictor(str(root / "models/deepspeech2/infer"), use_gpu=False)
    samples, rate = soundfile.read(clips(root, 1)[0], dtype="float32")
    probs = predictor.probabilities(samples, rate)
    said = set(decode_one(GreedyDecoder(predictor.vocabulary), probs).text)
    chosen = []
    for t in range(probs.shape[0]):
        second = int(np.argsort(-probs[t])[1])
        piece = predictor.vocabulary[second]
        if second != 0 and piece.strip() and piece not in said and piece not in chosen:
            chosen.append(piece)
        if len(chosen) == 2:
            return "".join(chosen)
    raise AssertionError("no frame offers a second-best character")


def test_server_takes_hotwords_per_request_capped(exported_corpus):
    from tools.server_screenshot import running_server

    hotword = probable_hotword(exported_corpus)
    clip = clips(exported_corpus, 1)[0].read_bytes()
    beam = [arg for arg in LIMITS if not arg.startswith("--decoder")] + [
        "--decoder=ctc_beam_search", "--lang_model_path=None", "--hotword_weight=50", "--max_hotwords=3",
        "--max_hotword_chars=4"]
    with running_server(*beam, cwd=exported_corpus) as (url, _, _):
        _, plain = post_audio(url + "/recognition", clip)
        assert hotword not in plain["result"]
        _, biased = post_audio(url + f"/recognition?hotwords={quote(hotword)}", clip)
        assert hotword in biased["result"], (hotword, plain, biased)
        status, answer = post_audio(url + "/recognition?hotwords=" + quote(",".join(["张三"] * 4)), clip)
        assert status == 400 and "at most 3 allowed (--max_hotwords)" in answer["msg"]
        status, answer = post_audio(url + "/recognition?hotwords=" + quote("张" * 5), clip)
        assert status == 400 and "at most 4 allowed (--max_hotword_chars)" in answer["msg"]
        with connect(ws_url(url), open_timeout=30) as ws:
            ws.send(json.dumps({"hotwords": [hotword]}))
            ws.send(pcm_of(clip))
            ws.recv(timeout=60)
            ws.send(json.dumps({"end": True}))
            final = json.loads(ws.recv(timeout=60))
        assert hotword in final["result"] and final["is_end"]
        with connect(ws_url(url), open_timeout=30) as ws:
            ws.send(json.dumps({"hotwords": "张" * 5}))
            error = json.loads(ws.recv(timeout=30))
        assert error["code"] != 0 and "--max_hotword_chars" in error["msg"]
    with running_server(*LIMITS, cwd=exported_corpus) as (url, _, _):  # greedy
        status, answer = post_audio(url + f"/recognition?hotwords={quote(hotword)}", clip)
        assert status == 400 and "--decoder=ctc_beam_search" in answer["msg"]


def pcm_of(wav: bytes) -> bytes:
    import io
    import soundfile

    samples, _ = soundfile.read(io.BytesIO(wav), dtype="int16")
    return samples.astype("<i2").tobytes()


@pytest.mark.skipif(os.environ.get("CI") is None and not __import__("shutil").which("chromium"),
                    reason="needs Chromium (CI installs it)")
def test_page_sends_its_hotwords(exported_corpus, tmp_path):
    from tools.server_screenshot import chromium_page, microphone_file, running_server, upload

    hotword = probable_hotword(exported_corpus)
    clip = clips(exported_corpus, 1)[0]
    microphone, _ = microphone_file(clip, tmp_path)
    beam = [arg for arg in LIMITS if not arg.startswith("--decoder")] + [
        "--decoder=ctc_beam_search", "--lang_model_path=None", "--hotword_weight=50"]
    with running_server(*beam, cwd=exported_corpus) as (url, _, _):
        with chromium_page(url + "/", microphone) as page:
            assert hotword not in upload(page, clip)
            page.evaluate(f"document.getElementById('hotwords').value = '{hotword}'")
            assert hotword in upload(page, clip)
