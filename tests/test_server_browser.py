"""The recognition page in a real browser: headless Chromium records a synthesised clip from a fake
microphone, shows partial text while it plays and the final text after stop, plays the recording
back, and recognises an uploaded file; the server checks the page's Origin and a --token the page passes on."""
from __future__ import annotations

import io
import os

import pytest
import soundfile
from PIL import Image

from helpers import REPO
from test_server import LIMITS, clips, post_audio

from tools.browser import find_chromium
from tools.server_screenshot import chromium_page, microphone_file, record, running_server, upload

pytestmark = pytest.mark.skipif(find_chromium() is None and not os.environ.get("CI"),
                                reason="needs Chromium (CI installs it)")


def test_page_records_streams_plays_back_and_uploads(exported_corpus, tmp_path):
    clip = clips(exported_corpus, 1)[0]
    microphone, seconds = microphone_file(clip, tmp_path)
    with running_server(*LIMITS, "--token=s3cret", cwd=exported_corpus) as (url, _, _):
        with chromium_page(url + "/?token=s3cret", microphone) as page:
            recording = record(page, seconds + 0.5)
            uploaded = upload(page, clip)
            screenshot = page.screenshot(tmp_path / "page.png")
        assert recording.partials_before_stop > 0 and recording.partial_text_before_stop
        assert recording.final_text
        # the page's recording: 16 kHz mono WAV, about as long as it recorded (a loaded machine delays
        # the start and the stop of the recorder by a few tenths of a second)
        samples, sample_rate = soundfile.read(io.BytesIO(recording.recorded_wav), dtype="int16")
        assert sample_rate == 16000 and samples.ndim == 1
        assert seconds - 0.6 < len(samples) / sample_rate < seconds + 2.0
        # what the page streamed is what the server recognises in the page's own recording
        status, answer = post_audio(url + "/recognition?token=s3cret", recording.recorded_wav)
        assert status == 200 and answer["result"] == recording.final_text
        _, expected = post_audio(url + "/recognition?token=s3cret", clip.read_bytes())
        assert uploaded == expected["result"]
    image = Image.open(screenshot).convert("L")
    assert image.size[0] >= 800 and len(image.getcolors(1 << 16)) > 20  # a rendered page, not a blank one


def test_page_shows_timestamps_of_the_word_under_the_mouse(exported_corpus, tmp_path):
    """Issue 19 part 1: the result is shown word by word; hovering a word (a real mouse move) shows its times."""
    clip = clips(exported_corpus, 1)[0]
    microphone, _ = microphone_file(clip, tmp_path)
    with running_server(*LIMITS, cwd=exported_corpus) as (url, _, _):
        _, expected = post_audio(url + "/recognition?timestamps=true", clip.read_bytes())
        with chromium_page(url + "/", microphone) as page:
            assert upload(page, clip) == expected["result"]
            shown = page.evaluate("[...document.querySelectorAll('#upload-result span.unit')].map(s => "
                                  "[s.textContent, +s.dataset.startMs, +s.dataset.endMs])")
            assert shown == [[t["text"], t["start_ms"], t["end_ms"]] for t in expected["timestamps"]] and shown
            last = len(shown) - 1
            x, y = page.evaluate(f"(() => {{ const r = document.querySelectorAll('#upload-result span.unit')[{last}]"
                                 ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
            page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
            page.wait_for("document.getElementById('upload-times').textContent !== ''", 10)
            text, start, end = shown[last]
            assert page.evaluate("document.getElementById('upload-times').textContent") == \
                f"{text}: {start / 1000:.2f} s – {end / 1000:.2f} s"
