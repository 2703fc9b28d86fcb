"""Long audio split by a real VAD (issue 19 part 3): segments against synthesised truth, silence gives nothing."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from helpers import run_cli
from ppasr.demo.long_audio import long_recording, score_segments
from ppasr.demo.synth import SAMPLE_RATE
from ppasr.serve.vad import VADS, split_on_silence

# webrtcvad (aggressiveness 1) keeps the dithered lead/trail padding and some hangover as speech
TOLERANCE_MS = {"webrtc": 700, "silero": 350, "energy": 350}


@pytest.fixture(scope="module")
def recordings() -> dict:
    return {snr: long_recording(5, seed=3, pause_s=(0.8, 1.5), snr_db=snr) for snr in (None, 10.0)}


@pytest.mark.parametrize("vad", VADS)
def test_segments_match_the_pauses_of_a_synthesised_recording(recordings, vad):
    samples, truth = recordings[None]
    found = split_on_silence(samples, SAMPLE_RATE, vad)
    errors, missed, false, merged = score_segments(found, truth)
    assert (len(found), missed, false, merged) == (len(truth), 0, 0, 0), (found, truth)
    assert max(errors) < TOLERANCE_MS[vad], errors
    assert all(0 <= start < end <= len(samples) for start, end in found)


def test_silero_splits_a_noisy_recording_where_energy_cannot(recordings):
    samples, truth = recordings[10.0]
    errors, missed, false, merged = score_segments(split_on_silence(samples, SAMPLE_RATE, "silero"), truth)
    assert (missed, false, merged) == (0, 0, 0) and max(errors) < 500, errors
    assert score_segments(split_on_silence(samples, SAMPLE_RATE, "energy"), truth)[3] > 0  # the old splitter merges


def test_long_segments_are_capped(recordings):
    samples, _ = recordings[None]
    found = split_on_silence(samples, SAMPLE_RATE, "webrtc", max_segment_s=2.0)
    assert max(end - start for start, end in found) <= 2.4 * SAMPLE_RATE  # cap plus padding
    assert len(found) > 5
    assert all(a[1] <= b[0] for a, b in zip(found, found[1:])), found  # cut pieces and padding never overlap


@pytest.mark.parametrize("vad", VADS)
def test_a_minute_of_silence_gives_an_empty_long_audio_result(exported_corpus, tmp_path, vad):
    """The random-weight model writes text for any audio it is given: silence must reach it as nothing."""
    quiet = np.random.default_rng(0).standard_normal(60 * SAMPLE_RATE) * 3e-4  # -70 dBFS hiss
    soundfile.write(tmp_path / "silence.wav", quiet.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    proc = run_cli("infer_path.py", f"--wav_path={tmp_path / 'silence.wav'}", "--is_long_audio=True",
                   "--use_gpu=False", f"--vad={vad}", cwd=exported_corpus)
    lines = [line for line in proc.stdout.splitlines() if "识别结果" in line]
    assert len(lines) == 1 and lines[0].endswith("得分: 0, 识别结果: "), lines
