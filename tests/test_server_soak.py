"""Soak: infer_server.py under a steady mixed load must not leak memory, threads or file descriptors.

16 clients stream clips in real time (160 ms frames) and some vanish mid-utterance without a closing
handshake; meanwhile every supported upload format is posted again and again, with junk in between
(random bytes, malformed multipart, half requests, bad WebSocket messages). The server's RSS, threads
and descriptors come from /proc/<pid>. ``PPASR_SOAK_SECONDS`` (default 30; CI can run longer) sets the loaded time;
the test takes about that plus a warm-up and the settling.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import random
import socket
import time

import numpy as np
import soundfile
from websockets.asyncio.client import connect

from helpers import REPO
from test_server import clips, pcm16, post_audio, ws_url
from test_server_limits import status_kb

from tools.server_screenshot import running_server

STREAMS = 16
FRAME_BYTES = 5120  # 160 ms
SOAK_SECONDS = float(os.environ.get("PPASR_SOAK_SECONDS", "30"))
FORMATS = [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"), ("AIFF", "PCM_16"),
           ("CAF", "PCM_16"), ("W64", "PCM_16"), ("AU", "PCM_16"), ("WAV", "FLOAT")]


def threads_and_fds(pid: int) -> tuple[int, int]:
    threads = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def uploads(clip) -> list[tuple[str, bytes]]:
    """The clip in every format and a few rates/channel counts."""
    samples, rate = soundfile.read(clip, dtype="float32")
    files = []
    for fmt, subtype in FORMATS:
        data = np.stack([samples, samples], axis=1) if fmt == "FLAC" else samples
        buffer = io.BytesIO()
        soundfile.write(buffer, data, rate if fmt != "MP3" else 16000, format=fmt, subtype=subtype)
        files.append((f"clip.{fmt.lower()}", buffer.getvalue()))
    return files


async def stream_clients(url: str, pcm: bytes, stop: float, rng: random.Random, counts: dict) -> None:
    """One client: stream utterances in real time until ``stop``; a third of them end by vanishing."""
    while time.monotonic() < stop:
        vanish_at = rng.randrange(1, len(pcm) // FRAME_BYTES) if rng.random() < 0.33 else None
        async with connect(ws_url(url), open_timeout=30) as ws:
            for index, start in enumerate(range(0, len(pcm), FRAME_BYTES)):
                sent = time.monotonic()
                if index == vanish_at:
                    ws.transport.abort()  # gone without a closing handshake
                    counts["vanished"] += 1
                    break
                await ws.send(pcm[start:start + FRAME_BYTES])
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["code"] == 0
                await asyncio.sleep(max(0.0, 0.16 - (time.monotonic() - sent)))
            else:
                await ws.send(json.dumps({"end": True}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 60))["is_end"] is True
                counts["finished"] += 1


def junk(url: str, rng: random.Random) -> None:
    """One piece of junk: every answer must be a 4xx, never a 500 or a hang."""
    port = int(url.rsplit(":", 1)[1])
    kind = rng.randrange(4)
    if kind == 0:
        status, _ = post_audio(url + "/recognition", rng.randbytes(rng.randrange(1, 50_000)))
        assert status == 400
    elif kind == 1:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\n"
                           b"Content-Length: 5\r\n\r\nhello")
            assert b" 400 " in client.recv(4096).split(b"\r\n")[0]
    elif kind == 2:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"POST /recognition HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n--b\r\n")
    else:
        from websockets.sync.client import connect as sync_connect

        with sync_connect(ws_url(url)) as ws:
            ws.send("not json")
            assert json.loads(ws.recv(timeout=10))["code"] == 4


async def upload_loop(url: str, files: list[tuple[str, bytes]], stop: float, rng: random.Random, counts: dict) -> None:
    while time.monotonic() < stop:
        for name, data in files:
            status, answer = await asyncio.to_thread(post_audio, url + "/recognition", data, name)
            assert status == 200 and answer["code"] == 0, (name, answer)
            counts["uploads"] += 1
            await asyncio.to_thread(junk, url, rng)
            counts["junk"] += 1


async def load(url: str, pcm: list[bytes], files, seconds: float, pid: int, seed: int) -> tuple[list[int], dict]:
    """Run the mixed load for ``seconds``; return RSS samples (kB, every 0.5 s) and what was done."""
    stop = time.monotonic() + seconds
    rng = random.Random(seed)
    counts = {"finished": 0, "vanished": 0, "uploads": 0, "junk": 0}
    rss: list[int] = []

    async def sample() -> None:
        while time.monotonic() < stop:
            rss.append(status_kb(pid, "VmRSS"))
            await asyncio.sleep(0.5)

    clients = [stream_clients(url, pcm[i % len(pcm)], stop, random.Random(seed * 100 + i), counts)
               for i in range(STREAMS)]
    await asyncio.gather(sample(), upload_loop(url, files, stop, rng, counts), *clients)
    return rss, counts


def test_soak_memory_threads_and_descriptors_settle(exported_corpus):
    root = exported_corpus
    pcm = [pcm16(clip) for clip in clips(root, 3)]
    files = uploads(clips(root, 1)[0])
    with running_server("--decoder=ctc_greedy", "--header_timeout=2", "--body_timeout=2", cwd=root) as (url, proc, log):
        asyncio.run(load(url, pcm, files, 8, proc.pid, seed=1))  # warm-up: every path once
        time.sleep(5)  # --header_timeout/--body_timeout drop the warm-up's half requests
        baseline = threads_and_fds(proc.pid)
        rss, counts = asyncio.run(load(url, pcm, files, SOAK_SECONDS, proc.pid, seed=2))
        assert counts["finished"] > STREAMS and counts["vanished"] > 3 and counts["uploads"] >= len(files), counts
        third = len(rss) // 3
        second, last = np.mean(rss[third:2 * third]) / 1024, np.mean(rss[2 * third:]) / 1024
        assert last - second < 8, f"RSS grew from {second:.0f} MB to {last:.0f} MB ({counts})"
        deadline = time.monotonic() + 15
        while any(n > b for n, b in zip(threads_and_fds(proc.pid), baseline)) and time.monotonic() < deadline:
            time.sleep(0.5)
        now = threads_and_fds(proc.pid)
        print(f"soak {SOAK_SECONDS:g} s: {counts}; RSS {second:.0f} -> {last:.0f} MB; threads, fds {baseline} -> {now}")
        assert now[0] <= baseline[0] and now[1] <= baseline[1], f"threads, fds: {baseline} before, {now} after"
        assert " 500 " not in log.read_text(encoding="utf-8")
