"""Download Free ST Chinese Mandarin Corpus (openslr 38): 102,600 utterances, no official test split.

    cd download_data && python free_st_chinese_mandarin_corpus.py          # flags: python free_st_chinese_mandarin_corpus.py --help
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where create_data.py runs: annotations name audio from here
sys.path.insert(0, str(ROOT))

from ppasr.scripts import download_corpus  # noqa: E402

if __name__ == "__main__":
    download_corpus("free_st_chinese_mandarin_corpus", str(ROOT))
