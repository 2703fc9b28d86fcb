"""Desktop window: recognise an audio file or a microphone recording (PPASR infer_gui.py)."""
from ppasr.cli import gui_parser, options
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = gui_parser().parse_args()
    from ppasr.serve.gui import run_gui  # after the flags are valid: --help and flag errors need no paddle
    from ppasr.serve.infer import InferOptions, ModelSource
    print_arguments(args)
    from ppasr.decode.options import DecodeOptions
    run_gui(options(ModelSource, args), options(InferOptions, args), options(DecodeOptions, args))


if __name__ == "__main__":
    run_main(main)
