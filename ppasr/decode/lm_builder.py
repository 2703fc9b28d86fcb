"""Build small n-gram language models (interpolated modified Kneser–Ney) as ARPA files.

The decoder fuses a KenLM model with the CTC scores. PyPI's ``kenlm`` only ships the query
side (no ``lmplz``), so this module estimates the model itself, in pure Python, from the
user's own transcripts: a PPASR manifest (JSON lines with a ``"text"`` field) or plain text.

Text with Chinese characters is modelled per character, other text per word (``token="auto"``
applies the decoder's rule, :func:`ppasr.decode.language_model.detect_lm_token`, so both agree in mixed mode). The estimate follows Chen & Goodman's interpolated modified Kneser–Ney, the
same recipe as KenLM's ``lmplz``: adjusted (continuation) counts for the lower orders, three
discounts per order from counts-of-counts, and interpolation down to a uniform distribution
so that ``<unk>`` keeps some probability mass. Backoff weights are written so that KenLM's
backoff arithmetic reproduces the interpolated distribution exactly.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ppasr.data.manifest import is_manifest, read_manifest
from ppasr.decode.language_model import detect_lm_token
from ppasr.errors import UserError

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
TOKEN_MODES = ("auto", "char", "word")
DEFAULT_ORDER = {"char": 5, "word": 3}
_BINARY_SUFFIXES = (".klm", ".bin", ".binary")
# log10 "probability" written for impossible events such as predicting <s> (as lmplz does).
_LOG10_ZERO = -99.0

Ngram = tuple[str, ...]


@dataclass
class ArpaModel:
    """An estimated back-off model: per order, n-gram → (log10 prob, log10 backoff).

    ``token`` records the unit (``"char"``/``"word"``) when known.
    """

    order: int
    ngrams: list[dict[Ngram, tuple[float, float]]]
    discounts: list[tuple[float, float, float]]
    token: str | None = None

    def counts(self) -> list[int]:
        """Number of n-grams of each order, lowest first."""
        return [len(table) for table in self.ngrams]


def read_texts(paths: Iterable[str]) -> Iterator[str]:
    """Yield transcripts from manifests (their ``"text"`` fields) or plain-text files (their lines).

    A file is a manifest when its first non-empty line is a manifest entry. Empty lines and
    empty transcripts are skipped.
    """
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"--manifest {path} not found; pass manifests or text files with one transcript a line")
        try:
            if is_manifest(path):
                texts = [str(item.get("text", "")) for item in read_manifest(path)]
            else:
                with open(path, encoding="utf-8") as handle:
                    texts = [line.strip() for line in handle]
        except UnicodeDecodeError as e:
            raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8") from None
        yield from (text for text in texts if text.strip())


def tokenize(text: str, token: str) -> list[str]:
    """Split a transcript into LM tokens: non-space characters or whitespace words."""
    if token == "char":
        return [ch for ch in text if not ch.isspace()]
    if token == "word":
        return text.split()
    raise ValueError(f"token must be 'char' or 'word', got {token!r}")


def count_ngrams(sentences: Iterable[list[str]], order: int) -> list[Counter[Ngram]]:
    """Raw counts of all 1..order-grams of ``<s> sentence </s>``."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for tokens in sentences:
        padded = (BOS, *tokens, EOS)
        for n in range(1, order + 1):
            table = counts[n - 1]
            for start in range(len(padded) - n + 1):
                table[padded[start:start + n]] += 1
    return counts


def _adjusted_counts(raw: list[Counter[Ngram]]) -> list[dict[Ngram, int]]:
    """Kneser–Ney adjusted counts.

    The highest order keeps raw counts; a lower-order n-gram gets the number of distinct
    words seen to its left, except n-grams starting with ``<s>`` (which can have no left
    context) that keep their raw counts.
    """
    order = len(raw)
    adjusted: list[dict[Ngram, int]] = [{} for _ in range(order)]
    adjusted[-1] = dict(raw[-1])
    for n in range(order - 1, 0, -1):
        left_types: Counter[Ngram] = Counter(gram[1:] for gram in raw[n])
        table = adjusted[n - 1]
        for gram, count in raw[n - 1].items():
            table[gram] = count if gram[0] == BOS else left_types[gram]
    return adjusted


def modified_kn_discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser–Ney discounts (D1, D2, D3+) from one order's counts-of-counts.

    Tiny corpora can lack the counts-of-counts the formula needs, or yield discounts outside
    ``0 < D_k <= k``; they fall back to a single absolute discount ``n1 / (n1 + 2 n2)``
    (0.5 when there are no singletons).
    """
    coc = Counter(min(count, 4) for count in counts)
    n1, n2, n3, n4 = (coc[k] for k in (1, 2, 3, 4))
    single = n1 / (n1 + 2 * n2) if n1 > 0 else 0.5
    if min(n1, n2, n3, n4) == 0:
        return single, single, single
    d1 = 1 - 2 * single * n2 / n1
    d2 = 2 - 3 * single * n3 / n2
    d3 = 3 - 4 * single * n4 / n3
    if 0 < d1 <= 1 and 0 < d2 <= 2 and 0 < d3 <= 3:
        return d1, d2, d3
    return single, single, single


def estimate_kneser_ney(raw: list[Counter[Ngram]]) -> ArpaModel:
    """Estimate an interpolated modified Kneser–Ney model from raw n-gram counts.

    ``p(w|h) = max(a(hw) - D(a(hw)), 0) / a(h·) + gamma(h) p(w|h')`` where ``a`` are adjusted
    counts, ``h'`` drops the oldest word and the unigram level interpolates with the uniform
    distribution over the vocabulary (``<unk>`` and ``</s>`` included, ``<s>`` excluded).
    ``gamma(h)`` is written as the ARPA backoff weight of ``h``.
    """
    order = len(raw)
    adjusted = _adjusted_counts(raw)
    adjusted[0].pop((BOS,), None)
    adjusted[0].setdefault((UNK,), 0)
    vocab_size = len(adjusted[0])

    probs: list[dict[Ngram, float]] = []
    backoffs: list[dict[Ngram, float]] = [{} for _ in range(order)]
    discounts: list[tuple[float, float, float]] = []
    for n in range(1, order + 1):
        table = adjusted[n - 1]
        discount = modified_kn_discounts(count for count in table.values() if count > 0)
        discounts.append(discount)
        totals: dict[Ngram, float] = defaultdict(float)
        removed: dict[Ngram, float] = defaultdict(float)
        for gram, count in table.items():
            context = gram[:-1]
            totals[context] += count
            if count > 0:
                removed[context] += discount[min(count, 3) - 1]
        gammas = {context: removed[context] / total for context, total in totals.items()}
        level: dict[Ngram, float] = {}
        lower = probs[-1] if probs else None
        for gram, count in table.items():
            context = gram[:-1]
            seen = 0.0
            if count > 0:
                seen = max(count - discount[min(count, 3) - 1], 0.0) / totals[context]
            base = 1.0 / vocab_size if lower is None else lower[gram[1:]]
            level[gram] = seen + gammas[context] * base
        probs.append(level)
        if n > 1:  # the empty context of the unigrams has no ARPA entry
            backoffs[n - 2] = gammas

    ngrams: list[dict[Ngram, tuple[float, float]]] = []
    for n in range(1, order + 1):
        entries: dict[Ngram, tuple[float, float]] = {}
        if n == 1:
            entries[(BOS,)] = (_LOG10_ZERO, _log10(backoffs[0].get((BOS,), 1.0)))
        for gram, prob in probs[n - 1].items():
            entries[gram] = (_log10(prob), _log10(backoffs[n - 1].get(gram, 1.0)))
        ngrams.append(entries)
    return ArpaModel(order=order, ngrams=ngrams, discounts=discounts)


def _log10(value: float) -> float:
    return math.log10(value) if value > 0 else _LOG10_ZERO


def write_arpa(model: ArpaModel, path: str) -> None:
    """Write ``model`` in ARPA format (sorted, backoffs omitted at the highest order)."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _write_arpa(model, path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}; pass an --output you can write to") from None


def _write_arpa(model: ArpaModel, path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n\\data\\\n")
        out.writelines(f"ngram {n}={count}\n" for n, count in enumerate(model.counts(), start=1))
        for n, table in enumerate(model.ngrams, start=1):
            out.write(f"\n\\{n}-grams:\n")
            highest = n == model.order
            for gram in sorted(table):
                prob, backoff = table[gram]
                line = f"{prob:.6f}\t{' '.join(gram)}"
                if not highest:
                    line += f"\t{backoff:.6f}"
                out.write(line + "\n")
        out.write("\n\\end\\\n")


def _find_build_binary(output: str, tool: str | None) -> str:
    executable = tool or shutil.which("build_binary")
    if executable is None:
        raise UserError(
            f"cannot write the binary model {output}: KenLM's build_binary tool is not on "
            "PATH (PyPI's kenlm only ships the query module); write an .arpa file instead, "
            "the decoder loads it directly")
    return executable


def build_lm(inputs: Iterable[str], output: str, order: int | None = None,
             token: str = "auto", build_binary: str | None = None) -> ArpaModel:
    """Estimate an n-gram LM from manifests / text files and write it to ``output``.

    ``token`` is ``"char"``, ``"word"`` or ``"auto"`` (detected from the text); ``order``
    defaults to 5 for characters and 3 for words. An output ending in ``.klm``/``.bin``
    is converted with KenLM's ``build_binary`` (path given or found on PATH); anything
    else is written as ARPA.
    """
    if token not in TOKEN_MODES:
        raise ValueError(f"token must be one of {TOKEN_MODES}, got {token!r}")
    inputs = list(inputs)
    binary_tool = _find_build_binary(output, build_binary) if output.endswith(
        _BINARY_SUFFIXES) else None
    texts = list(read_texts(inputs))
    if not texts:
        raise UserError(f"no text found in {', '.join(inputs)}; they hold no transcripts")
    mode = detect_lm_token(texts) if token == "auto" else token
    order = order or DEFAULT_ORDER[mode]
    raw = count_ngrams((tokenize(text, mode) for text in texts), order)
    model = estimate_kneser_ney(raw)
    model.token = mode
    if binary_tool is not None:
        with tempfile.TemporaryDirectory() as tmp:
            arpa_path = os.path.join(tmp, "model.arpa")
            write_arpa(model, arpa_path)
            os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
            try:
                subprocess.run([binary_tool, arpa_path, output], check=True)
            except (OSError, subprocess.CalledProcessError) as e:  # not runnable, or it failed (its error shown above)
                raise UserError(f"{binary_tool} could not convert the model to {output} ({e}); write an .arpa "
                                f"file instead, the decoder loads it directly") from None
    else:
        write_arpa(model, output)
    return model
