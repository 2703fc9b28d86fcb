"""PPASR a3c1911's Python API: ``from ppasr.predict import Predictor``.

Same constructor arguments and ``predict(audio_path, to_an=False) -> (score, text)`` as a3c1911, on our
inference backends (onnxruntime on CPU, Paddle Inference on GPU) and decoders. Beyond a3c1911:
``predict_long_audio`` (what ``infer_path.py --is_long_audio`` prints as its final result) and
``new_stream`` (chunked recognition, as the server's WebSocket uses it).
"""
from __future__ import annotations

from ppasr.data.audio import AudioError, read_audio
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import build_decoder, decode_one
from ppasr.errors import UserError
from ppasr.serve import infer
from ppasr.utils import available_cores


class Predictor:
    """An exported model with the decoder a3c1911's Predictor was configured with.

    ``gpu_mem`` is accepted for old scripts (Paddle Inference sizes its GPU pool itself here);
    ``num_threads`` (a3c1911's default 10) is capped at the cores this process may use, as more threads
    than cores only slow inference down. ``lang_model_path`` missing on disk: beam search without an LM,
    with a warning (a3c1911 failed).
    """

    def __init__(self, model_dir: str, vocab_path: str | None, decoder: str = "ctc_greedy", alpha: float = 1.2,
                 beta: float = 0.35, lang_model_path: str | None = None, beam_size: int = 10,
                 cutoff_prob: float = 1.0, cutoff_top_n: int = 40, use_gpu: bool = True, gpu_mem: int = 500,
                 num_threads: int = 10, backend: str | None = None) -> None:
        if decoder not in ("ctc_greedy", "ctc_beam_search"):
            raise UserError(f"decoder {decoder!r}: use 'ctc_greedy' or 'ctc_beam_search'")
        self.model = infer.ModelSource(model_dir, vocab_path, use_gpu, backend,
                                       min(num_threads, available_cores())).load()
        options = DecodeOptions(decoder=decoder, alpha=alpha, beta=beta, lang_model_path=lang_model_path,
                                beam_size=beam_size, cutoff_prob=cutoff_prob, cutoff_top_n=cutoff_top_n)
        self.decoder = build_decoder(options, self.model.vocabulary)

    def predict(self, audio_path: str, to_an: bool = False) -> tuple[float, str]:
        """``(score, text)`` of one clip (score: 0-100 for greedy, −CTC log-probability for beam search)."""
        results = infer.transcribe_segments(self.model, self._read(audio_path), self.decoder, to_an, False)
        return (results[0].score, results[0].text) if results else (0.0, "")

    def predict_long_audio(self, audio_path: str, to_an: bool = False) -> tuple[float, str]:
        """Long audio cut at pauses: the mean score and the segments' texts joined with "，"."""
        return infer.joined_result(infer.transcribe_segments(self.model, self._read(audio_path), self.decoder, to_an,
                                                             True))

    def new_stream(self) -> infer.Stream:
        """Chunked recognition of one utterance: ``accept(samples)`` / ``finish()`` give probability frames."""
        return self.model.new_stream()

    def decode(self, probs) -> tuple[float, str]:
        """``(score, text)`` of probability frames [T, V] (e.g. those a stream produced)."""
        hypothesis = decode_one(self.decoder, probs)
        return hypothesis.score, hypothesis.text

    def close(self) -> None:
        self.decoder.close()

    def _read(self, audio_path: str):
        try:
            return read_audio(audio_path, self.model.feature_config.sample_rate)[0]
        except AudioError as e:
            raise UserError(f"{audio_path}: {e}") from None
