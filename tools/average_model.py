"""Average the weights of a run's last checkpoints into one model folder, for eval.py and export_model.py.

    python tools/average_model.py --model_dir=models/deepspeech2/ --num=3

writes models/deepspeech2/avg_3/; then ``python3 eval.py --resume_model=models/deepspeech2/avg_3/``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.scripts import average_model  # noqa: E402

if __name__ == "__main__":
    average_model()
