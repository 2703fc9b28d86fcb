"""Evaluate a trained model's CER (PPASR eval.py)."""
from ppasr.cli import eval_parser
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = eval_parser().parse_args()
    from ppasr.train.evaluation import run_eval  # after the flags are valid: --help and flag errors need no paddle
    print_arguments(args)
    run_eval(args)


if __name__ == "__main__":
    run_main(main)
