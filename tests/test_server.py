"""infer_server.py end to end: the real server on 127.0.0.1 with the tiny exported model, its HTTP
endpoints, the WebSocket streaming protocol, and every kind of bad client input."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from helpers import REPO, TEST_WAV, run_cli
from ppasr.demo.synth import colored_noise

from tools.server_screenshot import running_server

# tight limits so that the tests can cross them cheaply
LIMITS = ["--max_upload_mb=1", "--max_audio_seconds=20", "--max_streams=3", "--decoder=ctc_greedy"]
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit PCM


def clips(root: Path, count: int = 3) -> list[Path]:
    """Synthesised corpus clips (the longest test utterances) plus tests/resources/test.wav."""
    items = [json.loads(line) for line in (root / "dataset/manifest.test").read_text(encoding="utf-8").splitlines()]
    items += [json.loads(line) for line in (root / "dataset/manifest.train").read_text(encoding="utf-8").splitlines()]
    items.sort(key=lambda item: -item["duration"])
    return [root / item["audio_filepath"] for item in items[:count]] + [TEST_WAV]


def pcm16(path: Path) -> bytes:
    """A clip as 16 kHz mono 16-bit little-endian PCM (what a streaming client sends)."""
    samples, sample_rate = soundfile.read(path, dtype="int16")
    assert sample_rate == 16000 and samples.ndim == 1
    return samples.astype("<i2").tobytes()


def post_audio(url: str, data: bytes | None, filename: str = "clip.wav", field: str = "audio",
               timeout: float = 60) -> tuple[int, dict]:
    """POST a multipart/form-data upload; return (HTTP status, JSON answer)."""
    boundary = uuid.uuid4().hex
    body = b""
    if data is not None:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws/asr"


def stream(url: str, pcm: bytes, chunk: int = CHUNK_BYTES) -> tuple[list[str], dict]:
    """Stream PCM frame by frame, reading each frame's answer before the next is sent (so every
    partial provably arrives before the end); return the partial texts and the final answer."""
    partials = []
    with connect(ws_url(url), open_timeout=30) as ws:
        for start in range(0, len(pcm), chunk):
            ws.send(pcm[start:start + chunk])
            answer = json.loads(ws.recv(timeout=30))
            assert answer["code"] == 0 and answer["is_end"] is False, answer
            partials.append(answer["result"])
        ws.send(json.dumps({"end": True}))
        final = json.loads(ws.recv(timeout=60))
    return partials, final


def page_is_up(url: str) -> bool:
    with urllib.request.urlopen(url + "/", timeout=10) as reply:
        return reply.status == 200 and "语音识别" in reply.read().decode("utf-8")


@pytest.fixture(scope="module")
def server(exported_corpus):
    with running_server(*LIMITS, cwd=exported_corpus) as (url, _, log):
        yield url, log, exported_corpus


def test_page_and_its_files_are_served_locally(server):
    url, _, _ = server
    with urllib.request.urlopen(url + "/", timeout=10) as reply:
        html = reply.read().decode("utf-8")
    assert "实时录音识别" in html and "上传音频文件" in html and "http" not in html.replace("http-equiv", "")
    for name in ("app.js", "pcm-worklet.js", "style.css"):
        with urllib.request.urlopen(f"{url}/static/{name}", timeout=10) as reply:
            assert reply.status == 200 and b"http://" not in reply.read()


def test_recognition_answers_ppasr_json_like_infer_path(server):
    url, _, root = server
    clip = clips(root, 1)[0]
    status, answer = post_audio(url + "/recognition", clip.read_bytes())
    assert status == 200 and answer["code"] == 0 and answer["msg"] == "success"
    assert isinstance(answer["result"], str) and answer["result"] and isinstance(answer["score"], (int, float))
    printed = run_cli("infer_path.py", f"--wav_path={clip}", "--use_gpu=False", cwd=root).stdout
    assert f"识别结果: {answer['result']}," in printed


def test_any_soundfile_format_rate_and_channels(server):
    """A 44.1 kHz stereo FLAC of a clip is resampled and mixed down like the WAV."""
    url, _, root = server
    samples, _ = soundfile.read(clips(root, 1)[0], dtype="float32")
    import soxr

    stereo = np.stack([soxr.resample(samples, 16000, 44100)] * 2, axis=1)
    flac = io.BytesIO()
    soundfile.write(flac, stereo, 44100, format="FLAC")
    status, answer = post_audio(url + "/recognition", flac.getvalue(), filename="clip.flac")
    assert status == 200 and answer["code"] == 0 and answer["result"]


def long_audio(root: Path, path: Path, snr_db: float | None = None) -> bytes:
    """Three corpus clips between 1 s pauses, optionally under pink noise at ``snr_db``, as WAV bytes."""
    silence = np.zeros(16000, dtype=np.float32)
    parts = [soundfile.read(clip, dtype="float32")[0] for clip in clips(root, 3)[:3]]
    joined = np.concatenate([silence, parts[0], silence, parts[1], silence, parts[2], silence])
    if snr_db is not None:
        noise = colored_noise(len(joined), 1.0, np.random.default_rng(0))
        speech_rms = np.sqrt(np.mean(np.concatenate(parts) ** 2))
        joined = np.clip(joined + noise * speech_rms / np.sqrt(np.mean(noise ** 2)) * 10 ** (-snr_db / 20), -1, 1)
    soundfile.write(path, joined.astype(np.float32), 16000)
    return path.read_bytes()


def test_long_audio_is_split_and_joined(server, tmp_path):
    url, _, root = server
    status, answer = post_audio(url + "/recognition_long_audio", long_audio(root, tmp_path / "long.wav"))
    assert status == 200 and answer["code"] == 0 and answer["result"].count("，") == 2


def test_vad_flag_chooses_how_the_server_splits_long_audio(server, tmp_path):
    """Under noise PPASR's webrtcvad hears speech everywhere; ``--vad=silero`` still finds the pauses."""
    url, _, root = server
    noisy = long_audio(root, tmp_path / "noisy.wav", snr_db=10)
    status, webrtc = post_audio(url + "/recognition_long_audio", noisy)
    assert status == 200 and webrtc["result"].count("，") < 2, webrtc
    with running_server(*LIMITS, "--vad=silero", cwd=root) as (silero_url, _, _):
        status, silero = post_audio(silero_url + "/recognition_long_audio", noisy)
    assert status == 200 and silero["result"].count("，") == 2, silero


def test_streaming_partials_arrive_before_the_end_and_final_equals_recognition(server):
    url, log, root = server
    for clip in clips(root, 3):
        pcm = pcm16(clip)
        partials, final = stream(url, pcm)
        assert len(partials) == -(-len(pcm) // CHUNK_BYTES)  # one answer per frame
        assert any(partials), f"no partial text before the end for {clip.name}"
        for earlier, later in zip(partials, partials[1:]):
            assert later.startswith(earlier)  # partial text only grows
        status, answer = post_audio(url + "/recognition", clip.read_bytes())
        assert final["code"] == 0 and final["is_end"] is True
        assert final["result"] == answer["result"], clip.name
        assert final["score"] == pytest.approx(answer["score"], abs=0.01)
    assert "流式识别" in log.read_text(encoding="utf-8")


def test_incremental_greedy_equals_greedy_over_all_frames():
    from ppasr.decode.greedy import IncrementalGreedyDecoder, greedy_decode

    rng = np.random.default_rng(0)
    vocabulary = ["<blank>"] + list("abcde")
    probs = rng.dirichlet(np.full(6, 0.3), size=200).astype(np.float32)
    probs[50:53] = probs[49]  # repeats across a chunk boundary must collapse
    expected = greedy_decode(probs[None], np.array([200]), vocabulary)[0].text
    for cuts in ([], [50], [1, 2, 3, 51, 52, 120], list(range(1, 200))):
        decoder = IncrementalGreedyDecoder(vocabulary)
        for start, end in zip([0] + cuts, cuts + [200]):
            text = decoder.extend(probs[start:end]).text
        assert text == expected


def test_frames_of_any_size_give_the_same_text(server):
    """Odd-sized frames split 16-bit samples; the server joins them back."""
    url, _, root = server
    pcm = pcm16(clips(root, 1)[0])
    _, reference = stream(url, pcm, chunk=6400)
    _, odd = stream(url, pcm, chunk=1001)
    assert odd["result"] == reference["result"]


def test_one_socket_carries_several_utterances(server):
    url, _, root = server
    first, second = clips(root, 2)[:2]
    expected = [stream(url, pcm16(clip))[1]["result"] for clip in (first, second)]
    with connect(ws_url(url)) as ws:
        for clip, text in zip((first, second), expected):
            ws.send(pcm16(clip))
            assert json.loads(ws.recv(timeout=30))["is_end"] is False
            ws.send(json.dumps({"end": True}))
            assert json.loads(ws.recv(timeout=30))["result"] == text


def test_uploads_are_never_written_under_the_client_filename(server, tmp_path):
    url, _, root = server
    name = f"pwned_{uuid.uuid4().hex}.wav"
    status, answer = post_audio(url + "/recognition", clips(root, 1)[0].read_bytes(), filename=f"../../../{name}")
    assert status == 200 and answer["code"] == 0
    assert not list(root.rglob(name)) and not list(root.parent.parent.rglob(name)) and not Path("/" + name).exists()
    assert not (root / "dataset" / "upload").exists()


@pytest.mark.parametrize("data, field, code, status", [
    (b"\x00\x01junk" * 300, "audio", 1, 400),  # not audio
    (b"", "audio", 3, 400),  # empty upload
    (b"RIFF", "file", 3, 400),  # wrong field name
    (None, "audio", 3, 400),  # no file at all
])
def test_bad_uploads_get_a_clear_4xx(server, data, field, code, status):
    url, _, _ = server
    got_status, answer = post_audio(url + "/recognition", data, field=field)
    assert (got_status, answer["code"]) == (status, code) and answer["msg"], answer
    assert page_is_up(url)


def test_oversized_upload_and_overlong_audio_are_refused(server, tmp_path):
    url, _, _ = server
    status, answer = post_audio(url + "/recognition", np.random.default_rng(0).bytes(1_200_000))
    assert status == 413 and answer["code"] == 2 and "max_upload_mb" in answer["msg"]
    path = tmp_path / "long.flac"  # 30 s of silence: small file, too long to decode (limit 20 s)
    soundfile.write(path, np.zeros(30 * 16000, dtype=np.float32), 16000)
    status, answer = post_audio(url + "/recognition_long_audio", path.read_bytes())
    assert status == 413 and answer["code"] == 2 and "max_audio_seconds" in answer["msg"]


def test_oversized_bodies_are_refused_before_they_are_read(server):
    """A declared 50 MB body is refused at once; a chunked body without a length is cut at the limit."""
    url, _, _ = server
    port = int(url.rsplit(":", 1)[1])
    head = (b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 50000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(head + b"x" * 1000)
        assert b" 413 " in client.recv(4096).split(b"\r\n")[0]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = (b"--b\r\n" if i == 0 else b"y" * 65536 for i in range(64))  # 4 MB, never finished
    try:
        connection.request("POST", "/recognition", body=chunks, encode_chunked=True,
                           headers={"Content-Type": "multipart/form-data; boundary=b"})
        reply = connection.getresponse()
        assert reply.status == 413 and json.loads(reply.read())["code"] == 2
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered 413 and closed while we were still sending
    finally:
        connection.close()
    assert page_is_up(url)


def test_text_instead_of_audio_is_a_clear_error(server):
    url, _, _ = server
    with connect(ws_url(url)) as ws:
        ws.send("hello")
        answer = json.loads(ws.recv(timeout=10))
        assert answer["code"] == 4 and "16 kHz" in answer["msg"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1003


def test_overlong_stream_is_cut_with_a_clear_error(server):
    url, _, _ = server
    second = np.zeros(16000, dtype="<i2").tobytes()
    with connect(ws_url(url)) as ws:
        for _ in range(20):
            ws.send(second)
            assert json.loads(ws.recv(timeout=30))["code"] == 0
        ws.send(second)
        answer = json.loads(ws.recv(timeout=30))
        assert answer["code"] == 2 and "max_audio_seconds" in answer["msg"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1009


def test_client_leaving_mid_stream_does_not_disturb_others(server):
    url, log, root = server
    pcm = pcm16(clips(root, 1)[0])
    for _ in range(3):
        with connect(ws_url(url)) as ws:
            ws.send(pcm[:len(pcm) // 2])
            ws.socket.close()  # vanish without a closing handshake
    _, final = stream(url, pcm)
    assert final["code"] == 0 and final["result"]
    deadline = time.monotonic() + 10
    while "left mid-" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "left mid-" in log.read_text(encoding="utf-8")


def test_streams_above_the_limit_are_refused_and_slots_come_back(server):
    url, _, root = server
    with contextlib.ExitStack() as open_sockets:
        for _ in range(3):
            open_sockets.enter_context(connect(ws_url(url)))
        with connect(ws_url(url)) as extra:
            answer = json.loads(extra.recv(timeout=10))
            assert answer["code"] == 5 and "max_streams" in answer["msg"]
    time.sleep(0.5)
    _, final = stream(url, pcm16(clips(root, 1)[0]))
    assert final["code"] == 0


def test_a_stalled_upload_does_not_block_other_clients(server):
    """A client that sends half a request and stalls holds no worker: the page and the endpoints answer."""
    url, _, root = server
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"audio\"")
        start = time.monotonic()
        assert page_is_up(url)
        status, answer = post_audio(url + "/recognition", clips(root, 1)[0].read_bytes())
        assert status == 200 and answer["code"] == 0
        assert time.monotonic() - start < 20
