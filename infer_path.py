"""Transcribe one audio file with an exported model (PPASR infer_path.py)."""
from ppasr.cli import infer_parser
from ppasr.errors import run_main
from ppasr.infer import infer_path
from ppasr.logger import setup_logging
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = infer_parser().parse_args()
    print_arguments(args)
    setup_logging()
    run_main(lambda: infer_path(args))
