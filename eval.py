"""Evaluate a trained model's CER (PPASR eval.py)."""
from ppasr.scripts import evaluate

if __name__ == "__main__":
    evaluate()
