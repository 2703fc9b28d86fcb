"""Grid-search the LM weight alpha and insertion bonus beta (PPASR tools/tune.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.cli import tune_parser  # noqa: E402
from ppasr.errors import run_main  # noqa: E402
from ppasr.evaluation import run_tune  # noqa: E402
from ppasr.utils import print_arguments  # noqa: E402

if __name__ == "__main__":
    args = tune_parser().parse_args()
    print_arguments(args)
    run_main(lambda: run_tune(args))
