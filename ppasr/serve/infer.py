"""infer_path.py's work, and the streaming API a server uses: transcribe audio with an exported model.

``Predictor`` wraps the exported static model (PPASR's signature: audio, audio_len,
init_state_h_box → probabilities, output lengths, final state). ``Predictor.new_stream()``
turns 16 kHz samples arriving in chunks into new probability frames as they become
computable: feature framing, the conv front end's context and the GRU state are carried
between chunks, so each chunk advances the model and no prefix is recomputed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ppasr.data.audio import AudioError, normalize_gain, read_audio
from ppasr.data.features import AudioFeaturizer
from ppasr.data.text import to_arabic_numerals
from ppasr.decode.hotwords import HotwordGraph
from ppasr.decode.hypothesis import Hypothesis, Timestamp, numerals_with_times, timestamps
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import Decoder, build_decoder, decode_one
from ppasr.errors import UserError
from ppasr.serve.backend import cuda_available, load_backend
from ppasr.serve.export import MODEL_PREFIX, VOCAB_FILE, read_exported_model
from ppasr.serve.syllables import snap_to_syllables
from ppasr.serve.vad import split_on_silence
from ppasr.utils import read_vocabulary


class Predictor:
    """An exported model (on an inference backend) plus its featurizer and vocabulary."""

    def __init__(self, model_dir: str, use_gpu: bool = False, backend: str | None = None, num_threads: int = 0):
        self.exported = read_exported_model(model_dir)
        self.vocabulary = read_vocabulary(os.path.join(model_dir, VOCAB_FILE), "python3 export_model.py")
        if len(self.vocabulary) != self.exported.config.vocab_size:
            raise UserError(f"{model_dir}/{VOCAB_FILE} has {len(self.vocabulary)} tokens but the model "
                            f"outputs {self.exported.config.vocab_size}; export the model again")
        self.feature_config = self.exported.config.feature_config
        self.featurizer = AudioFeaturizer(self.feature_config)
        if use_gpu and not cuda_available():
            print("note: this paddle has no CUDA, running on the CPU (--use_gpu=False silences this)")
        self.backend = load_backend(model_dir, MODEL_PREFIX, backend, use_gpu, num_threads)
        self.run(np.zeros((self.feature_config.dim, 100), dtype=np.float32), self.initial_state())  # warm-up

    @property
    def frame_ms(self) -> float:
        """How long one output frame lasts: the feature stride times the model's time subsampling."""
        return self.feature_config.stride_ms * self.exported.subsampling

    def initial_state(self) -> np.ndarray:
        """The streaming state of a fresh clip: zeros (for DeepSpeech2 [num_rnn_layers, 1, rnn_size])."""
        return np.zeros(self.exported.state_shape, dtype=np.float32)

    def run(self, feature: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass of the exported model over features [D, T] from ``state``: probabilities
        [output frames of T, V] and the state after them."""
        audio = np.ascontiguousarray(feature, dtype=np.float32)[None]
        probs, out_len, final = self.backend(audio, np.array([feature.shape[1]], dtype=np.int64), state)
        return probs[0, :int(out_len[0])], final

    def probabilities(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Per-frame softmax [T', V] of one whole clip at the model's sample rate."""
        return self.run(self.featurizer.featurize(samples, sample_rate), self.initial_state())[0]

    def new_stream(self, gain: float | None = None, calibration_s: float = 1.0) -> Stream:
        """A stream of 16 kHz float32 samples; see :class:`Stream`."""
        return Stream(self, gain, calibration_s)


class Stream:
    """Incremental recognition of one utterance: ``accept(chunk)`` → new frames, ``finish()``.

    Loudness: a whole clip is scaled to the feature config's ``target_db`` by its own RMS,
    which a stream cannot know in advance. The stream fixes its gain from the first
    ``calibration_s`` seconds it receives (frames come out once they have arrived) or uses
    ``gain`` when given; with the gain of the whole clip the frames equal
    :meth:`Predictor.probabilities` of that clip.
    """

    def __init__(self, predictor: Predictor, gain: float | None = None, calibration_s: float = 1.0):
        config = predictor.feature_config
        self._predictor = predictor
        self._window = int(0.001 * config.sample_rate * config.window_ms)
        self._stride = int(0.001 * config.sample_rate * config.stride_ms)
        self._calibration = max(self._window, int(calibration_s * config.sample_rate))
        self.gain = gain
        self._samples = np.zeros(0, dtype=np.float32)  # received, not yet cut into frames
        self._features = np.zeros((config.dim, 0), dtype=np.float32)  # frames the convs still need
        self._state = predictor.initial_state()
        self._finished = False

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Add 16 kHz float32 mono samples; return the probability frames [t, V] they complete."""
        if self._finished:
            raise ValueError("stream already finished")
        self._samples = np.concatenate([self._samples, np.asarray(samples, dtype=np.float32).reshape(-1)])
        if self.gain is None:
            if self._samples.shape[0] < self._calibration:
                return self._empty()
            self.gain = self._loudness_gain()
        return self._advance()

    def finish(self) -> np.ndarray:
        """End of the utterance: the remaining probability frames [t, V]."""
        if self._finished:
            raise ValueError("stream already finished")
        self._finished = True
        if self.gain is None:
            self.gain = self._loudness_gain()
        return self._advance()

    def _loudness_gain(self) -> float:
        return normalize_gain(self._samples, self._predictor.feature_config.target_db)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, len(self._predictor.vocabulary)), dtype=np.float32)

    def _advance(self) -> np.ndarray:
        """Frame the complete windows, run the model over every output frame they complete."""
        frames = (self._samples.shape[0] - self._window) // self._stride + 1
        if frames > 0:
            used = (frames - 1) * self._stride + self._window
            chunk = self._samples[:used] * np.float32(self.gain)
            self._features = np.concatenate([self._features, self._predictor.featurizer.extract(chunk)], axis=1)
            self._samples = self._samples[frames * self._stride:]
        exported = self._predictor.exported
        outputs = exported.output_length(self._features.shape[1])
        if outputs <= 0:
            return self._empty()
        probs, self._state = self._predictor.run(self._features, self._state)
        # output k reads frames [s·k, s·k + context): keep what the next output still needs
        self._features = self._features[:, outputs * exported.subsampling:]
        return probs


@dataclass(frozen=True)
class Transcript:
    """The result of a clip or of one segment of long audio.

    ``text`` is what the user sees (``--to_an`` applied), ``score`` PPASR's score, ``start_ms``/``end_ms``
    the segment's place in the recording and ``timestamps`` the times of its characters (words for
    English) in the recording, numbers converted as in ``text``.
    """

    text: str
    score: float
    start_ms: int
    end_ms: int
    timestamps: tuple[Timestamp, ...]
    hypothesis: Hypothesis


def transcript(predictor: Predictor, hypothesis: Hypothesis, to_an: bool, start_ms: float = 0.0,
               end_ms: float | None = None, samples: np.ndarray | None = None) -> Transcript:
    """A decoder's hypothesis as the user sees it, times shifted by the segment's start. With the
    segment's ``samples``, Chinese characters start at their syllable onsets (:mod:`.syllables`);
    without (streaming partial results), at the model's CTC spikes."""
    times = timestamps(hypothesis, predictor.vocabulary, predictor.frame_ms, start_ms)
    if samples is not None:
        times = snap_to_syllables(times, samples, predictor.feature_config.sample_rate, start_ms)
    if to_an:
        times = numerals_with_times(times)
    end = end_ms if end_ms is not None else start_ms + max((f[1] for f in hypothesis.frames), default=0) * \
        predictor.frame_ms
    return Transcript(text=to_arabic_numerals(hypothesis.text) if to_an else hypothesis.text,
                      score=hypothesis.score, start_ms=round(start_ms), end_ms=round(end),
                      timestamps=tuple(times), hypothesis=hypothesis)


def transcribe_segments(predictor: Predictor, samples: np.ndarray, decoder: Decoder, to_an: bool,
                        long_audio: bool, vad: str = "webrtc", hotwords: HotwordGraph | None = None) -> list[Transcript]:
    """The clip's transcript, or one per speech segment ``vad`` finds in long audio (segments that
    decode to no text are dropped: they would only join the result with empty ``，``); ``hotwords``
    replace the decoder's own (beam search only)."""
    sample_rate = predictor.feature_config.sample_rate
    ranges = split_on_silence(samples, sample_rate, vad) if long_audio else [(0, len(samples))]
    minimum = 4 * int(sample_rate * predictor.feature_config.window_ms / 1000)
    results = []
    for start, end in ranges:
        if end - start < minimum:
            continue
        probs = predictor.probabilities(samples[start:end], sample_rate)
        if probs.shape[0] == 0:
            continue
        hypothesis = decode_one(decoder, probs, hotwords)
        if long_audio and not hypothesis.text:
            continue
        results.append(transcript(predictor, hypothesis, to_an, 1000.0 * start / sample_rate,
                                  1000.0 * end / sample_rate, samples[start:end]))
    return results


def check_vocabulary(predictor: Predictor, vocab_path: str | None, model_dir: str) -> None:
    """``--vocab_path`` must agree with the vocabulary exported beside the model (if it exists)."""
    if vocab_path and os.path.exists(vocab_path) and read_vocabulary(vocab_path) != predictor.vocabulary:
        raise UserError(f"--vocab_path={vocab_path} differs from the vocabulary the model in {model_dir} was "
                        f"trained with; pass --vocab_path={os.path.join(model_dir, VOCAB_FILE)} or export "
                        f"the model trained on {vocab_path}")


@dataclass(frozen=True)
class ModelSource:
    """Which exported model to run and how (the prediction flags infer_path.py, infer_gui.py and
    infer_server.py share)."""

    model_dir: str
    vocab_path: str | None = None
    use_gpu: bool = False
    backend: str | None = None
    num_threads: int = 0

    def load(self) -> Predictor:
        """The model on its backend, its vocabulary checked against ``vocab_path``."""
        predictor = Predictor(self.model_dir, self.use_gpu, self.backend, self.num_threads)
        check_vocabulary(predictor, self.vocab_path, self.model_dir)
        return predictor


@dataclass(frozen=True)
class InferOptions:
    """infer_path.py's and infer_gui.py's flags besides the model and the decoder."""

    to_an: bool = True
    vad: str = "webrtc"
    wav_path: str = ""
    is_long_audio: bool = False
    print_timestamps: bool = False


def infer_path(source: ModelSource, options: InferOptions, decoding: DecodeOptions) -> None:
    """The whole infer_path.py job, printing PPASR's result lines."""
    predictor = source.load()
    decoder = build_decoder(decoding, predictor.vocabulary)
    try:
        samples, _ = read_audio(options.wav_path, predictor.feature_config.sample_rate)
    except AudioError as e:
        raise UserError(f"{options.wav_path}: {e}") from None
    start = time.time()
    results = transcribe_segments(predictor, samples, decoder, options.to_an, options.is_long_audio, options.vad)
    for line in result_lines(results, round((time.time() - start) * 1000), options.is_long_audio):
        print(line)
    if options.print_timestamps:
        for line in timestamp_lines(results):
            print(line)


def result_lines(results: list[Transcript], elapsed_ms: int, long_audio: bool) -> list[str]:
    """PPASR's result lines (infer_path.py and infer_gui.py): one for a clip; one per segment and
    the joined result for long audio."""
    if not long_audio:
        text, score = (results[0].text, results[0].score) if results else ("", 0.0)
        return [f"消耗时间：{elapsed_ms}ms, 识别结果: {text}, 得分: {int(score)}"]
    lines = [f"第{i}个分割音频, 得分: {int(r.score)}, 识别结果: {r.text}" for i, r in enumerate(results)]
    score, joined = joined_result(results)
    return lines + [f"最终结果，消耗时间：{elapsed_ms}, 得分: {int(score)}, 识别结果: {joined}"]


def joined_result(results: list[Transcript]) -> tuple[float, str]:
    """PPASR's result of long audio: the segments' mean score and their texts joined with "，"."""
    score = sum(r.score for r in results) / len(results) if results else 0.0
    return score, "，".join(r.text for r in results)


def timestamp_lines(results: list[Transcript]) -> list[str]:
    """``--print_timestamps``: one line per character (word for English), times in the recording."""
    return [f"{t.start_ms / 1000:.2f}s - {t.end_ms / 1000:.2f}s {t.text}" for r in results for t in r.timestamps]
