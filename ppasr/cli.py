"""Every command-line flag, defined once (names and defaults as PPASR's scripts)."""
from __future__ import annotations

import argparse

from ppasr.backend import BACKENDS
from ppasr.features import FEATURE_METHODS
from ppasr.text import TEXT_MODES
from ppasr.utils import none_or_str, str2bool


def _add(parser: argparse.ArgumentParser, name: str, type_, default, help_: str, **kwargs) -> None:
    type_ = str2bool if type_ is bool else type_
    parser.add_argument(f"--{name}", type=type_, default=default, help=f"{help_} Default: %(default)s.", **kwargs)


def _data_paths(p: argparse.ArgumentParser, train: bool = True) -> None:
    if train:
        _add(p, "train_manifest", str, "dataset/manifest.train", "训练数据的数据列表路径 (train manifest).")
    _add(p, "test_manifest", str, "dataset/manifest.test", "测试数据的数据列表路径 (test manifest).")
    _add(p, "dataset_vocab", str, "dataset/vocabulary.txt", "数据字典的路径 (vocabulary).")
    _add(p, "mean_std_path", str, "dataset/mean_std.npz", "数据集的均值和标准值的npz文件路径.")


def _feature(p: argparse.ArgumentParser, default) -> None:
    _add(p, "feature_method", none_or_str, default,
         f"特征类型 {FEATURE_METHODS}; must match the one create_data.py recorded in mean_std.npz.")


def _model_size(p: argparse.ArgumentParser) -> None:
    _add(p, "use_model", str, "deepspeech2", "所使用的模型.", choices=["deepspeech2"])
    _add(p, "cnn_size", int, 32, "卷积层通道数 (channels of both conv layers).")
    _add(p, "num_rnn_layers", int, 3, "GRU层数.")
    _add(p, "rnn_size", int, 1024, "GRU隐藏层大小.")


def _decoding(p: argparse.ArgumentParser, parallel: bool = True) -> None:
    _add(p, "decoder", str, "ctc_greedy", "结果解码方法.", choices=["ctc_beam_search", "ctc_greedy"])
    _add(p, "alpha", float, 1.2, "集束搜索的LM系数 (weight of log10 P_LM, PPASR's units).")
    _add(p, "beta", float, 0.35, "集束搜索的WC系数 (bonus per LM token: character, or word for English).")
    _add(p, "beam_size", int, 10, "集束搜索的大小，范围:[5, 500].")
    if parallel:
        _add(p, "num_proc_bsearch", int, 8, "集束搜索方法使用CPU数量.")
    _add(p, "cutoff_prob", float, 1.0, "剪枝的概率.")
    _add(p, "cutoff_top_n", int, 40, "剪枝的最大值.")
    _add(p, "lang_model_path", none_or_str, "lm/zh_giga.no_cna_cmn.prune01244.klm",
         "语言模型文件路径 (KenLM ARPA or binary); None = beam search without LM.")


def _backend(p: argparse.ArgumentParser) -> None:
    _add(p, "backend", none_or_str, None, "推理后端 onnxruntime|paddle; None = onnxruntime on CPU, paddle when "
         "--use_gpu finds CUDA.", choices=[None, *BACKENDS])
    _add(p, "num_threads", int, 0, "CPU推理线程数; 0 = the cores this process may use (OMP_NUM_THREADS if set).")


def create_data_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Create manifests, vocabulary and mean/std (PPASR create_data.py).")
    _add(p, "annotation_path", str, "dataset/annotation/", "标注文件的路径.")
    _add(p, "train_manifest", str, "dataset/manifest.train", "训练数据的数据列表路径.")
    _add(p, "test_manifest", str, "dataset/manifest.test", "测试数据的数据列表路径.")
    _add(p, "is_change_frame_rate", bool, True,
         "是否统一改变音频为16000Hz单声道 (converted copies go to dataset/cache; your audio is never modified).")
    _add(p, "count_threshold", int, 2, "字符计数的截断阈值，0为不做限制.")
    _add(p, "dataset_vocab", str, "dataset/vocabulary.txt", "生成的数据字典文件.")
    _add(p, "num_workers", int, 8, "读取数据的进程数量.")
    _add(p, "num_samples", int, -1, "用于计算均值和标准值得音频数量，当为-1使用全部数据.")
    _add(p, "mean_std_path", str, "dataset/mean_std.npz", "保存均值和标准值得numpy文件路径，后缀 (.npz).")
    _add(p, "noise_path", str, "dataset/audio/noise", "噪声音频存放的文件夹路径.")
    _add(p, "noise_manifest_path", str, "dataset/manifest.noise", "噪声数据列表的路径.")
    _feature(p, "linear")
    _add(p, "text_mode", str, "zh", "文本过滤: zh keeps Chinese characters only; en/mixed keep letters, "
         "digits, apostrophes and spaces.", choices=list(TEXT_MODES))
    return p


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train DeepSpeech2 with CTC (PPASR train.py).")
    _add(p, "batch_size", int, 32, "训练的批量大小.")
    _add(p, "num_workers", int, 8, "读取数据的进程数量.")
    _add(p, "num_epoch", int, 50, "训练的轮数.")
    _add(p, "learning_rate", float, 1e-3, "初始学习率的大小.")
    _add(p, "lr_gamma", float, 0.83, "每轮学习率衰减系数 (ExponentialDecay gamma, stepped per epoch).")
    _add(p, "min_duration", float, 0, "过滤最短的音频长度.")
    _add(p, "max_duration", float, 20, "过滤最长的音频长度，当为-1的时候不限制长度.")
    _model_size(p)
    _data_paths(p)
    _feature(p, None)
    _add(p, "augment_conf_path", none_or_str, "conf/augmentation.json", "数据增强的配置文件 (None disables).")
    _add(p, "save_model_path", str, "models/", "模型保存的路径.")
    _add(p, "resume_model", none_or_str, None, "恢复训练的模型文件夹，当为None则不使用.")
    _add(p, "pretrained_model", none_or_str, None, "预训练模型的路径，当为None则不使用预训练模型.")
    _add(p, "seed", int, 1000, "随机种子 (sampler and augmentation).")
    _add(p, "log_interval", int, 100, "每多少个batch打印一次日志.")
    _add(p, "save_interval", int, 10000, "每多少个batch保存一次模型 (besides every epoch).")
    _add(p, "keep_checkpoints", int, 3, "保留最近的模型数量.")
    _add(p, "log_dir", str, "log/", "VisualDL 日志目录.")
    _add(p, "use_amp", bool, False, "GPU上使用自动混合精度训练 (ignored on CPU).")
    _add(p, "max_bad_steps", int, 20, "连续NaN/inf损失达到此数则停止训练.")
    return p


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate CER of a trained model (PPASR eval.py).")
    _add(p, "batch_size", int, 32, "评估的批量大小.")
    _add(p, "num_workers", int, 8, "读取数据的进程数量.")
    _decoding(p)
    _model_size(p)
    _data_paths(p, train=False)
    _feature(p, None)
    _add(p, "resume_model", str, "models/deepspeech2/epoch_50/", "模型的路径.")
    _add(p, "result_path", none_or_str, None, "把每条识别结果 (hyp/ref/edit distance) 写入此文件.")
    return p


def tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Grid-search alpha/beta for LM beam search (PPASR tools/tune.py).")
    _add(p, "num_batches", int, -1, "用于评估的数据数量，当为-1时使用全部数据.")
    _add(p, "batch_size", int, 32, "评估的批量大小.")
    _add(p, "num_workers", int, 8, "读取数据的进程数量.")
    _add(p, "beam_size", int, 10, "集束搜索的大小.")
    _add(p, "num_proc_bsearch", int, 8, "集束搜索方法使用CPU数量.")
    _add(p, "num_alphas", int, 45, "用于调优的alpha候选项.")
    _add(p, "num_betas", int, 8, "用于调优的beta候选项.")
    _add(p, "alpha_from", float, 1.0, "alpha调优开始大小.")
    _add(p, "alpha_to", float, 3.2, "alpha调优结速大小.")
    _add(p, "beta_from", float, 0.1, "beta调优开始大小.")
    _add(p, "beta_to", float, 0.45, "beta调优结速大小.")
    _add(p, "cutoff_prob", float, 1.0, "剪枝的概率.")
    _add(p, "cutoff_top_n", int, 40, "剪枝的最大值.")
    _model_size(p)
    _data_paths(p, train=False)
    _feature(p, None)
    _add(p, "resume_model", str, "models/deepspeech2/epoch_50/", "模型的路径.")
    _add(p, "lang_model_path", str, "lm/zh_giga.no_cna_cmn.prune01244.klm", "语言模型文件路径.")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export an inference model (PPASR export_model.py).")
    _model_size(p)
    _add(p, "dataset_vocab", str, "dataset/vocabulary.txt", "数据字典的路径.")
    _add(p, "mean_std_path", str, "dataset/mean_std.npz", "数据集的均值和标准值的npz文件路径.")
    _add(p, "save_model", str, "models/", "模型保存的路径.")
    _add(p, "resume_model", str, "models/deepspeech2/epoch_50", "恢复训练的模型文件夹.")
    return p


def infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Transcribe one audio file with an exported model (PPASR infer_path.py).")
    _add(p, "wav_path", str, "./dataset/test.wav", "预测音频的路径.")
    _add(p, "is_long_audio", bool, False, "是否为长语音 (split on silence, decode parts, join).")
    _add(p, "use_gpu", bool, True, "是否使用GPU预测 (falls back to CPU when paddle has no CUDA).")
    _add(p, "to_an", bool, True, "是否转为阿拉伯数字 (Chinese numerals → Arabic digits).")
    _decoding(p, parallel=False)
    _add(p, "vocab_path", none_or_str, "dataset/vocabulary.txt",
         "数据集的词汇表文件路径 (checked against the vocabulary exported with the model).")
    _add(p, "model_dir", str, "models/deepspeech2/infer/", "导出的预测模型文件夹路径.")
    _backend(p)
    return p
