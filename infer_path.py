"""Transcribe one audio file with an exported model (PPASR infer_path.py)."""
from ppasr.cli import infer_parser
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = infer_parser().parse_args()
    from ppasr.serve.infer import infer_path  # after the flags are valid: --help and flag errors need no paddle
    print_arguments(args)
    infer_path(args)


if __name__ == "__main__":
    run_main(main)
