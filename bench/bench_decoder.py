"""Decoding throughput of greedy and beam search (with/without an n-gram LM).

Synthetic but realistic inputs: sentences from a random "language" (a few hundred words
built from a Zipf-distributed alphabet) are aligned to peaked CTC posteriors, with some
frames made acoustically ambiguous between the true token and a confusable one. An LM is
estimated on the fly from other sentences of the same language. Prints utterances/s, the
real-time factor (decode time / audio time, one output frame = ``--frame_ms``) and the CER.

    python bench/bench_decoder.py [--num_processes 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.greedy import greedy_decode
from ppasr.decode.lm_builder import build_lm
from ppasr.train.metrics import corpus_cer


class SyntheticLanguage:
    """Random words over a vocabulary; each token has one confusable partner."""

    def __init__(self, vocabulary: list[str], word_mode: bool, rng: np.random.Generator,
                 num_words: int = 400) -> None:
        self.vocabulary = vocabulary
        self.word_mode = word_mode
        self.rng = rng
        letters = rng.permutation([i for i, token in enumerate(vocabulary)
                                   if i > 0 and token != " "])
        weights = 1.0 / np.arange(1, len(letters) + 1)
        weights /= weights.sum()
        lengths = rng.integers(2, 8 if word_mode else 4, size=num_words)
        self.words = ["".join(vocabulary[i] for i in rng.choice(letters, size=n, p=weights))
                      for n in lengths]
        self.partner = np.arange(len(vocabulary))
        shuffled = rng.permutation(letters)
        self.partner[shuffled] = np.roll(shuffled, 1)

    def sentence(self) -> str:
        """Zipf-chosen words up to 35-75 characters (about 100-250 CTC frames)."""
        separator = " " if self.word_mode else ""
        target, words = self.rng.integers(35, 76), []
        while len(separator.join(words)) < target:
            rank = min(int(self.rng.zipf(1.3)), len(self.words))
            words.append(self.words[rank - 1])
        return separator.join(words)

    def posteriors(self, text: str, max_frames: int) -> np.ndarray:
        """Peaked [T, V] CTC posteriors aligned to ``text`` (cut after ``max_frames + 1``)."""
        index = {token: i for i, token in enumerate(self.vocabulary)}
        frames: list[tuple[int, int, float, float]] = []
        for i, ch in enumerate(text):
            token = index[ch]
            # One token in five is ambiguous: its partner takes 35-60% of the peak mass.
            share = self.rng.uniform(0.35, 0.6) if self.rng.random() < 0.2 else 0.0
            for _ in range(self.rng.integers(1, 3)):
                frames.append((token, self.partner[token], self.rng.uniform(0.6, 0.97), share))
            need_blank = i + 1 < len(text) and text[i + 1] == ch
            for _ in range(max(int(need_blank), self.rng.integers(0, 4))):
                frames.append((0, 0, self.rng.uniform(0.8, 0.99), 0.0))
        frames = frames[:max_frames + 1]
        noise = self.rng.random((len(frames), len(self.vocabulary)), dtype=np.float32) ** 8
        noise /= noise.sum(axis=1, keepdims=True)
        probs = np.empty_like(noise)
        for t, (token, partner, peak, share) in enumerate(frames):
            probs[t] = noise[t] * (1 - peak)
            probs[t, token] += peak * (1 - share)
            probs[t, partner] += peak * share
        return probs


def make_batch(language: SyntheticLanguage, size: int, max_frames: int
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A padded batch of posteriors, its lengths and the reference texts."""
    texts, utterances = [], []
    while len(utterances) < size:
        text = language.sentence()
        probs = language.posteriors(text, max_frames)
        if 100 <= probs.shape[0] <= max_frames:
            texts.append(text)
            utterances.append(probs)
    lengths = np.array([u.shape[0] for u in utterances])
    batch = np.zeros((size, lengths.max(), len(language.vocabulary)), dtype=np.float32)
    batch[:, :, 0] = 1.0
    for i, probs in enumerate(utterances):
        batch[i, :probs.shape[0]] = probs
    return batch, lengths, texts


def run(name: str, decode, batches, frame_ms: float) -> dict[str, object]:
    """Time ``decode(probs, lengths)`` over the batches and score it."""
    start = time.perf_counter()
    pairs = []
    for probs, lengths, texts in batches:
        pairs.extend(zip(texts, [h.text for h in decode(probs, lengths)]))
    elapsed = time.perf_counter() - start
    audio = sum(float(lengths.sum()) for _, lengths, _ in batches) * frame_ms / 1000.0
    return {"decoder": name, "utts": len(pairs), "utt/s": len(pairs) / elapsed,
            "RTF": elapsed / audio, "CER": corpus_cer(pairs)}


def bench_language(label: str, vocabulary: list[str], word_mode: bool, args: argparse.Namespace,
                   workdir: str) -> list[dict[str, object]]:
    """Every decoder configuration on one synthetic language."""
    rng = np.random.default_rng(args.seed)
    language = SyntheticLanguage(vocabulary, word_mode, rng)
    corpus = Path(workdir) / f"{label}.txt"
    corpus.write_text("\n".join(language.sentence() for _ in range(args.lm_sentences)) + "\n",
                      encoding="utf-8")
    lm_path = str(Path(workdir) / f"{label}.arpa")
    start = time.perf_counter()
    model = build_lm([str(corpus)], lm_path, token="word" if word_mode else "char")
    print(f"[{label}] built {model.token} {model.order}-gram LM ({sum(model.counts())} n-grams) "
          f"in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    batches = [make_batch(language, args.batch_size, args.max_frames)
               for _ in range(args.num_batches)]
    rows = [run("greedy", lambda p, n: greedy_decode(p, n, vocabulary), batches, args.frame_ms)]
    for beam in args.beams:
        used = batches if beam <= 32 else batches[:1]
        for lm in (None, lm_path):
            with BeamSearchDecoder(vocabulary, beam_size=beam, lang_model_path=lm,
                                   num_processes=args.num_processes) as decoder:
                name = f"beam {beam}" + (" + LM" if lm else "")
                rows.append(run(name, decoder.decode, used, args.frame_ms))
    for row in rows:
        row["vocab"] = f"{label} V={len(vocabulary)}"
    return rows


def main() -> None:
    """Parse flags, run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zh_vocab_size", type=int, default=4000)
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 300])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_batches", type=int, default=3,
                        help="batches per decoder; beams > 32 use only the first")
    parser.add_argument("--max_frames", type=int, default=250)
    parser.add_argument("--frame_ms", type=float, default=40.0,
                        help="audio per output frame (10 ms hop x 4 subsampling)")
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--lm_sentences", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    zh = ["<blank>"] + [chr(0x4E00 + i) for i in range(args.zh_vocab_size - 1)]
    en = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    with tempfile.TemporaryDirectory() as workdir:
        rows = bench_language("zh", zh, False, args, workdir)
        rows += bench_language("en", en, True, args, workdir)

    print(f"\nnum_processes={args.num_processes}, {args.frame_ms:g} ms per output frame\n")
    print(f"| {'vocab':<10} | {'decoder':<13} | {'utts':>4} | {'utt/s':>8} | {'RTF':>8} | "
          f"{'CER':>6} |")
    print(f"|{'-' * 12}|{'-' * 15}|{'-' * 6}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for row in rows:
        print(f"| {row['vocab']:<10} | {row['decoder']:<13} | {row['utts']:>4} | "
              f"{row['utt/s']:>8.1f} | {row['RTF']:>8.4f} | {row['CER']:>6.3f} |")


if __name__ == "__main__":
    main()
