"""Evaluate a trained model's CER (PPASR eval.py)."""
from ppasr.cli import eval_parser
from ppasr.errors import run_main
from ppasr.evaluation import run_eval
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = eval_parser().parse_args()
    print_arguments(args)
    run_main(lambda: run_eval(args))
