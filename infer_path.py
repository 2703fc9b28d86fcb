"""Transcribe one audio file with an exported model (PPASR infer_path.py)."""
import os

os.environ.setdefault("GLOG_minloglevel", "2")  # no paddle executor chatter (PPASR: disable_glog_info)

from ppasr.cli import infer_parser  # noqa: E402
from ppasr.errors import run_main  # noqa: E402
from ppasr.infer import infer_path  # noqa: E402
from ppasr.logger import setup_logging  # noqa: E402
from ppasr.utils import print_arguments  # noqa: E402

if __name__ == "__main__":
    args = infer_parser().parse_args()
    print_arguments(args)
    setup_logging()
    run_main(lambda: infer_path(args))
