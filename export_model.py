"""Export a trained model for inference (PPASR export_model.py)."""
from ppasr.cli import export_parser
from ppasr.export import export_model
from ppasr.logger import setup_logging
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = export_parser().parse_args()
    print_arguments(args)
    setup_logging()
    print(f"预测模型已保存：{export_model(args)}")
