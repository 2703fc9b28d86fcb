"""Download AISHELL-1 (openslr 33): 178 h, 400 speakers; official test split -> annotation/test.txt.

    cd download_data && python aishell.py          # flags: python aishell.py --help
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where create_data.py runs: annotations name audio from here
sys.path.insert(0, str(ROOT))

from ppasr.scripts import download_corpus  # noqa: E402

if __name__ == "__main__":
    download_corpus("aishell", str(ROOT))
