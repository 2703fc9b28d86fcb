"""Prepare a dataset: manifests, vocabulary, mean/std and noise manifest (PPASR create_data.py)."""
from ppasr.scripts import create_data

if __name__ == "__main__":
    create_data()
