"""export_model.py's work: a static inference model with normalisation and softmax inside."""
from __future__ import annotations

import json
import os
import shutil

import paddle

from ppasr.features import FeatureNormalizer
from ppasr.model import InferenceModel
from ppasr.model_config import load_trained_model
from ppasr.utils import read_vocabulary, require_file

MODEL_PREFIX = "inference"
CONFIG_FILE = "model_config.json"
VOCAB_FILE = "vocabulary.txt"


def export_model(args) -> str:
    """Load ``resume_model`` and write ``<save_model>/<use_model>/infer/`` for infer_path.py."""
    require_file(args.dataset_vocab, "python3 create_data.py")
    require_file(args.mean_std_path, "python3 create_data.py")
    paddle.set_device("cpu")
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    config = normalizer.feature_config
    model_config, model = load_trained_model(args, vocabulary, config)
    wrapped = InferenceModel(model, normalizer.mean, normalizer.std)
    wrapped.eval()
    # PPASR's streaming signature: the GRU state goes in and comes out, so a stream can carry it.
    specs = [paddle.static.InputSpec([None, config.dim, None], "float32", "audio"),
             paddle.static.InputSpec([None], "int64", "audio_len"),
             paddle.static.InputSpec([model_config.num_rnn_layers, None, model_config.rnn_size], "float32",
                                     "init_state_h_box")]
    static = paddle.jit.to_static(wrapped, input_spec=specs, full_graph=True)
    out_dir = os.path.join(args.save_model, args.use_model, "infer")
    os.makedirs(out_dir, exist_ok=True)
    paddle.jit.save(static, os.path.join(out_dir, MODEL_PREFIX))
    shutil.copyfile(args.dataset_vocab, os.path.join(out_dir, VOCAB_FILE))
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"use_model": args.use_model, "feature_config": json.loads(config.to_json()),
                   "vocab_size": len(vocabulary), "cnn_size": model_config.cnn_size,
                   "num_rnn_layers": model_config.num_rnn_layers, "rnn_size": model_config.rnn_size,
                   "source": os.path.abspath(args.resume_model)}, f, ensure_ascii=False, indent=2)
    return out_dir
