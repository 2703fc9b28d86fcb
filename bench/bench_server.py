"""infer_server.py under concurrent real-time WebSocket streams, on loopback.

For each model configuration (the demo model and PPASR's default size, random weights: the cost
does not depend on them) the script exports a model, starts the real ``infer_server.py`` and runs
1, 4 and 16 clients at once, each sending ``--seconds`` of speech as 16 kHz 16-bit PCM in
``--chunk_ms`` frames paced in real time (starts staggered over one frame period). It prints

* p50/p95/max latency from a frame sent to its partial result (the server answers every frame);
* the final answer's delay after ``{"end": true}``;
* RTF per stream: server CPU seconds (``/proc/<pid>/stat``) per second of audio, per stream;
* the most concurrent real-time streams the machine holds: the largest count whose p95 latency
  stays within ``--max_p95_ms``, found by doubling and then bisecting.

    python bench/bench_server.py                   # ~4 min on 2 cores
    python bench/bench_server.py --configs demo --clients 1 4 --seconds 5 --no_search
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(REPO / "tools"))

from bench_create_data import DEFAULT_CORPUS_DIR, create_data_command, ensure_corpus  # noqa: E402
from server_screenshot import running_server  # noqa: E402

CONFIGS = {
    "demo": {"feature": "fbank", "cnn_size": 16, "num_rnn_layers": 2, "rnn_size": 256},
    "ppasr": {"feature": "linear", "cnn_size": 32, "num_rnn_layers": 3, "rnn_size": 1024},
}
WORK_DIR = Path("/tmp/ppasr_bench_server")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def export_random_model(name: str, corpus_dir: str) -> Path:
    """A workspace with create_data.py's files and an exported random-weight model of config ``name``."""
    config = CONFIGS[name]
    work = WORK_DIR / name
    infer_dir = work / "models" / "deepspeech2" / "infer"
    if infer_dir.is_dir():
        return work
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(create_data_command(corpus_dir, config["feature"], 2, str(work), num_samples=200), check=True,
                   capture_output=True)
    size = [f"--cnn_size={config['cnn_size']}", f"--num_rnn_layers={config['num_rnn_layers']}",
            f"--rnn_size={config['rnn_size']}"]
    script = ("import sys, paddle\n"
              "from ppasr.data.features import FeatureNormalizer\n"
              "from ppasr.model.deepspeech2 import DeepSpeech2Model\n"
              "from ppasr.utils import read_vocabulary\n"
              "paddle.seed(0)\n"
              "dim = FeatureNormalizer('mean_std.npz').feature_config.dim\n"
              f"model = DeepSpeech2Model(dim, len(read_vocabulary('vocabulary.txt')), {config['cnn_size']}, "
              f"{config['num_rnn_layers']}, {config['rnn_size']})\n"
              "paddle.save(model.state_dict(), 'random/model.pdparams')\n")
    (work / "random").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", script], cwd=work, check=True, env=env, capture_output=True)
    subprocess.run([sys.executable, str(REPO / "export_model.py"), *size, "--resume_model=random",
                    "--dataset_vocab=vocabulary.txt", "--mean_std_path=mean_std.npz"], cwd=work, check=True,
                   env=env, capture_output=True)
    return work


@dataclass
class RunResult:
    clients: int
    latencies_ms: np.ndarray
    final_ms: np.ndarray
    rtf: float
    wall_s: float

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latencies_ms, 95))


async def one_stream(url: str, pcm: bytes, chunk_bytes: int, chunk_s: float, start_at: float) -> tuple[list, float]:
    """Send ``pcm`` in real time from ``start_at``; latencies of every frame's answer and of the final."""
    sent: list[float] = []
    latencies: list[float] = []
    async with connect(url, max_size=None, open_timeout=60, ping_timeout=None) as ws:

        async def receive() -> float:
            while True:
                answer = json.loads(await ws.recv())
                now = time.perf_counter()
                if answer["code"] != 0:
                    raise RuntimeError(f"server error: {answer}")
                if answer["is_end"]:
                    return now
                latencies.append(now - sent[len(latencies)])

        receiver = asyncio.create_task(receive())
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        begin = time.perf_counter()
        for k, offset in enumerate(range(0, len(pcm), chunk_bytes)):
            await asyncio.sleep(max(0.0, begin + k * chunk_s - time.perf_counter()))
            sent.append(time.perf_counter())
            await ws.send(pcm[offset:offset + chunk_bytes])
        end_sent = time.perf_counter()
        await ws.send(json.dumps({"end": True}))
        final_at = await receiver
    return latencies, final_at - end_sent


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_clients(url: str, pid: int, streams: list[bytes], chunk_ms: int) -> RunResult:
    chunk_s = chunk_ms / 1000
    chunk_bytes = int(16000 * chunk_s) * 2
    cpu_before = server_cpu_seconds(pid)

    async def run_all():
        start = time.perf_counter() + 0.5
        return await asyncio.gather(*(one_stream(url, pcm, chunk_bytes, chunk_s, start + i * chunk_s / len(streams))
                                      for i, pcm in enumerate(streams)))

    begin = time.perf_counter()
    results = asyncio.run(run_all())
    wall = time.perf_counter() - begin
    audio_s = sum(len(pcm) for pcm in streams) / 32000
    cpu = server_cpu_seconds(pid) - cpu_before
    latencies = np.concatenate([np.array(lat) for lat, _ in results]) * 1000
    return RunResult(len(streams), latencies, np.array([final for _, final in results]) * 1000, cpu / audio_s, wall)


def speech(paths: list[str], seconds: float, start: int) -> bytes:
    """``seconds`` of corpus speech as 16 kHz 16-bit PCM, clips concatenated from index ``start``."""
    parts, total, i = [], 0, start
    while total < seconds * 16000:
        samples, sample_rate = soundfile.read(paths[i % len(paths)], dtype="int16")
        assert sample_rate == 16000
        parts.append(samples)
        total += len(samples)
        i += 1
    return np.concatenate(parts)[:int(seconds * 16000)].astype("<i2").tobytes()


def max_realtime_streams(measure, ceiling: int, max_p95_ms: float, known: dict[int, RunResult]) -> int:
    """Largest stream count (up to ``ceiling``) whose p95 latency stays within ``max_p95_ms``."""
    def holds(n: int) -> bool:
        if n not in known:
            known[n] = measure(n)
        return known[n].p95 <= max_p95_ms

    if not holds(1):
        return 0
    low, high = 1, 2
    while high <= ceiling and holds(high):
        low, high = high, high * 2
    high = min(high, ceiling + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio each client streams")
    parser.add_argument("--chunk_ms", type=int, default=160, help="frame length the clients send")
    parser.add_argument("--max_p95_ms", type=float, default=300.0, help="latency a real-time stream may have")
    parser.add_argument("--max_search", type=int, default=32, help="most streams the search tries")
    parser.add_argument("--no_search", action="store_true", help="skip the search for the most real-time streams")
    parser.add_argument("--corpus_dir", default=DEFAULT_CORPUS_DIR)
    args = parser.parse_args()
    paths, _ = ensure_corpus(args.corpus_dir, 1500, 0, 0.0)
    load = os.getloadavg()
    rows, most = [], {}
    for name in args.configs:
        work = export_random_model(name, args.corpus_dir)
        with running_server("--max_streams=256", "--vocab_path=vocabulary.txt", cwd=work) as (url, proc, _):
            ws_url = url.replace("http://", "ws://") + "/ws/asr"

            def measure(n: int, ws_url: str = ws_url, name: str = name) -> RunResult:
                streams = [speech(paths, args.seconds, 17 * i) for i in range(n)]
                result = run_clients(ws_url, proc.pid, streams, args.chunk_ms)
                print(f"{name}: {n} streams, p95 {result.p95:.0f} ms", file=sys.stderr)
                return result

            known: dict[int, RunResult] = {}
            for n in args.clients:
                known[n] = measure(n)
                rows.append((name, known[n]))
            if not args.no_search:
                most[name] = max_realtime_streams(measure, args.max_search, args.max_p95_ms, known)
    print(f"\n{args.seconds:.0f} s of speech per stream, {args.chunk_ms} ms frames paced in real time; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores\n")
    print("| model | streams | p50 ms | p95 ms | max ms | final ms (p50) | RTF per stream | server CPU cores |")
    print("|-------|---------|--------|--------|--------|----------------|----------------|------------------|")
    for name, r in rows:
        print(f"| {name:5} | {r.clients:7} | {np.percentile(r.latencies_ms, 50):6.0f} | {r.p95:6.0f} | "
              f"{r.latencies_ms.max():6.0f} | {np.percentile(r.final_ms, 50):14.0f} | {r.rtf:14.3f} | "
              f"{r.rtf * r.clients * args.seconds / r.wall_s:16.2f} |")
    for name, n in most.items():
        print(f"\n{name}: at most {n} concurrent real-time streams with p95 latency <= {args.max_p95_ms:.0f} ms")


if __name__ == "__main__":
    main()
