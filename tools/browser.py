"""What the screenshot tools (and the browser tests) share: a local server run until it answers, and
headless Chromium with a fresh profile and no network side traffic.

Needs Chromium (Debian: ``apt-get install -y --no-install-recommends chromium``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of an installed Chromium/Chrome executable, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, status: int) -> bool:
    """Whether a GET of ``url`` answers HTTP ``status`` now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == status
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def local_server(command: list[str], log: Path, is_up, name: str, cwd: Path | str = ".",
                          env: dict | None = None, timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """Run ``command`` (stdout and stderr to ``log``) until ``is_up()``; yield the process, always stopped.

    A process that exits or is not up within ``timeout`` seconds is a RuntimeError ending with its log.
    """
    with open(log, "wb") as output:
        proc = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not is_up():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} did not come up within {timeout:.0f} s:\n{tail}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def headless_chromium(*flags: str, width: int, height: int,
                      stdout=subprocess.DEVNULL) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Start headless Chromium with a fresh profile and ``flags``; yield it and its profile folder.

    The browser and every helper it started are killed on exit (their own process group, nothing else).
    """
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it: apt-get install -y --no-install-recommends chromium")
    with tempfile.TemporaryDirectory(prefix="ppasr-chromium-") as profile:
        proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                 "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                 *flags], stdout=stdout, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            yield proc, Path(profile)
        finally:
            if proc.poll() is None:  # not reaped yet, so its process group id cannot belong to anyone else
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
