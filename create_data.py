"""Prepare a dataset: manifests, vocabulary, mean/std and noise manifest (PPASR create_data.py)."""
from ppasr.cli import create_data_parser
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = create_data_parser().parse_args()
    from ppasr.data.prepare import create_data  # after the flags are valid: --help and flag errors need no paddle
    print_arguments(args)
    create_data(args)


if __name__ == "__main__":
    run_main(main)
