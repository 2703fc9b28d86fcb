"""infer_gui.py (issue 19 part 4) under Xvfb, driven through its real widgets with xdotool."""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import REPO, TEST_WAV, run_cli

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool (apt-get install xvfb xdotool; .ci/run does)")


@pytest.fixture
def display():
    """A private Xvfb server; yields its DISPLAY."""
    number = next(n for n in range(90, 200) if not os.path.exists(f"/tmp/.X11-unix/X{n}")
                  and not os.path.exists(f"/tmp/.X{n}-lock"))
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        assert server.poll() is None and time.time() < deadline, "Xvfb did not start"
        time.sleep(0.1)
    yield f":{number}"
    server.terminate()
    server.wait(10)


class Gui:
    """infer_gui.py as a child process; its printed log lines arrive on a queue."""

    def __init__(self, cwd: Path, display: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DISPLAY": display}
        self.env = env
        self.proc = subprocess.Popen([sys.executable, str(REPO / "infer_gui.py"), "--use_gpu=False"], cwd=cwd,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line.rstrip("\n")) for line in self.proc.stdout],
                         daemon=True).start()

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "infer_gui.py exited:\n" + "\n".join(self.seen)
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} in:\n" + "\n".join(self.seen))

    def xdotool(self, *args: str) -> str:
        """xdotool's output ('' when a search finds nothing: it then exits 1)."""
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    def window(self, title: str) -> str:
        return self.xdotool("search", "--sync", "--onlyvisible", "--name", title).splitlines()[0]

    def window_of_class(self, name: str) -> str:
        return self.xdotool("search", "--sync", "--onlyvisible", "--classname", name).splitlines()[0]

    def click(self, window: str, x: int, y: int) -> None:
        self.xdotool("mousemove", "--window", window, str(x), str(y), "click", "1")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_no_display_is_one_error_line(exported_corpus):
    proc = run_cli("infer_gui.py", "--use_gpu=False", cwd=exported_corpus, check=False, env={"DISPLAY": ""})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: no display")


def test_a_file_is_recognised_through_the_window(exported_corpus, display, tmp_path):
    from PIL import ImageGrab

    expected = run_cli("infer_path.py", f"--wav_path={TEST_WAV}", "--use_gpu=False", cwd=exported_corpus).stdout
    expected_text = next(l for l in expected.splitlines() if l.startswith("消耗时间")).split("识别结果: ")[1]
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    long_wav = tmp_path / "long.wav"
    soundfile.write(long_wav, np.concatenate([samples, np.zeros(sr, np.float32), samples]), sr)
    gui = Gui(exported_corpus, display)
    try:
        gui.wait_for("模型已加载")
        main = gui.window("^PPASR")
        gui.click(main, 70, 25)  # 选择短语音识别
        dialog = gui.window("^Open$")
        gui.xdotool("windowfocus", "--sync", dialog)
        gui.xdotool("type", "--delay", "5", str(TEST_WAV))
        gui.xdotool("key", "Return")
        assert gui.wait_for("已选择音频文件：") == f"已选择音频文件：{TEST_WAV}"
        line = gui.wait_for("消耗时间：")
        assert line.split("识别结果: ")[1] == expected_text  # same model, same text as infer_path.py
        time.sleep(0.3)  # let Tk paint the log before the screenshot
        geometry = dict(kv.split("=") for kv in gui.xdotool("getwindowgeometry", "--shell", main).split())
        x, y, w, h = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        shot = ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=display)
        out = Path(os.environ.get("PPASR_GUI_SCREENSHOT", tmp_path / "infer_gui.png"))
        shot.save(out)
        assert (w, h) == (870, 500) and np.asarray(shot.convert("L")).std() > 10

        gui.click(main, 250, 25)  # 选择长语音识别: the clip twice with a pause, split by the default VAD
        gui.xdotool("windowfocus", "--sync", gui.window("^Open$"))
        gui.xdotool("type", "--delay", "5", str(long_wav))
        gui.xdotool("key", "Return")
        parts = [gui.wait_for("第0个分割音频"), gui.wait_for("第1个分割音频")]
        final = gui.wait_for("最终结果")
        assert final.split("识别结果: ")[1] == "，".join(p.split("识别结果: ")[1] for p in parts)

        gui.click(main, 390, 25)  # 录音识别: this machine has no microphone
        assert "no microphone found" in gui.wait_for("警告: ")
        warning = gui.window_of_class("__tk__messagebox")  # its Chinese title is not searchable by name
        gui.xdotool("windowfocus", "--sync", warning)
        gui.xdotool("key", "Return")
        time.sleep(0.5)
        assert not gui.xdotool("search", "--onlyvisible", "--classname", "__tk__messagebox")
        assert gui.proc.poll() is None
    finally:
        gui.close()
