"""Serve a VisualDL log folder on 127.0.0.1 and screenshot its scalar page with headless Chromium.

    python tools/vdl_screenshot.py --logdir=log --output=docs/images/visualdl_scalar.png

Needs Chromium (see tools/browser.py). The page expands only the
first tag group (alphabetically) by default, so that is the chart the screenshot shows.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.browser import answers, free_port, headless_chromium, local_server  # noqa: E402
from ppasr.cli import vdl_screenshot_parser  # noqa: E402
from ppasr.errors import UserError, run_main  # noqa: E402

SERVE = "import sys; from visualdl.server.app import main; sys.exit(main())"


@contextlib.contextmanager
def visualdl_server(logdir: str, cwd: Path | str = ".", timeout: float = 60.0) -> Iterator[str]:
    """Run ``visualdl --logdir=<logdir>`` (from ``cwd``) on a free 127.0.0.1 port; yield its base URL.

    The server is started with ``-L en`` (its pages answer HTTP 500 to requests without a language
    otherwise) and ``--disable-telemetry``, and is always stopped on exit.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="ppasr-visualdl-") as folder:
        command = [sys.executable, "-c", SERVE, f"--logdir={logdir}", "--host", "127.0.0.1", "--port", str(port),
                   "-L", "en", "--disable-telemetry"]
        with local_server(command, Path(folder) / "visualdl.log", lambda: answers(f"{url}/alive", 204),
                          f"VisualDL on {url}", cwd=cwd, timeout=timeout):
            yield url


def screenshot(url: str, output: Path | str, width: int = 1400, height: int = 1000,
               budget_ms: int = 15000, timeout: float = 120.0) -> Path:
    """Render ``url`` in headless Chromium into a PNG."""
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    with headless_chromium(f"--virtual-time-budget={budget_ms}", f"--screenshot={output}", url,
                           width=width, height=height, stdout=subprocess.PIPE) as (proc, _):
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not finish rendering {url} within {timeout:.0f} s") from None
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
