"""Speech recognition server: the page, POST /recognition(_long_audio) and ws /ws/asr (PPASR infer_server.py)."""
from ppasr.cli import server_parser
from ppasr.errors import run_main
from ppasr.serve.server import serve
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = server_parser().parse_args()
    print_arguments(args)
    run_main(lambda: serve(args))
