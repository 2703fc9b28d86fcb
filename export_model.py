"""Export a trained model for inference (PPASR export_model.py)."""
from ppasr.cli import export_parser
from ppasr.errors import run_main
from ppasr.export import export_model
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = export_parser().parse_args()
    print_arguments(args)
    run_main(lambda: print(f"预测模型已保存：{export_model(args)}"))
