"""Prepare a dataset: manifests, vocabulary, mean/std and noise manifest (PPASR create_data.py)."""
from ppasr.cli import create_data_parser
from ppasr.data_prep import create_data
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = create_data_parser().parse_args()
    print_arguments(args)
    create_data(args)
