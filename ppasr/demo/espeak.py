"""eSpeak NG for the demo corpus: Mandarin pronunciation (tone-numbered pinyin for the
``cmn-latn-pinyin`` voice) and the two engines (a private copy of the library, or the CLI).

eSpeak NG keeps synthesis state in C statics that ``espeak_Terminate`` does not reset, so the
same call gives different samples depending on what was spoken before. To make every
utterance depend only on its own parameters, the library engine loads a private copy of
``libespeak-ng`` and reloads it for each utterance; the CLI fallback runs one process per
utterance, which is fresh by construction.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


BACKENDS = ("auto", "library", "cli")

# --------------------------------------------------------------------------- pronunciation

# Readings pypinyin gets wrong in these grammars (it reads 调 in 调到 as diao4, and applies 一
# sandhi inside numbers, weekdays and clock times); they win over pypinyin.
_ZH_PRONUNCIATIONS = {
    "调到": "tiao2 dao4", "调成": "tiao2 cheng2", "调大一点": "tiao2 da4 yi4 dian3",
    "调小一点": "tiao2 xiao3 yi4 dian3", "调高一点": "tiao2 gao1 yi4 dian3",
    "调低一点": "tiao2 di1 yi4 dian3", "一首": "yi4 shou3", "一个": "yi2 ge4", "一下": "yi2 xia4",
    "一刻": "yi2 ke4", "成都": "cheng2 du1",
}
_ZH_OVERRIDE = re.compile("(" + "|".join(sorted(_ZH_PRONUNCIATIONS, key=len, reverse=True)) + ")")


def to_pinyin(text: str) -> str:
    """Tone-numbered pinyin (neutral tone 5, 不 and third-tone sandhi) for the pinyin voice.

    一 is read yi1 except in the measure-word phrases listed in ``_ZH_PRONUNCIATIONS``.
    """
    from pypinyin import Style, lazy_pinyin

    syllables: list[str] = []
    for piece in _ZH_OVERRIDE.split(text):
        if piece in _ZH_PRONUNCIATIONS:
            syllables.extend(_ZH_PRONUNCIATIONS[piece].split())
        elif piece:
            readings = lazy_pinyin(piece, style=Style.TONE3, neutral_tone_with_five=True,
                                   tone_sandhi=True)
            if len(readings) == len(piece):
                readings = ["yi1" if char == "一" else reading
                            for char, reading in zip(piece, readings, strict=True)]
            syllables.extend(readings)
    return " ".join(syllables)


def speech_text(sentence: str, language: str) -> str:
    """What eSpeak is given to read ``sentence`` aloud."""
    return to_pinyin(sentence) if language == "zh" else sentence


# --------------------------------------------------------------------------- eSpeak engines

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG is missing, lacks a voice or failed: fixed by installing it (generate_audio.py says so in one line)."""


@dataclass(frozen=True)
class EngineConfig:
    """How a (worker) process reaches eSpeak NG: a private library copy or the CLI."""

    kind: str  # "library" or "cli"
    path: str  # private libespeak-ng copy, or the espeak-ng executable
    data: str = ""  # espeak-ng-data directory (library only)


class EspeakLibrary:
    """libespeak-ng through ctypes, reloaded per call so that no state leaks between calls."""

    def __init__(self, library: str, data: str) -> None:
        self.library = library
        self.data = data
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    @staticmethod
    def _bind(lib: ctypes.CDLL) -> None:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p

    @contextmanager
    def _session(self, voice: str) -> Iterator[tuple[ctypes.CDLL, int]]:
        """Load a pristine library instance with ``voice`` selected; unload it afterwards."""
        import _ctypes

        lib = ctypes.CDLL(self.library)
        try:
            self._bind(lib)
            sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(),
                                                _INITIALIZE_DONT_EXIT)
            if sample_rate <= 0:
                raise EspeakError(f"espeak_Initialize failed ({sample_rate}) with data {self.data}")
            try:
                if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise EspeakError(f"eSpeak NG has no voice {voice!r}")
                yield lib, sample_rate
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> tuple[np.ndarray, int]:
        """int16 samples and their sample rate for ``text`` read by ``voice`` (may be 'v+variant').

        ``seed`` seeds the noise of breathy voices, which comes from libc's ``rand()`` (and
        eSpeak's own generator in versions that have one).
        """
        data = text.encode("utf-8")
        with self._session(voice) as (lib, sample_rate):
            ctypes.CDLL(None).srand(ctypes.c_uint(seed))
            if hasattr(lib, "espeak_ng_SetRandSeed"):
                lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            lib.espeak_SetSynthCallback(self._callback)
            lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._chunks = []
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise EspeakError(f"espeak_Synth failed ({status}) for {text!r}")
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), sample_rate

    def phonemes(self, text: str, voice: str) -> str:
        """eSpeak's phoneme mnemonics for ``text``, clause by clause."""
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        with self._session(voice) as (lib, _):
            while cursor.value:
                clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, 0).decode())
        return " ".join(clauses)

    def variants(self) -> set[str]:
        """Names of the voice variants in the data directory."""
        return set(os.listdir(os.path.join(self.data, "voices", "!v")))


class EspeakCli:
    """The ``espeak-ng`` program, one process per call (slower, but stateless by design)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def _run(self, args: list[str], text: str) -> bytes:
        proc = subprocess.run([self.executable, *args, "-b", "1", "--stdin"], input=text.encode("utf-8"),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            raise EspeakError(f"espeak-ng failed ({proc.returncode}): {message}")
        return proc.stdout

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> tuple[np.ndarray, int]:
        """int16 samples and their sample rate (streamed WAV: the header's sizes are bogus).

        ``seed`` is unused: every call is a fresh process whose noise generators start alike.
        """
        raw = self._run(["-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout"], text)
        if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
            raise EspeakError(f"espeak-ng wrote no WAV for {text!r}")
        offset, sample_rate = 12, 0
        while offset + 8 <= len(raw):
            chunk, size = raw[offset:offset + 4], int.from_bytes(raw[offset + 4:offset + 8], "little")
            if chunk == b"fmt ":
                sample_rate = int.from_bytes(raw[offset + 12:offset + 16], "little")
            elif chunk == b"data":
                body = raw[offset + 8:]
                return np.frombuffer(body[:len(body) // 2 * 2], dtype="<i2").astype(np.int16), sample_rate
            offset += 8 + size
        raise EspeakError("espeak-ng WAV has no data chunk")

    def phonemes(self, text: str, voice: str) -> str:
        """eSpeak's phoneme mnemonics for ``text``."""
        return " ".join(self._run(["-q", "-x", "-v", voice], text).decode().split())

    def variants(self) -> set[str]:
        """Names of the installed voice variants (from ``--voices=variant``)."""
        listing = self._run(["--voices=variant"], "").decode()
        return {token[3:] for token in listing.split() if token.startswith("!v/")}


Engine = EspeakLibrary | EspeakCli


@contextmanager
def open_engine(backend: str = "auto") -> Iterator[EngineConfig]:
    """Locate eSpeak NG: the pip ``espeakng-loader`` library (preferred), else ``espeak-ng``.

    For the library a private copy is made in a temporary directory for the duration of the
    context (see the module docstring for why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    loader = None
    if backend in ("auto", "library"):
        try:
            import espeakng_loader as loader
        except ImportError:
            if backend == "library":
                raise EspeakError("backend 'library' needs `pip install espeakng-loader`") from None
    if loader is not None:
        with tempfile.TemporaryDirectory(prefix="ppasr-espeak-") as tmp:
            private = os.path.join(tmp, os.path.basename(loader.get_library_path()))
            shutil.copyfile(loader.get_library_path(), private)
            yield EngineConfig("library", private, loader.get_data_path())
        return
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise EspeakError("eSpeak NG not found: `pip install espeakng-loader` "
                           "(or install the espeak-ng program)")
    yield EngineConfig("cli", executable)


def create_engine(config: EngineConfig) -> Engine:
    """The engine object for a config (one per process)."""
    return EspeakLibrary(config.path, config.data) if config.kind == "library" else EspeakCli(config.path)
