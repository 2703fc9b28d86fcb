"""Download THCHS-30 (openslr 18): 30 h; official test split -> annotation/test.txt.

    cd download_data && python thchs_30.py          # flags: python thchs_30.py --help
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where create_data.py runs: annotations name audio from here
sys.path.insert(0, str(ROOT))

from ppasr.scripts import download_corpus  # noqa: E402

if __name__ == "__main__":
    download_corpus("thchs_30", str(ROOT))
