"""infer_gui.py's window (PPASR a3c1911's Tk GUI): recognise a short or long audio file or a microphone
recording, play it back, show the result lines and the time taken.

Recognition, recording and playback run on worker threads; Tk is touched only on the UI thread,
which drains a queue of callbacks the workers post. Every line shown is also printed, so the
window's log is the same as a terminal's.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ppasr.data.audio import AudioError, read_audio
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import build_decoder
from ppasr.errors import UserError
from ppasr.serve.infer import InferOptions, ModelSource, result_lines, transcribe_segments

if TYPE_CHECKING:
    import tkinter

TITLE = "PPASR 语音识别"
MAX_RECORD_S = 20.0  # PPASR's limit
RECORD_DIR = "dataset/record"
AUDIO_TYPES = [("音频文件", "*.wav *.flac *.mp3 *.ogg *.m4a"), ("所有文件", "*")]


def open_window() -> tkinter.Tk:
    """The Tk root, or a UserError naming why there is no display (or no Tk)."""
    try:
        import tkinter
    except ImportError as e:
        raise UserError(f"this Python has no Tk ({e}); install a Python built with Tk "
                        "(Debian: apt-get install python3-tk) or use infer_path.py") from None
    if sys.platform not in ("win32", "darwin") and not os.environ.get("DISPLAY"):  # X11 (XWayland sets it too)
        raise UserError("no display: DISPLAY is not set; infer_gui.py needs a desktop session "
                        "(on a server use infer_path.py, or run `xvfb-run python3 infer_gui.py`)")
    try:
        return tkinter.Tk()
    except tkinter.TclError as e:
        raise UserError(f"cannot open a window on display {os.environ.get('DISPLAY', '')!r} ({e}); "
                        "check DISPLAY, or use infer_path.py") from None


def _sounddevice():
    """The sounddevice module, or a UserError explaining what is missing."""
    try:
        import sounddevice
    except OSError as e:  # the package is there but the PortAudio library is not
        raise UserError(f"no audio system: {e} (install PortAudio: `apt-get install libportaudio2`)") from None
    return sounddevice


def _device(kind: str) -> None:
    """Fail with a clear message when there is no default ``kind`` ('input' or 'output') device."""
    sd = _sounddevice()
    try:
        sd.query_devices(kind=kind)
    except (ValueError, sd.PortAudioError):
        what = "microphone" if kind == "input" else "speaker"
        raise UserError(f"no {what} found (没有找到{'麦克风' if kind == 'input' else '播放设备'}); "
                        "connect one or pick an audio file instead") from None


class RecognizerApp:
    """PPASR's window: four buttons, the Arabic-numeral switch and a log."""

    def __init__(self, root: tkinter.Tk, source: ModelSource, options: InferOptions, decoding: DecodeOptions) -> None:
        import tkinter as tk

        self.options = options
        self.predictor = source.load()
        self.decoder = build_decoder(decoding, self.predictor.vocabulary)
        self.sample_rate = self.predictor.feature_config.sample_rate
        self.root = root
        self.posted: queue.Queue[Callable[[], None]] = queue.Queue()
        self.busy = False  # recognising, recording or playing: one at a time
        self.recording = threading.Event()
        self.wav_path: str | None = None
        root.title(TITLE)
        root.geometry("870x500")
        root.resizable(False, False)
        self.buttons = {}
        for x, (name, text, command) in zip((10, 170, 330, 490), (
                ("short", "选择短语音识别", lambda: self.choose_file(long_audio=False)),
                ("long", "选择长语音识别", lambda: self.choose_file(long_audio=True)),
                ("record", "录音识别", self.toggle_recording),
                ("play", "播放音频", self.play))):
            self.buttons[name] = tk.Button(root, text=text, width=16, command=command)
            self.buttons[name].place(x=x, y=10)
        self.to_an = tk.BooleanVar(value=options.to_an)
        tk.Checkbutton(root, text="中文数字转阿拉伯数字", variable=self.to_an).place(x=660, y=14)
        tk.Label(root, text="输出日志：").place(x=10, y=60)
        self.log_text = tk.Text(root, width=120, height=28)
        self.log_text.place(x=10, y=85, width=850, height=405)
        self.log(f"模型已加载：{source.model_dir}")
        root.after(50, self._drain)

    # ---- UI thread ------------------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                self.posted.get_nowait()()
            except queue.Empty:
                break
        self.root.after(50, self._drain)

    def log(self, line: str) -> None:
        print(line, flush=True)
        self.log_text.insert("end", line + "\n")
        self.log_text.see("end")

    def _warn(self, message: str) -> None:
        from tkinter import messagebox

        self.log(f"警告: {message}")
        messagebox.showwarning("警告", message)

    def _start(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a worker thread; its UserError becomes a warning, and the app is free again."""
        def work() -> None:
            try:
                job()
            except UserError as e:
                self.posted.put(lambda message=str(e): self._warn(message))
            finally:
                self.posted.put(self._done)

        self.busy = True
        threading.Thread(target=work, daemon=True).start()

    def _done(self) -> None:
        self.busy = False
        self.buttons["record"].configure(text="录音识别")
        self.buttons["play"].configure(text="播放音频")

    def choose_file(self, long_audio: bool) -> None:
        from tkinter import filedialog

        if self.busy:
            return self._warn("正在处理，请等待上一轮结束！")
        path = filedialog.askopenfilename(parent=self.root, filetypes=AUDIO_TYPES,
                                          initialdir="dataset" if os.path.isdir("dataset") else ".")
        if not path:
            return None
        self.wav_path = path
        self.log_text.delete("1.0", "end")
        self.log(f"已选择音频文件：{path}")
        self.log("正在识别中...")
        to_an = self.to_an.get()  # Tk variables are read on the UI thread only
        self._start(lambda: self._recognise(path, long_audio, to_an))
        return None

    def toggle_recording(self) -> None:
        if self.recording.is_set():
            self.recording.clear()
            return
        if self.busy:
            return self._warn("正在处理，请等待上一轮结束！")
        self.log_text.delete("1.0", "end")
        self.recording.set()
        self.buttons["record"].configure(text="停止录音")
        to_an = self.to_an.get()
        self._start(lambda: self._record(to_an))
        return None

    def play(self) -> None:
        if self.wav_path is None:
            return self._warn("没有可播放的音频：先选择文件或录音")
        if self.busy:
            if self.buttons["play"].cget("text") == "停止播放":
                _sounddevice().stop()
                return None
            return self._warn("正在处理，请等待上一轮结束！")
        self.buttons["play"].configure(text="停止播放")
        self._start(self._play)
        return None

    # ---- worker threads -------------------------------------------------------------------------
    def _post_log(self, line: str) -> None:
        self.posted.put(lambda: self.log(line))

    def _recognise(self, path: str, long_audio: bool, to_an: bool) -> None:
        try:
            samples, _ = read_audio(path, self.sample_rate)
        except AudioError as e:
            raise UserError(f"{path}: {e}") from None
        start = time.time()
        results = transcribe_segments(self.predictor, samples, self.decoder, to_an, long_audio,
                                      self.options.vad)
        for line in result_lines(results, round((time.time() - start) * 1000), long_audio):
            self._post_log(line)

    def _record(self, to_an: bool) -> None:
        """Record until stopped or ``MAX_RECORD_S``, save under dataset/record/, recognise it."""
        try:
            _device("input")
            sd = _sounddevice()
            blocks: list[np.ndarray] = []
            self._post_log("正在录音...")
            start = time.time()
            with sd.InputStream(samplerate=self.sample_rate, channels=1, dtype="float32") as stream:
                while self.recording.is_set() and time.time() - start < MAX_RECORD_S:
                    blocks.append(stream.read(self.sample_rate // 10)[0][:, 0].copy())
            if time.time() - start >= MAX_RECORD_S:
                self._post_log(f"录音已达到最大时长 {MAX_RECORD_S:.0f} 秒，已停止录音")
        finally:
            self.recording.clear()
        import soundfile

        os.makedirs(RECORD_DIR, exist_ok=True)
        path = os.path.join(RECORD_DIR, f"{time.strftime('%Y%m%d_%H%M%S')}.wav")
        soundfile.write(path, np.concatenate(blocks) if blocks else np.zeros(0, np.float32), self.sample_rate,
                        subtype="PCM_16")
        self.wav_path = path
        self._post_log(f"录音已结束，录音文件保存在：{path}")
        self._post_log("正在识别中...")
        self._recognise(path, False, to_an)

    def _play(self) -> None:
        _device("output")
        try:
            samples, rate = read_audio(self.wav_path, None)
        except AudioError as e:
            raise UserError(f"{self.wav_path}: {e}") from None
        sd = _sounddevice()
        sd.play(samples, rate)
        sd.wait()


def run_gui(source: ModelSource, options: InferOptions, decoding: DecodeOptions) -> None:
    """infer_gui.py: open the window (or fail with one error line) and run it."""
    root = open_window()
    try:
        RecognizerApp(root, source, options, decoding)
    except BaseException:
        root.destroy()
        raise
    root.mainloop()
