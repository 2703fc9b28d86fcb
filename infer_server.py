"""Speech recognition server: the page, POST /recognition(_long_audio) and ws /ws/asr (PPASR infer_server.py)."""
from ppasr.scripts import infer_server

if __name__ == "__main__":
    infer_server()
