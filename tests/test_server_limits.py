"""infer_server.py under attack (issue 16): decode bombs, WebSocket abuse, slow and idle connections,
foreign pages, running out of file descriptors. A real server on 127.0.0.1 with the tiny exported
model, real crafted files; memory from /proc/<pid>/status; after each attack a good request still works."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from helpers import REPO
from test_server import clips, page_is_up, post_audio, ws_url

from tools.browser import answers, free_port, local_server
from tools.server_screenshot import running_server

LIMITS = ["--decoder=ctc_greedy", "--max_upload_mb=4", "--max_audio_seconds=60", "--max_uploads=2",
          "--max_streams=4", "--max_decoded_samples=2000000", "--stream_idle_seconds=3", "--header_timeout=2",
          "--body_timeout=3"]
MB = 1024 * 1024


def status_kb(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in kB (VmRSS, VmHWM)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def server(exported_corpus):
    with running_server(*LIMITS, cwd=exported_corpus) as (url, proc, log):
        yield url, proc, log, exported_corpus


def good_request_works(url: str, root) -> None:
    status, answer = post_audio(url + "/recognition", clips(root, 1)[0].read_bytes())
    assert status == 200 and answer["code"] == 0, answer


def encoded(samples: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def bombs() -> dict[str, bytes]:
    """The issue's decode bombs, small on the wire: 255-channel Ogg Vorbis and 8-channel FLAC at 655 kHz
    (each under the 60 s limit), and a file within the channel and rate caps that decodes to more
    samples than --max_decoded_samples (8 channels x 16 kHz x 20 s = 2.56 M)."""
    return {
        # smaller bomb first: the peak (VmHWM) a larger one leaves would hide the next one's
        "flac_655khz_8_channels": encoded(np.zeros((655350 * 8, 8), np.float32), 655350, "FLAC"),
        "ogg_255_channels": encoded(np.zeros((8000 * 30, 255), np.float32), 8000, "OGG", "VORBIS"),
        "flac_too_many_samples": encoded(np.zeros((16000 * 20, 8), np.int16), 16000, "FLAC"),
    }


def test_decode_bombs_are_refused_before_decoding(server):
    url, proc, _, root = server
    good_request_works(url, root)
    for name, data in bombs().items():
        assert len(data) < 200_000, name
        peak = status_kb(proc.pid, "VmHWM")
        start = time.monotonic()
        status, answer = post_audio(url + "/recognition", data, filename=name)
        grown_mb = (status_kb(proc.pid, "VmHWM") - peak) / 1024
        assert status == 413 and answer["code"] == 2 and "--max_" in answer["msg"], (name, answer)
        assert grown_mb < 40, f"{name}: server peak memory grew by {grown_mb:.0f} MB"
        assert time.monotonic() - start < 5, name
        good_request_works(url, root)


def test_nan_and_inf_samples_and_unknown_lengths_are_a_400(server):
    url, _, _, root = server
    samples = np.full(16000, 0.1, np.float32)
    for bad in (np.nan, np.inf):
        samples[8000] = bad
        status, answer = post_audio(url + "/recognition", encoded(samples, 16000, "WAV", "FLOAT"))
        assert status == 400 and answer["code"] == 1 and "NaN or infinite" in answer["msg"], answer
    flac = bytearray(encoded(samples[:4000] * 0, 16000, "FLAC"))
    flac[21] &= 0xF0  # STREAMINFO's 36-bit total_samples = 0: length unknown
    flac[22:26] = bytes(4)
    status, answer = post_audio(url + "/recognition", bytes(flac))
    assert status == 400 and answer["code"] == 1 and "no length" in answer["msg"], answer
    good_request_works(url, root)


def stalled_upload(port: int) -> socket.socket:
    """A connection that sent its headers and part of a 1 MB body, then stalls."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                   b"Content-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"audio\"")
    return client


def test_uploads_above_the_limit_get_503_with_retry_after(server):
    """Two uploads in progress (--max_uploads=2): a third is answered at once, HTTP 503, code 5, Retry-After."""
    url, _, _, root = server
    port = int(url.rsplit(":", 1)[1])
    with stalled_upload(port), stalled_upload(port):
        time.sleep(0.5)
        body = clips(root, 1)[0].read_bytes()
        request = urllib.request.Request(url + "/recognition", data=multipart(body), method="POST",
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
        answer = json.loads(refused.value.read())
        assert answer["code"] == 5 and "--max_uploads" in answer["msg"]
    good_request_works(url, root)


def test_concurrent_large_uploads_cost_bounded_memory(server):
    """24 uploads of 4 MB at once (the issue: 24 x 32 MB cost +1 GB): two are read, the rest get 503 at once."""
    from concurrent.futures import ThreadPoolExecutor

    url, proc, _, root = server
    body = multipart(np.random.default_rng(1).bytes(4 * MB - 1000))
    before = status_kb(proc.pid, "VmRSS")
    peak = before

    def upload(_) -> int:
        request = urllib.request.Request(url + "/recognition", data=body, method="POST",
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:  # refused while still sending: the 503 came first
            return 503

    with ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(upload, i) for i in range(24)]
        while not all(f.done() for f in futures):
            peak = max(peak, status_kb(proc.pid, "VmRSS"))
            time.sleep(0.02)
    statuses = [f.result() for f in futures]
    grown_mb = (peak - before) / 1024
    assert statuses.count(503) >= 12 and set(statuses) <= {400, 503}, statuses
    assert grown_mb < 60, f"24 concurrent 4 MB uploads grew the server by {grown_mb:.0f} MB"
    good_request_works(url, root)


def multipart(data: bytes) -> bytes:
    return (b"--b\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n" + data
            + b"\r\n--b--\r\n")


def test_malformed_multipart_is_a_400(server):
    url, _, _, root = server
    for content_type, body in (("multipart/form-data", multipart(b"RIFF")),  # no boundary
                               ("multipart/form-data; boundary=b", b"--b\r\nX: y\r\n\r\nabc\r\n--b--\r\n")):
        request = urllib.request.Request(url + "/recognition", data=body, method="POST",
                                         headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400 and "malformed multipart" in json.loads(refused.value.read())["msg"]
    good_request_works(url, root)


def closed_within(client: socket.socket, seconds: float) -> bool:
    """Whether the server closes this connection within ``seconds``."""
    client.settimeout(seconds)
    try:
        while client.recv(4096):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_idle_half_header_and_half_body_connections_are_dropped(server):
    url, _, _, root = server
    port = int(url.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        idle = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        half_header = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        half_header.sendall(b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Le")
        half_body = stack.enter_context(stalled_upload(port))
        start = time.monotonic()
        assert closed_within(idle, 8) and closed_within(half_header, 8)
        assert time.monotonic() - start < 5  # --header_timeout=2
        assert closed_within(half_body, 8)  # --header_timeout=2 + --body_timeout=3
    good_request_works(url, root)


def handshake(port: int, extra: str = "") -> socket.socket:
    """A raw WebSocket connection (the client side written by hand, to send what a library will not)."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    client.sendall(f"GET /ws/asr HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += client.recv(4096)
    assert b" 101 " in reply.split(b"\r\n")[0], reply
    return client


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def flood(client: socket.socket, frame: bytes, count: int, seconds: float, pid: int) -> tuple[int, float]:
    """Send ``count`` copies of ``frame`` without reading anything back, for at most ``seconds``; return the
    frames sent and the server's largest RSS growth (MB) seen meanwhile and in the second after."""
    data = frame * count
    client.setblocking(False)
    before = status_kb(pid, "VmRSS")
    sent, peak, deadline = 0, before, time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += client.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
        peak = max(peak, status_kb(pid, "VmRSS"))
    for _ in range(20):
        time.sleep(0.05)
        peak = max(peak, status_kb(pid, "VmRSS"))
    return sent // len(frame), (peak - before) / 1024


@pytest.mark.parametrize("frame", [masked_frame(0x2, b""), masked_frame(0x1, b'{"end": true}')],
                         ids=["empty_frames", "end_messages"])
def test_a_client_that_never_reads_cannot_grow_the_queue(server, frame):
    url, proc, _, root = server
    port = int(url.rsplit(":", 1)[1])
    with handshake(port) as client:
        sent, grown_mb = flood(client, frame, 1_000_000, seconds=10, pid=proc.pid)
    assert sent > 1000
    assert grown_mb < 25, f"{sent} frames grew the server by {grown_mb:.0f} MB"
    good_request_works(url, root)


def test_websocket_has_no_compression_and_a_frame_size_cap(server):
    url, _, _, root = server
    with connect(ws_url(url)) as ws:  # the client offers permessage-deflate
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        with pytest.raises(ConnectionClosed):
            ws.send(b"\x00" * (2 * MB))  # 64 s of audio in one frame
            ws.recv(timeout=10)
        assert ws.close_code in (1009, 1006)  # 1006 when the server closed while the client was still sending
    good_request_works(url, root)


def test_a_stream_without_audio_is_closed_with_a_reason(server):
    url, _, _, _ = server
    with connect(ws_url(url)) as ws:
        answer = json.loads(ws.recv(timeout=10))  # --stream_idle_seconds=3
        assert answer["code"] == 8 and "--stream_idle_seconds" in answer["msg"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1000 and "no audio" in ws.close_reason


def test_foreign_origins_are_refused_same_origin_and_non_browsers_pass(server):
    url, _, _, root = server
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(url), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(ws_url(url), origin=f"http://127.0.0.1:{port}") as ws:  # the page this server served
        ws.send(b"\x00" * 3200)
        assert json.loads(ws.recv(timeout=10))["code"] == 0
    request = urllib.request.Request(url + "/recognition", data=multipart(clips(root, 1)[0].read_bytes()),
                                     method="POST", headers={"Content-Type": "multipart/form-data; boundary=b",
                                                             "Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        urllib.request.urlopen(request, timeout=30)
    assert forbidden.value.code == 403 and json.loads(forbidden.value.read())["code"] == 7
    good_request_works(url, root)


def test_token_and_allowed_origins_flags(exported_corpus):
    with running_server("--decoder=ctc_greedy", "--token=s3cret", "--allowed_origins=*",
                        cwd=exported_corpus) as (url, _, _):
        data = clips(exported_corpus, 1)[0].read_bytes()
        assert post_audio(url + "/recognition", data)[0] == 403
        assert post_audio(url + "/recognition?token=s3cret", data)[0] == 200
        with pytest.raises(InvalidStatus):
            connect(ws_url(url))
        with connect(ws_url(url) + "?token=s3cret", origin="http://evil.example") as ws:  # * allows any page
            ws.send(b"\x00" * 3200)
            assert json.loads(ws.recv(timeout=10))["code"] == 0
        request = urllib.request.Request(url + "/recognition", method="OPTIONS", headers={
            "Origin": "http://other.example", "Access-Control-Request-Method": "POST"})
        with urllib.request.urlopen(request, timeout=10) as reply:  # PPASR's flask_cors behaviour, on request
            assert reply.headers["Access-Control-Allow-Origin"] in ("*", "http://other.example")


def test_running_out_of_file_descriptors_neither_floods_the_log_nor_stops_service(exported_corpus):
    """300 idle sockets against a server limited to 256 descriptors."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = exported_corpus / f"server_fd_{port}.log"
    command = ["prlimit", "--nofile=256:256", "--", sys.executable, str(REPO / "infer_server.py"), "--host=127.0.0.1",
               f"--port={port}", "--use_gpu=False", "--decoder=ctc_greedy", "--header_timeout=3"]
    with local_server(command, log, lambda: answers(url + "/", 200), "infer_server.py", cwd=exported_corpus,
                      env=dict(os.environ, PYTHONPATH=str(REPO))):
        size_before = log.stat().st_size
        with contextlib.ExitStack() as stack:
            for _ in range(300):
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            time.sleep(3)
            grown = log.stat().st_size - size_before
        deadline = time.monotonic() + 20
        while not answers(url + "/", 200) and time.monotonic() < deadline:
            time.sleep(0.5)
        good_request_works(url, exported_corpus)
        grown = max(grown, log.stat().st_size - size_before)
        assert grown < 20_000, f"the log grew by {grown} bytes:\n{log.read_text()[-2000:]}"
        assert "does not fit the file descriptor limit" in log.read_text()


def test_a_500_logs_its_traceback(tmp_path):
    """The log formatter keeps exc_info: a real bug in the server shows where it happened."""
    script = ("from ppasr.logger import logger, setup_logging\nsetup_logging()\n"
              "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logger.exception('recognition failed')\n")
    import subprocess

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
    assert "recognition failed" in out and "Traceback" in out and "ZeroDivisionError" in out


def test_startup_says_who_can_reach_the_server():
    """PPASR's default host 0.0.0.0 stays, but the log says it is open to the network and how to close it."""
    from ppasr.serve.server import exposure_warnings

    lines = " ".join(exposure_warnings("0.0.0.0", 5000, None))
    assert "reachable from other machines" in lines and "no authentication" in lines and "--host=127.0.0.1" in lines
    assert "no authentication" not in " ".join(exposure_warnings("192.168.1.5", 5000, "secret"))
    assert exposure_warnings("127.0.0.1", 5000, None) == exposure_warnings("localhost", 5000, None) == []
