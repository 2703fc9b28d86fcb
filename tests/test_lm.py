"""n-gram LM estimation (interpolated modified Kneser–Ney) and the build_lm.py CLI."""
from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers import run_cli

from ppasr.decode.language_model import detect_lm_token
from ppasr.decode.lm_builder import (
    build_lm,
    count_ngrams,
    estimate_kneser_ney,
    modified_kn_discounts,
    read_texts,
    tokenize,
)

kenlm = pytest.importorskip("kenlm")

ZH_LINES = ["今天天气很好", "今天天气不错", "天气很好", "明天天气很好", "今天很好", "好天气",
            "天天好", "明天不错", "今天不好", "天气不好不坏"]
EN_LINES = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "the mat",
            "on the mat the cat sat", "a dog", "the cat", "dogs and cats"]


def state_after(model, words: list[str]):
    state = kenlm.State()
    model.BeginSentenceWrite(state)
    for word in words:
        out = kenlm.State()
        model.BaseScore(state, word, out)
        state = out
    return state


def assert_normalised(path: str, vocab: list[str], contexts: list[list[str]]) -> None:
    model = kenlm.Model(path)
    for context in contexts:
        state = state_after(model, context)
        total = sum(10 ** model.BaseScore(state, word, kenlm.State()) for word in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), context


def test_read_texts_accepts_manifests_and_plain_text(tmp_path):
    manifest = tmp_path / "manifest.train"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": f"{i}.wav", "duration": 1.0,
                                              "text": t}, ensure_ascii=False)
                                  for i, t in enumerate(ZH_LINES[:2])) + "\n\n", encoding="utf-8")
    plain = tmp_path / "corpus.txt"
    plain.write_text("hello world\n{not json\n", encoding="utf-8")
    assert list(read_texts([str(manifest), str(plain)])) == ZH_LINES[:2] + ["hello world",
                                                                           "{not json"]


def test_token_mode_detection_and_tokenize():
    assert detect_lm_token(ZH_LINES) == "char"
    assert detect_lm_token(EN_LINES) == "word"
    assert tokenize("天 气", "char") == ["天", "气"]
    assert tokenize(" the  cat ", "word") == ["the", "cat"]


def test_modified_discounts_and_fallback():
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2
    y = 10 / (10 + 2 * 5)
    assert modified_kn_discounts(counts) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5,
                                                3 - 4 * y * 2 / 3))
    assert modified_kn_discounts([1, 1, 2]) == pytest.approx((0.5, 0.5, 0.5))  # no 3s or 4s


def test_unigram_probabilities_by_hand():
    # Continuation counts: a <- {<s>}, b <- {a, <s>}, </s> <- {b}; a single discount 0.5.
    model = estimate_kneser_ney(count_ngrams([["a", "b"], ["b"]], order=2))
    unigram = {gram[0]: prob for gram, (prob, _) in model.ngrams[0].items()}
    gamma = 3 * 0.5 / 4
    expected = {"a": 0.5 / 4 + gamma / 4, "b": 1.5 / 4 + gamma / 4, "</s>": 0.5 / 4 + gamma / 4,
                "<unk>": gamma / 4}
    for word, prob in expected.items():
        assert unigram[word] == pytest.approx(math.log10(prob))
    assert sum(expected.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("lines,token,order,contexts", [
    (ZH_LINES, "char", 4, [[], ["今"], ["今", "天"], ["天", "气", "很"], ["不", "好", "不"],
                           ["坏", "今"], ["外", "星"]]),
    (EN_LINES, "word", 3, [[], ["the"], ["the", "cat"], ["cat", "the"], ["on", "the", "mat"],
                           ["zebra"], ["a", "zebra"]]),
])
def test_arpa_loads_in_kenlm_and_normalises(tmp_path, lines, token, order, contexts):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = str(tmp_path / "lm.arpa")
    model = build_lm([str(corpus)], path, order=order, token=token)
    assert model.order == order and model.token == token
    vocab = [gram[0] for gram in model.ngrams[0] if gram[0] != "<s>"]
    assert "<unk>" in vocab and "</s>" in vocab
    assert kenlm.Model(path).order == order
    assert_normalised(path, vocab, contexts)


def test_seen_continuations_are_preferred(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(ZH_LINES) + "\n", encoding="utf-8")
    path = str(tmp_path / "lm.arpa")
    build_lm([str(corpus)], path, token="char")
    model = kenlm.Model(path)
    assert model.score("天 气 很 好") > model.score("天 器 很 好")
    assert model.score("天 气 很 好") > model.score("好 很 气 天")


def test_build_lm_cli_from_manifest(tmp_path):
    manifest = tmp_path / "manifest.train"
    manifest.write_text("".join(json.dumps({"audio_filepath": "x.wav", "duration": 1.0,
                                            "text": t}, ensure_ascii=False) + "\n"
                                for t in ZH_LINES), encoding="utf-8")
    output = tmp_path / "lm" / "zh.arpa"
    proc = run_cli("tools/build_lm.py", f"--manifest={manifest}", f"--output={output}",
                   cwd=tmp_path)
    assert "char tokens, order 5" in proc.stdout
    assert kenlm.Model(str(output)).order == 5


@pytest.mark.skipif(shutil.which("build_binary") is not None, reason="build_binary installed")
def test_binary_output_without_build_binary_fails_clearly(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b\n", encoding="utf-8")
    proc = run_cli("tools/build_lm.py", f"--manifest={corpus}", f"--output={tmp_path}/lm.klm",
                   cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "build_binary" in proc.stderr and ".arpa" in proc.stderr
