"""Serve a VisualDL log folder on 127.0.0.1 and screenshot its scalar page with headless Chromium.

    python tools/vdl_screenshot.py --logdir=log --output=docs/images/visualdl_scalar.png

Needs Chromium (Debian: ``apt-get install -y --no-install-recommends chromium``). The page expands only the
first tag group (alphabetically) by default, so that is the chart the screenshot shows.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.cli import vdl_screenshot_parser  # noqa: E402
from ppasr.errors import UserError, run_main  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SERVE = "import sys; from visualdl.server.app import main; sys.exit(main())"


def find_chromium() -> str | None:
    """Path of an installed Chromium/Chrome executable, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def visualdl_server(logdir: str, cwd: Path | str = ".", timeout: float = 60.0) -> Iterator[str]:
    """Run ``visualdl --logdir=<logdir>`` (from ``cwd``) on a free 127.0.0.1 port; yield its base URL.

    The server is started with ``-L en`` (its pages answer HTTP 500 to requests without a language
    otherwise) and ``--disable-telemetry``, and is always stopped on exit.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, f"--logdir={logdir}", "--host", "127.0.0.1",
                                 "--port", str(port), "-L", "en", "--disable-telemetry"],
                                cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _alive(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    log = output.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"VisualDL did not come up on {url} within {timeout:.0f} s:\n{log}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/alive", timeout=2) as reply:
            return reply.status == 204
    except (urllib.error.URLError, OSError):
        return False


def screenshot(url: str, output: Path | str, width: int = 1400, height: int = 1000,
               budget_ms: int = 15000, timeout: float = 120.0) -> Path:
    """Render ``url`` in headless Chromium (fresh profile, no network side traffic) into a PNG."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it: apt-get install -y --no-install-recommends chromium")
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="vdl-chromium-") as profile:
        proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                 "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                 f"--virtual-time-budget={budget_ms}", f"--screenshot={output}", url],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser and the helpers it started, nothing else
            proc.communicate()
            raise RuntimeError(f"Chromium did not finish rendering {url} within {timeout:.0f} s")
    if proc.returncode != 0 or not output.exists():
        raise RuntimeError(f"Chromium failed ({proc.returncode}) to screenshot {url}:\n{log[-3000:]}")
    return output


def main(argv: list[str] | None = None) -> None:
    args = vdl_screenshot_parser().parse_args(argv)
    if not Path(args.logdir).is_dir():
        raise UserError(f"{args.logdir} is not a folder; train first (python3 train.py)")
    with visualdl_server(args.logdir) as url:
        path = screenshot(url + args.page, args.output, args.width, args.height)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_main(main)
