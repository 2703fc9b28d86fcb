"""Download RIRS_NOISES point-source noises (openslr 28) for noise augmentation -> dataset/audio/noise/.

    cd download_data && python noise.py          # flags: python noise.py --help
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where create_data.py runs: annotations name audio from here
sys.path.insert(0, str(ROOT))

from ppasr.scripts import download_corpus  # noqa: E402

if __name__ == "__main__":
    download_corpus("noise", str(ROOT))
