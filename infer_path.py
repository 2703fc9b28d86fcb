"""Transcribe one audio file with an exported model (PPASR infer_path.py)."""
from ppasr.scripts import infer_path

if __name__ == "__main__":
    infer_path()
