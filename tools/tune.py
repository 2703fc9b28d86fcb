"""Grid-search the LM weight alpha and insertion bonus beta (PPASR tools/tune.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.cli import tune_parser  # noqa: E402
from ppasr.errors import run_main  # noqa: E402
from ppasr.utils import print_arguments  # noqa: E402


def main() -> None:
    args = tune_parser().parse_args()
    from ppasr.train.evaluation import run_tune  # after the flags are valid: --help and flag errors need no paddle
    print_arguments(args)
    run_tune(args)


if __name__ == "__main__":
    run_main(main)
