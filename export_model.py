"""Export a trained model for inference (PPASR export_model.py)."""
from ppasr.scripts import export_model

if __name__ == "__main__":
    export_model()
