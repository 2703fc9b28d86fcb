"""CTC greedy and prefix beam search decoding, with and without KenLM fusion."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ppasr.decode.beam_search import BeamSearchDecoder, prune_frames
from ppasr.decode.greedy import greedy_decode
from ppasr.decode.text_decoder import decode_one
from ppasr.decode.language_model import OOV_LOG10, detect_lm_token, read_arpa_words
from ppasr.decode.lm_builder import build_lm

ZH_VOCAB = ["<blank>", "天", "气", "器", "很", "好", "机"]
EN_VOCAB = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
EN_SENTENCES = ["the cat sat", "the cat ate", "a cat", "the hat"]
EN_WORDS = sorted({word for sentence in EN_SENTENCES for word in sentence.split()})


def frames_from(spec: list[dict[str, float]], vocabulary: list[str]) -> np.ndarray:
    """[T, V] probabilities: each frame's listed tokens, the rest spread over the others."""
    probs = np.zeros((len(spec), len(vocabulary)), dtype=np.float64)
    for t, frame in enumerate(spec):
        rest = 1.0 - sum(frame.values())
        others = len(vocabulary) - len(frame)
        probs[t, :] = rest / others
        for token, prob in frame.items():
            probs[t, vocabulary.index(token)] = prob
    return probs.astype(np.float32)


def peaked_batch(rng: np.random.Generator, batch: int, frames: int, vocab: int,
                 top: float = 0.85) -> np.ndarray:
    """Random frames whose argmax (blank 60% of the time) carries ``top`` of the mass."""
    labels = rng.integers(1, vocab, size=(batch, frames))
    labels[rng.random((batch, frames)) < 0.6] = 0
    rest = rng.dirichlet(np.ones(vocab), size=(batch, frames)) * (1.0 - top)
    rest[np.arange(batch)[:, None], np.arange(frames)[None, :], labels] += top
    return rest.astype(np.float32)


def reference_greedy(probs: np.ndarray, length: int, vocabulary: list[str]) -> str:
    out, previous = [], -1
    for index in probs[:length].argmax(axis=1):
        if index != previous and index != 0:
            out.append(vocabulary[index])
        previous = index
    return "".join(out)


def brute_force_best(probs: np.ndarray) -> tuple[tuple[int, ...], float]:
    """Most probable collapsed labelling by summing every alignment path."""
    frames, vocab = probs.shape
    paths = np.array(list(itertools.product(range(vocab), repeat=frames)))
    path_probs = np.prod(probs.astype(np.float64)[np.arange(frames), paths], axis=1)
    totals: dict[tuple[int, ...], float] = {}
    for path, prob in zip(paths.tolist(), path_probs.tolist()):
        labels = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))
        totals[labels] = totals.get(labels, 0.0) + prob
    best = max(totals, key=totals.get)
    return best, math.log(totals[best])


def reference_beam_search(probs: np.ndarray, vocabulary: list[str], beam: int, model,
                          alpha: float, beta: float, lm_words: list[str] | None
                          ) -> tuple[str, float]:
    """Textbook dict-based CTC prefix beam search with KenLM fusion (no pruning).

    Prefixes are ranked by CTC log-prob plus the fused LM score of their LM tokens: every
    character, or (given ``lm_words``) every completed word plus an unfinished word that
    no LM word starts with; at the end every word counts.
    """
    log_probs = np.log(probs.astype(np.float64))

    def lm_score(prefix: tuple[int, ...], final: bool = False) -> float:
        text = "".join(vocabulary[i] for i in prefix)
        if lm_words is not None:
            tokens = [w for w in text.split(" ") if w]
            unfinished = not text.endswith(" ") and tokens
            if unfinished and not final and any(w.startswith(tokens[-1]) for w in lm_words):
                tokens = tokens[:-1]
        else:
            tokens = [ch for ch in text if ch != " "]
        if not tokens:
            return 0.0
        scores = model.full_scores(" ".join(tokens), bos=True, eos=False)
        log10 = sum(OOV_LOG10 if oov else score for score, _, oov in scores)
        return alpha * log10 + beta * len(tokens)

    beams = {(): (0.0, -np.inf)}
    for frame in log_probs:
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for c, lp in enumerate(frame):
                if c == 0:
                    entry = nxt.setdefault(prefix, [-np.inf, -np.inf])
                    entry[0] = np.logaddexp(entry[0], lp + total)
                    continue
                extended = nxt.setdefault(prefix + (c,), [-np.inf, -np.inf])
                if prefix and prefix[-1] == c:
                    stay = nxt.setdefault(prefix, [-np.inf, -np.inf])
                    stay[1] = np.logaddexp(stay[1], lp + pnb)
                    extended[1] = np.logaddexp(extended[1], lp + pb)
                else:
                    extended[1] = np.logaddexp(extended[1], lp + total)
        ranked = sorted(nxt, key=lambda l: np.logaddexp(*nxt[l]) + lm_score(l),
                        reverse=True)[:beam]
        beams = {l: tuple(nxt[l]) for l in ranked}
    scores = {l: np.logaddexp(*v) + lm_score(l, final=True) for l, v in beams.items()}
    best = max(scores, key=scores.get)
    return "".join(vocabulary[i] for i in best), float(scores[best])


@pytest.fixture(scope="module")
def zh_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus = tmp_path_factory.mktemp("lm") / "zh.txt"
    corpus.write_text("天气很好\n天气好\n很好\n机器很好\n机器\n天气很好\n", encoding="utf-8")
    path = str(corpus.with_suffix(".arpa"))
    build_lm([str(corpus)], path, order=3, token="char")
    return path


@pytest.fixture(scope="module")
def en_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus = tmp_path_factory.mktemp("lm") / "en.txt"
    corpus.write_text("\n".join(EN_SENTENCES) + "\n", encoding="utf-8")
    path = str(corpus.with_suffix(".arpa"))
    build_lm([str(corpus)], path, order=3, token="word")
    return path


def texts(hypotheses) -> list[str]:
    return [h.text for h in hypotheses]


def best(decoder, probs) -> tuple[str, float]:
    """Text and fused log score of one utterance."""
    hypothesis = decode_one(decoder, probs)
    return hypothesis.text, hypothesis.log_score


def unpack(hypothesis) -> tuple[str, float, float]:
    """Text, fused log score and CTC log-probability (minus PPASR's beam-search score)."""
    return hypothesis.text, hypothesis.log_score, -hypothesis.score


def test_greedy_collapses_and_ignores_padding():
    vocab = ["<blank>", "a", "b"]
    spec = [{"a": 0.9}, {"a": 0.8}, {"<blank>": 0.9}, {"a": 0.7}, {"b": 0.6}, {"b": 0.9},
            {"a": 0.95}, {"b": 0.95}]  # the last two frames are padding
    probs = np.stack([frames_from(spec, vocab), frames_from(spec, vocab)])
    assert texts(greedy_decode(probs, np.array([6, 8]), vocab)) == ["aab", "aabab"]


def test_greedy_batch_of_very_different_lengths():
    rng = np.random.default_rng(1)
    vocab = ["<blank>"] + list("abcdefg")
    probs = rng.dirichlet(np.ones(len(vocab)), size=(5, 60)).astype(np.float32)
    lengths = np.array([60, 1, 0, 33, 7])
    expected = [reference_greedy(probs[i], n, vocab) for i, n in enumerate(lengths)]
    assert texts(greedy_decode(probs, lengths, vocab)) == expected
    assert expected[2] == ""


def test_greedy_rejects_bad_lengths():
    with pytest.raises(ValueError):
        greedy_decode(np.ones((2, 3, 4), np.float32) / 4, np.array([1, 4]), list("_abc"))


def test_prune_frames_cutoff_prob_and_top_n():
    probs = np.array([[[0.05, 0.5, 0.3, 0.15, 0.0]]], dtype=np.float32)
    pruned = prune_frames(probs, np.array([1]), cutoff_prob=0.75, cutoff_top_n=40)[0]
    assert pruned.counts.tolist() == [2]
    assert pruned.tokens[0, :2].tolist() == [1, 2]
    assert prune_frames(probs, np.array([1]), 1.0, 3)[0].counts.tolist() == [3]
    assert prune_frames(probs, np.array([1]), 1.0, 40)[0].counts.tolist() == [4]  # no p=0


def test_beam_one_without_lm_equals_greedy_on_peaked_inputs():
    # With the argmax holding >= 0.85 of every frame, the single best prefix provably
    # follows the best path, so beam 1 must reproduce greedy decoding.
    rng = np.random.default_rng(2)
    vocab = ["<blank>"] + list("abcdefghij")
    probs = peaked_batch(rng, 40, 30, len(vocab))
    lengths = rng.integers(0, 31, size=40)
    decoder = BeamSearchDecoder(vocab, beam_size=1, num_processes=1)
    assert texts(decoder.decode(probs, lengths)) == texts(greedy_decode(probs, lengths, vocab))


def test_wide_beam_without_lm_matches_brute_force():
    rng = np.random.default_rng(3)
    for case in range(60):
        vocab_size = int(rng.integers(2, 5))
        frames = int(rng.integers(1, 7))
        concentration = [0.3, 1.0, 3.0][case % 3]
        probs = rng.dirichlet(np.full(vocab_size, concentration), size=frames)
        vocab = ["<blank>"] + list("abc")[:vocab_size - 1]
        labels, log_prob = brute_force_best(probs)
        decoder = BeamSearchDecoder(vocab, beam_size=2000, num_processes=1)
        text, score = best(decoder, probs.astype(np.float32))
        assert text == "".join(vocab[i] for i in labels), case
        assert score == pytest.approx(log_prob, abs=1e-5), case


def test_beam_search_never_decodes_padding():
    rng = np.random.default_rng(4)
    vocab = ["<blank>"] + list("abcde")
    probs = peaked_batch(rng, 3, 40, len(vocab), top=0.6)
    probs[:, 20:] = 0.0
    probs[:, 20:, 3] = 1.0  # padding full of confident "c"
    lengths = np.array([20, 5, 12])
    decoder = BeamSearchDecoder(vocab, beam_size=8, num_processes=1)
    batch = decoder.decode(probs, lengths)
    single = [decode_one(decoder, probs[i, :n]) for i, n in enumerate(lengths)]
    assert batch == single


def test_lm_token_mode_detection():
    assert detect_lm_token(ZH_VOCAB) == "char"
    assert detect_lm_token(EN_VOCAB) == "word"
    assert BeamSearchDecoder(EN_VOCAB, lm_token="char").config.lm_token == "char"


def test_char_lm_resolves_acoustic_ambiguity(zh_lm):
    spec = [{"天": 0.9}, {"<blank>": 0.9}, {"器": 0.5, "气": 0.4}, {"<blank>": 0.9},
            {"很": 0.9}, {"好": 0.9}]
    probs = frames_from(spec, ZH_VOCAB)
    plain = BeamSearchDecoder(ZH_VOCAB, beam_size=10, num_processes=1)
    fused = BeamSearchDecoder(ZH_VOCAB, beam_size=10, num_processes=1, lang_model_path=zh_lm)
    assert best(plain, probs)[0] == "天器很好"
    assert best(fused, probs)[0] == "天气很好"
    neutral = BeamSearchDecoder(ZH_VOCAB, alpha=0.0, beta=0.0, beam_size=10, num_processes=1,
                                lang_model_path=zh_lm)
    assert best(neutral, probs) == pytest.approx(best(plain, probs))


def test_word_lm_scores_completed_and_final_words(en_lm):
    def utterance(text: str, ambiguous_at: int) -> list[dict[str, float]]:
        spec = []
        for i, ch in enumerate(text):
            spec.append({"k": 0.5, "c": 0.4} if i == ambiguous_at else {ch: 0.9})
            spec.append({"<blank>": 0.9})
        return spec

    plain = BeamSearchDecoder(EN_VOCAB, beam_size=16, num_processes=1)
    fused = BeamSearchDecoder(EN_VOCAB, beam_size=16, num_processes=1, lang_model_path=en_lm)
    assert fused.config.lm_token == "word"
    final_word = frames_from(utterance("the cat", 4), EN_VOCAB)  # scored at the end
    middle_word = frames_from(utterance("the cat sat", 4), EN_VOCAB)  # scored at a space
    assert best(plain, final_word)[0] == "the kat"
    assert best(fused, final_word)[0] == "the cat"
    assert best(plain, middle_word)[0] == "the kat sat"
    assert best(fused, middle_word)[0] == "the cat sat"


@pytest.mark.parametrize("mode", ["char", "word"])
def test_lm_beam_search_matches_reference(mode, zh_lm, en_lm):
    kenlm = pytest.importorskip("kenlm")
    vocab, path = (ZH_VOCAB, zh_lm) if mode == "char" else (["<blank>", " "] + list("acht"), en_lm)
    model = kenlm.Model(path)
    rng = np.random.default_rng(6)
    for case in range(12):
        beam = int(rng.integers(1, 9))
        probs = rng.dirichlet(np.full(len(vocab), 0.4), size=int(rng.integers(1, 14)))
        probs = probs.astype(np.float32)
        decoder = BeamSearchDecoder(vocab, alpha=1.5, beta=0.5, beam_size=beam, num_processes=1,
                                    lang_model_path=path)
        text, score = best(decoder, probs)
        ref_text, ref_score = reference_beam_search(
            probs, vocab, beam, model, 1.5, 0.5,
            EN_WORDS if mode == "word" else None)
        assert text == ref_text, case
        assert score == pytest.approx(ref_score, abs=1e-4), case


def test_oov_log10_overrides_unknown_word_score(en_lm):
    probs = frames_from([{"k": 0.9}, {"a": 0.9}, {"t": 0.9}], EN_VOCAB)
    base = BeamSearchDecoder(EN_VOCAB, num_processes=1, lang_model_path=en_lm, oov_log10=None)
    harsh = BeamSearchDecoder(EN_VOCAB, num_processes=1, lang_model_path=en_lm)
    assert best(base, probs)[0] == "kat"  # KenLM's <unk> estimate: the acoustics win
    assert best(harsh, probs)[0] == "cat"  # PPASR's OOV_SCORE (log10 -1000): an LM word wins


HAND_ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-99\t<s>\t-0.25
-1.0\t</s>
-2.0\t<unk>
-0.5\t天\t-0.1
-0.7\t气

\\2-grams:
-0.2\t<s> 天
-0.3\t天 气

\\end\\
"""


def test_lm_scores_in_ppasrs_units_by_hand(tmp_path):
    """alpha x log10 P_LM + beta per character, OOV = log10 -1000, as PPASR's swig Scorer."""
    path = tmp_path / "hand.arpa"
    path.write_text(HAND_ARPA, encoding="utf-8")
    vocab = ["<blank>", "天", "气", "好"]
    decoder = BeamSearchDecoder(vocab, alpha=1.2, beta=0.35, beam_size=4, num_processes=1,
                                lang_model_path=str(path))
    assert decoder.config.lm_token == "char"
    clear = frames_from([{"天": 0.99}, {"<blank>": 0.99}, {"气": 0.99}], vocab)
    text, fused, ctc = unpack(decode_one(decoder, clear))
    # log10 P(天|<s>) = -0.2, log10 P(气|天) = -0.3: 1.2 * (-0.5) + 2 * 0.35
    assert text == "天气" and fused - ctc == pytest.approx(1.2 * -0.5 + 2 * 0.35, abs=1e-5)
    oov = frames_from([{"天": 0.99}, {"<blank>": 0.99}, {"好": 0.99}], vocab)
    decoder = BeamSearchDecoder(vocab, alpha=1e-3, beta=0.0, beam_size=4, num_processes=1,
                                lang_model_path=str(path))
    text, fused, ctc = unpack(decode_one(decoder, oov))
    assert text == "天好" and fused - ctc == pytest.approx(1e-3 * (-0.2 - 1000.0), abs=1e-5)


def test_one_lm_unit_rule_for_decoder_and_builder(tmp_path):
    """Mixed Chinese/English text: the builder's auto mode and the decoder pick the same unit."""
    from ppasr.decode.lm_builder import build_lm

    lines = ["我 爱 hello world", "今天 天气 很好", "hello 天气"]
    (tmp_path / "mixed.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = build_lm([str(tmp_path / "mixed.txt")], str(tmp_path / "mixed.arpa"))
    vocab = ["<blank>", " "] + sorted({ch for line in lines for ch in line if ch != " "})
    assert model.token == detect_lm_token(vocab) == detect_lm_token(vocab, str(tmp_path / "mixed.arpa")) == "char"
    assert BeamSearchDecoder(vocab, lang_model_path=str(tmp_path / "mixed.arpa"),
                             num_processes=1).config.lm_token == "char"
    assert detect_lm_token(["<blank>", " ", "a"], str(tmp_path / "mixed.arpa")) == "char"  # the LM decides


def test_read_arpa_words(en_lm, tmp_path):
    assert read_arpa_words(en_lm) == EN_WORDS
    binary = tmp_path / "lm.klm"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0")
    assert read_arpa_words(str(binary)) is None


def test_missing_lm_file_gives_clear_error(tmp_path):
    missing = str(tmp_path / "nope.arpa")
    with pytest.raises(FileNotFoundError, match="build_lm.py") as info:
        BeamSearchDecoder(ZH_VOCAB, lang_model_path=missing)
    assert missing in str(info.value) and "None" in str(info.value)


def test_invalid_lm_file_gives_one_line_error(tmp_path):
    bogus = tmp_path / "bogus.arpa"
    bogus.write_text("this is not a language model\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid KenLM language model") as info:
        BeamSearchDecoder(ZH_VOCAB, lang_model_path=str(bogus))
    assert "\n" not in str(info.value) and str(bogus) in str(info.value)


def test_parallel_decode_batch_equals_serial(zh_lm):
    rng = np.random.default_rng(5)
    probs = peaked_batch(rng, 6, 50, len(ZH_VOCAB), top=0.5)
    lengths = np.array([50, 10, 33, 1, 0, 47])
    serial = BeamSearchDecoder(ZH_VOCAB, beam_size=20, num_processes=1, lang_model_path=zh_lm)
    with BeamSearchDecoder(ZH_VOCAB, beam_size=20, num_processes=2,
                           lang_model_path=zh_lm) as parallel:
        assert parallel.decode(probs, lengths) == serial.decode(probs, lengths)

