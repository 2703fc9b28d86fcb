"""Export a trained model for inference (PPASR export_model.py)."""
from ppasr.cli import export_parser
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = export_parser().parse_args()
    from ppasr.serve.export import export_model  # after the flags are valid: --help and flag errors need no paddle
    print_arguments(args)
    print(f"预测模型已保存：{export_model(args)}")


if __name__ == "__main__":
    run_main(main)
