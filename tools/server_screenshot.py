"""Use infer_server.py's page in headless Chromium as a user would: record a clip through a fake
microphone (live partial text, final text, playback), upload the same clip, and take a screenshot.

    python3 infer_server.py --host=127.0.0.1 &                  # the server to look at
    python3 tools/server_screenshot.py --url=http://127.0.0.1:5000 --audio=dataset/test.wav \\
        --output=docs/images/infer_server.png

Chromium is driven through its DevTools protocol (the ``websockets`` package); its fake audio
device plays ``--audio`` (16-bit WAV) once, after one second of silence, as the microphone.
Needs Chromium (see tools/browser.py).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.browser import answers, free_port, headless_chromium, local_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

LEAD_SILENCE_S = 1.0  # the page opens the socket and the audio graph after the microphone starts


class DevTools:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, websocket):
        self._ws = websocket
        self._next_id = 0

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str, await_promise: bool = False):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                state = self.evaluate("document.body.dataset.state + ' / ' + "
                                      "document.getElementById('record-status').textContent")
                raise TimeoutError(f"page: {condition} still false after {timeout:.0f} s (state: {state})")
            time.sleep(0.1)

    def set_file(self, element_id: str, path: Path) -> None:
        handle = self.call("Runtime.evaluate", expression=f"document.getElementById('{element_id}')")["result"]
        self.call("DOM.setFileInputFiles", files=[str(path)], objectId=handle["objectId"])
        self.evaluate(f"document.getElementById('{element_id}').dispatchEvent(new Event('change'))")

    def screenshot(self, output: Path) -> Path:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return output


@contextlib.contextmanager
def running_server(*args: str, cwd: Path, timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """Run ``infer_server.py *args`` from ``cwd`` on a free 127.0.0.1 port; yield its URL, process and
    log file (``cwd/server_<port>.log``); the server is always stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(cwd) / f"server_{port}.log"
    command = [sys.executable, str(REPO / "infer_server.py"), "--host=127.0.0.1", f"--port={port}", "--use_gpu=False",
               *args]
    with local_server(command, log, lambda: answers(url + "/", 200), f"infer_server.py on {url}", cwd=cwd,
                      env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=timeout) as proc:
        yield url, proc, log


def microphone_file(audio: Path, folder: Path) -> tuple[Path, float]:
    """``audio`` as a 16-bit WAV after ``LEAD_SILENCE_S`` of silence; its path and duration."""
    samples, sample_rate = soundfile.read(audio, dtype="int16")
    silence = np.zeros((int(LEAD_SILENCE_S * sample_rate),) + samples.shape[1:], dtype=np.int16)
    path = folder / "microphone.wav"
    soundfile.write(path, np.concatenate([silence, samples]), sample_rate, subtype="PCM_16")
    return path, LEAD_SILENCE_S + len(samples) / sample_rate


@contextlib.contextmanager
def chromium_page(url: str, microphone: Path, width: int = 1000, height: int = 1000,
                  timeout: float = 60.0) -> Iterator[DevTools]:
    """Headless Chromium showing ``url`` with ``microphone`` (WAV) as its microphone; always stopped."""
    with headless_chromium("--remote-debugging-port=0", "--use-fake-ui-for-media-stream",
                           "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone}%noloop",
                           "--autoplay-policy=no-user-gesture-required", "about:blank",
                           width=width, height=height) as (proc, profile):
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            target = next(t for t in json.loads(reply.read()) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as websocket:
            page = DevTools(websocket)
            page.call("Page.enable")
            page.call("Page.navigate", url=url)
            page.wait_for("document.readyState === 'complete' && document.body.dataset.state === 'idle'", timeout)
            yield page


@dataclass
class Recording:
    partials_before_stop: int
    partial_text_before_stop: str
    final_text: str
    recorded_wav: bytes  # what the page recorded and plays back


def record(page: DevTools, seconds: float) -> Recording:
    """Press 开始录音, let the microphone play for ``seconds``, press 停止, wait for the final text."""
    page.evaluate("document.getElementById('record').click()")
    page.wait_for("document.body.dataset.state === 'recording'", 30)
    time.sleep(seconds)
    partials = int(page.evaluate("document.body.dataset.partials"))
    partial_text = page.evaluate("document.getElementById('partial').textContent")
    page.evaluate("document.getElementById('stop').click()")
    page.wait_for("document.body.dataset.state === 'done'", 60)
    page.wait_for("document.getElementById('playback').readyState >= 1", 30)
    wav = page.evaluate("""fetch(document.getElementById('playback').src).then(r => r.arrayBuffer()).then(b => {
        let s = ''; new Uint8Array(b).forEach(c => { s += String.fromCharCode(c); }); return btoa(s); })""",
                        await_promise=True)
    return Recording(partials, partial_text, page.evaluate("document.getElementById('final').textContent"),
                     base64.b64decode(wav))


def upload(page: DevTools, audio: Path) -> str:
    """Choose ``audio`` in the upload form, press 识别, return the text the page shows."""
    page.set_file("file", audio)
    page.evaluate("delete document.body.dataset.upload; document.getElementById('upload').click()")
    page.wait_for("document.body.dataset.upload !== undefined", 60)
    return page.evaluate("document.getElementById('upload-result').textContent")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the running infer_server.py")
    parser.add_argument("--audio", default="dataset/test.wav", help="16 kHz WAV the fake microphone plays")
    parser.add_argument("--output", default="docs/images/infer_server.png", help="PNG to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        microphone, seconds = microphone_file(Path(args.audio), Path(folder))
        with chromium_page(args.url, microphone) as page:
            recording = record(page, seconds + 0.5)
            text = upload(page, Path(args.audio).resolve())
            path = page.screenshot(Path(args.output))
    print(f"recorded: {recording.final_text} ({recording.partials_before_stop} partial results before stop)")
    print(f"uploaded: {text}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
