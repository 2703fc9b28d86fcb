"""Throughput of download_data's steps on this machine: HTTP download, md5 check, safe unpack.

    python bench/bench_download.py                  # ~30 s: a 256 MiB tar.gz of 4096 WAV files over 127.0.0.1
    python bench/bench_download.py --mib 1024

The archive is served from a local HTTP server, so the figures are the CPU/disk cost of our code (the
ceiling it puts on a fast link), not the speed of openslr's mirrors. Everything lives in a temporary folder.
"""
from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.data.download import download, md5sum, unpack  # noqa: E402


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass


def build_archive(path: Path, mib: int, files: int) -> None:
    """A tar.gz of ``files`` WAVs with noise-like samples (gzip cannot shrink them, as with real speech)."""
    rng = np.random.default_rng(0)
    samples = max(1, mib * (1 << 20) // files // 2)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for i in range(files):
            buffer = io.BytesIO()
            soundfile.write(buffer, rng.integers(-3000, 3000, samples, dtype=np.int16), 16000, format="WAV")
            info = tarfile.TarInfo(f"corpus/wav/S{i % 40:04d}/utt_{i:06d}.wav")
            info.size = buffer.getbuffer().nbytes
            buffer.seek(0)
            tar.addfile(info, buffer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="archive size in MiB. Default: %(default)s")
    parser.add_argument("--files", type=int, default=4096, help="WAV files in it. Default: %(default)s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppasr-bench-download-") as tmp:
        served, work = Path(tmp) / "served", Path(tmp) / "work"
        served.mkdir()
        archive = served / "corpus.tar.gz"
        build_archive(archive, args.mib, args.files)
        size = archive.stat().st_size
        handler = functools.partial(QuietHandler, directory=str(served))
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/corpus.tar.gz"
            rows = []
            start = time.perf_counter()
            expected = md5sum(str(archive))
            rows.append(("md5 (alone)", time.perf_counter() - start))
            start = time.perf_counter()
            download(url, str(work / "corpus.tar.gz"), None)
            rows.append(("download (no md5)", time.perf_counter() - start))
            os.remove(work / "corpus.tar.gz")
            start = time.perf_counter()
            download(url, str(work / "corpus.tar.gz"), expected)
            rows.append(("download + md5", time.perf_counter() - start))
            start = time.perf_counter()
            count = unpack(str(work / "corpus.tar.gz"), str(work / "out"), progress=False)
            rows.append((f"unpack ({count} members)", time.perf_counter() - start))
            if shutil.which("tar"):
                (work / "gnu").mkdir()
                start = time.perf_counter()
                subprocess.run(["tar", "-xzf", str(work / "corpus.tar.gz"), "-C", str(work / "gnu")], check=True)
                rows.append(("GNU tar -xzf (reference)", time.perf_counter() - start))
        finally:
            httpd.shutdown()
            httpd.server_close()
    print(f"\narchive: {size / (1 << 20):.0f} MiB, {args.files} files, {os.cpu_count()} CPUs")
    print(f"{'step':<28}{'seconds':>9}{'MiB/s':>9}")
    for name, seconds in rows:
        print(f"{name:<28}{seconds:>9.2f}{size / (1 << 20) / seconds:>9.0f}")


if __name__ == "__main__":
    main()
