"""Every command-line flag, defined once (names and defaults as PPASR's scripts).

Each flag is declared in one group function; each script's parser composes the groups it needs.
Flags are validated when parsed (types, ranges, finiteness, min < max), and a bad flag ends the
process with one ``error: argument --flag: …`` line and exit code 2 (argparse's code for usage errors).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from ppasr.data.features import FEATURE_METHODS
from ppasr.data.text import TEXT_MODES
from ppasr.model.registry import PLUGINS_ENV, model_names
from ppasr.serve.backend import BACKENDS
from ppasr.serve.vad import VADS
from ppasr.utils import none_or_str, str2bool

if TYPE_CHECKING:
    from ppasr.data.corpora import Corpus

Check = Callable[[argparse.Namespace], Optional[str]]
Options = TypeVar("Options")


def options(cls: type[Options], args: argparse.Namespace, **overrides) -> Options:
    """The frozen options dataclass ``cls`` filled from parsed flags of the same names (plus ``overrides``).

    Scripts call this at the boundary, so library functions take typed options, never the Namespace.
    """
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and which runs cross-flag checks after parsing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks: list[Check] = []

    def error(self, message: str):
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for check in self.checks:
            problem = check(parsed)
            if problem:
                self.error(problem)
        return parsed


# ---- value types: argparse reports their message as "argument --flag: <message>" ---------------

def integer(low: int, sentinel: int | None = None) -> Callable[[str], int]:
    """An int >= ``low`` (``sentinel``, e.g. -1 for "all", is also accepted)."""
    allowed = f">= {low}" + (f" or {sentinel}" if sentinel is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {allowed}, got {text!r}") from None
        if value < low and value != sentinel:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


def real(low: float | None = None, high: float | None = None, low_open: bool = False,
         sentinel: float | None = None) -> Callable[[str], float]:
    """A finite float in [low, high] (``low_open``: low excluded); ``sentinel`` is also accepted."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    allowed = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    allowed += f" (or {sentinel:g})" if sentinel is not None else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value == sentinel:
            return value
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def feature_method(text: str) -> str | None:
    """A feature method name, or None (``None``: take it from mean_std.npz)."""
    value = none_or_str(text)
    if value is not None and value not in FEATURE_METHODS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(FEATURE_METHODS)}, got {text!r}")
    return value


def _add(parser: argparse.ArgumentParser, name: str, type_, default, help_: str, **kwargs) -> None:
    type_ = str2bool if type_ is bool else type_
    parser.add_argument(f"--{name}", type=type_, default=default, help=f"{help_} Default: %(default)s.", **kwargs)


# ---- cross-flag checks -------------------------------------------------------------------------

def _less(low: str, high: str, unbounded: float | None = None) -> Check:
    """``--low`` must be below ``--high`` (unless ``--high`` is the "no limit" value)."""
    def check(args: argparse.Namespace) -> str | None:
        lo, hi = getattr(args, low), getattr(args, high)
        if hi != unbounded and lo >= hi:
            return f"--{low} ({lo:g}) must be less than --{high} ({hi:g})"
        return None
    return check


def _not_above(low: str, high: str) -> Check:
    def check(args: argparse.Namespace) -> str | None:
        lo, hi = getattr(args, low), getattr(args, high)
        return f"--{low} ({lo:g}) must not be greater than --{high} ({hi:g})" if lo > hi else None
    return check


def _model_size_positive(args: argparse.Namespace) -> str | None:
    """Model sizes must be >= 1 (None means: read it from the checkpoint)."""
    for name in ("cnn_size", "num_rnn_layers", "rnn_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            return f"argument --{name}: must be >= 1, got {value}"
    return None


def _required(name: str, what: str) -> Check:
    def check(args: argparse.Namespace) -> str | None:
        return f"argument --{name}: {what} is required" if getattr(args, name) is None else None
    return check


# ---- flag groups (each flag is declared in exactly one of these) --------------------------------

def _workers(p: FlagParser) -> None:
    _add(p, "num_workers", integer(0), 8, "读取数据的进程数量.")


def _loader(p: FlagParser, batch_size: int = 32) -> None:
    _add(p, "batch_size", integer(1), batch_size, "批量大小 (batch size).")
    _workers(p)


def _manifests(p: FlagParser, train: bool = True) -> None:
    if train:
        _add(p, "train_manifest", str, "dataset/manifest.train", "训练数据的数据列表路径 (train manifest).")
    _add(p, "test_manifest", str, "dataset/manifest.test", "测试数据的数据列表路径 (test manifest).")


def _vocab_and_stats(p: FlagParser) -> None:
    _add(p, "dataset_vocab", str, "dataset/vocabulary.txt", "数据字典的路径 (vocabulary; create_data.py writes it).")
    _add(p, "mean_std_path", str, "dataset/mean_std.npz", "数据集的均值和标准值的npz文件路径.")


def _data_paths(p: FlagParser, train: bool = True) -> None:
    _manifests(p, train)
    _vocab_and_stats(p)


def _feature(p: FlagParser, default) -> None:
    _add(p, "feature_method", feature_method, default,
         f"特征类型 {FEATURE_METHODS}; must match the one create_data.py recorded in mean_std.npz.")


def _model_size(p: argparse.ArgumentParser) -> None:
    """Model flags; sizes default to the checkpoint's recorded config, else PPASR's 32 / 3 / 1024."""
    _add(p, "use_model", str, "deepspeech2", f"所使用的模型 (a model of your own: see {PLUGINS_ENV} in the README).",
         choices=model_names())
    from_checkpoint = "None = 模型文件夹 state.json 中记录的值 (from the checkpoint), 否则 (else)"
    _add(p, "cnn_size", int, None, f"卷积层通道数 (channels of both conv layers); {from_checkpoint} 32.")
    _add(p, "num_rnn_layers", int, None, f"GRU层数; {from_checkpoint} 3.")
    _add(p, "rnn_size", int, None, f"GRU隐藏层大小; {from_checkpoint} 1024.")


def _sized_model(p: FlagParser) -> None:
    _model_size(p)
    p.checks.append(_model_size_positive)


def _resume(p: FlagParser, default: str | None) -> None:
    """``resume_model``: train.py's optional checkpoint to continue; the model eval/export/tune load."""
    help_ = "恢复训练的模型文件夹，当为None则不使用." if default is None else "模型的路径 (checkpoint folder)."
    _add(p, "resume_model", none_or_str, default, help_)
    if default is not None:
        p.checks.append(_required("resume_model", f"a model folder (e.g. {default})"))


def _beam_search(p: FlagParser, beam_size: int = 10, cutoff_prob: float = 1.0, parallel: bool = True) -> None:
    _add(p, "beam_size", integer(1), beam_size, "集束搜索的大小，范围:[5, 500].")
    if parallel:
        _add(p, "num_proc_bsearch", integer(1), 8, "集束搜索方法使用CPU数量.")
    _add(p, "cutoff_prob", real(0.0, 1.0, low_open=True), cutoff_prob, "剪枝的概率.")
    _add(p, "cutoff_top_n", integer(1), 40, "剪枝的最大值.")
    _add(p, "lang_model_path", none_or_str, "lm/zh_giga.no_cna_cmn.prune01244.klm",
         "语言模型文件路径 (KenLM ARPA or binary); None = beam search without LM.")


def _decoding(p: FlagParser, parallel: bool = True) -> None:
    """PPASR's decoding flags and defaults (eval.py, infer_path.py, infer_server.py)."""
    _add(p, "decoder", str, "ctc_greedy", "结果解码方法.", choices=["ctc_beam_search", "ctc_greedy"])
    _add(p, "alpha", real(), 1.2, "集束搜索的LM系数 (weight of log10 P_LM, PPASR's units).")
    _add(p, "beta", real(), 0.35, "集束搜索的WC系数 (bonus per LM token: character, or word for English).")
    _beam_search(p, parallel=parallel)
    _add(p, "hotwords", none_or_str, None, "热词，用逗号分隔 (names and terms to prefer; beam search only).")
    _add(p, "hotwords_file", none_or_str, None, "热词文件：每行一个热词，可在其后加空格和权重 (UTF-8).")
    _add(p, "hotword_weight", real(0.0, low_open=True), 4.0,
         "热词的奖励分数 (per matched token, natural-log units; taken back if the hotword is left unfinished).")
    p.checks.append(_hotwords_need_beam_search)


def _hotwords_need_beam_search(args: argparse.Namespace) -> str | None:
    if args.decoder == "ctc_greedy" and (args.hotwords or args.hotwords_file):
        return "--hotwords/--hotwords_file need --decoder=ctc_beam_search (greedy decoding cannot be biased)"
    return None


def _prediction(p: FlagParser) -> None:
    """Flags shared by infer_path.py and infer_server.py (PPASR gave both the same ones)."""
    _add(p, "use_gpu", bool, True, "是否使用GPU预测 (falls back to CPU when paddle has no CUDA).")
    _add(p, "to_an", bool, True, "是否转为阿拉伯数字 (Chinese numerals → Arabic digits).")
    _decoding(p, parallel=False)
    _add(p, "vocab_path", none_or_str, "dataset/vocabulary.txt",
         "数据集的词汇表文件路径 (checked against the vocabulary exported with the model).")
    _add(p, "model_dir", str, "models/deepspeech2/infer/", "导出的预测模型文件夹路径.")
    _add(p, "backend", none_or_str, None, "推理后端 onnxruntime|paddle; None = onnxruntime on CPU, paddle when "
         "--use_gpu finds CUDA.", choices=[None, *BACKENDS])
    _add(p, "num_threads", integer(0), 0, "CPU推理线程数; 0 = the cores this process may use (OMP_NUM_THREADS if set).")


# ---- one parser per script ----------------------------------------------------------------------

def create_data_parser() -> FlagParser:
    p = FlagParser(description="Create manifests, vocabulary and mean/std (PPASR create_data.py).")
    _add(p, "annotation_path", str, "dataset/annotation/", "标注文件的路径.")
    _manifests(p)
    _add(p, "is_change_frame_rate", bool, True,
         "是否统一改变音频为16000Hz单声道 (converted copies go to dataset/cache; your audio is never modified).")
    _add(p, "count_threshold", integer(0), 2, "字符计数的截断阈值，0为不做限制.")
    _vocab_and_stats(p)
    _workers(p)
    _add(p, "num_samples", integer(1, sentinel=-1), -1, "用于计算均值和标准值得音频数量，当为-1使用全部数据.")
    _add(p, "noise_path", str, "dataset/audio/noise", "噪声音频存放的文件夹路径.")
    _add(p, "noise_manifest_path", str, "dataset/manifest.noise", "噪声数据列表的路径.")
    _feature(p, "linear")
    _add(p, "text_mode", str, "zh", "文本过滤: zh keeps Chinese characters only; en/mixed keep letters, "
         "digits, apostrophes and spaces.", choices=list(TEXT_MODES))
    return p


def train_parser() -> FlagParser:
    p = FlagParser(description="Train DeepSpeech2 with CTC (PPASR train.py).")
    _loader(p)
    _add(p, "num_epoch", integer(1), 50, "训练的轮数.")
    _add(p, "learning_rate", real(0.0, low_open=True), 1e-3, "初始学习率的大小.")
    _add(p, "lr_gamma", real(0.0, 1.0, low_open=True), 0.83,
         "每轮学习率衰减系数 (learning rate × lr_gamma^epoch, stepped per epoch; 1 = no decay).")
    _add(p, "warmup_steps", integer(0), 0, "学习率预热步数: the rate rises linearly to learning_rate over this many "
         "batches (0 = no warm-up, as PPASR).")
    _add(p, "min_duration", real(0.0), 0, "过滤最短的音频长度.")
    _add(p, "max_duration", real(0.0, low_open=True, sentinel=-1), 20, "过滤最长的音频长度，当为-1的时候不限制长度.")
    p.checks.append(_less("min_duration", "max_duration", unbounded=-1))
    _sized_model(p)
    _data_paths(p)
    _feature(p, None)
    _add(p, "augment_conf_path", none_or_str, "conf/augmentation.json", "数据增强的配置文件 (None disables).")
    _add(p, "save_model_path", str, "models/", "模型保存的路径.")
    _resume(p, None)
    _add(p, "pretrained_model", none_or_str, None, "预训练模型的路径，当为None则不使用预训练模型.")
    _add(p, "seed", integer(0), 1000, "随机种子 (sampler and augmentation).")
    _add(p, "log_interval", integer(1), 100, "每多少个batch打印一次日志.")
    _add(p, "save_interval", integer(0), 10000, "每多少个batch保存一次模型 (besides every epoch; 0 = only every epoch).")
    _add(p, "keep_checkpoints", integer(0), 3, "保留最近的模型数量 (0 = keep all).")
    _add(p, "log_dir", str, "log/", "VisualDL 日志目录.")
    _add(p, "use_amp", bool, False, "GPU上使用自动混合精度训练 (ignored on CPU).")
    _add(p, "max_bad_steps", integer(1), 20, "连续NaN/inf损失达到此数则停止训练.")
    _add(p, "accum_grad", integer(1), 1, "每多少个batch更新一次参数 (gradient accumulation; save_interval then counts updates).")
    _add(p, "max_batch_duration", real(0), 0.0, "每个batch最多多少秒音频 (0 = batch_size utterances; a longer single utterance forms its own batch).")
    return p


def eval_parser() -> FlagParser:
    p = FlagParser(description="Evaluate CER of a trained model (PPASR eval.py).")
    _loader(p)
    _decoding(p)
    _sized_model(p)
    _data_paths(p, train=False)
    _feature(p, None)
    _resume(p, "models/deepspeech2/epoch_50/")
    _add(p, "result_path", none_or_str, None, "把每条识别结果 (hyp/ref/edit distance) 写入此文件.")
    return p


def tune_parser() -> FlagParser:
    p = FlagParser(description="Grid-search alpha/beta for LM beam search (PPASR tools/tune.py).")
    _add(p, "num_data", integer(1, sentinel=-1), -1, "用于评估的数据数量，当为-1时使用全部数据 (utterances).")
    _loader(p, batch_size=16)
    _add(p, "decoder", str, "ctc_greedy", "结果解码方法 (accepted as PPASR's tune.py did; tuning always uses "
         "beam search).", choices=["ctc_beam_search", "ctc_greedy"])
    _beam_search(p)
    _add(p, "num_alphas", integer(1), 45, "用于调优的alpha候选项.")
    _add(p, "num_betas", integer(1), 8, "用于调优的beta候选项.")
    _add(p, "alpha_from", real(), 1.0, "alpha调优开始大小.")
    _add(p, "alpha_to", real(), 3.2, "alpha调优结速大小.")
    _add(p, "beta_from", real(), 0.1, "beta调优开始大小.")
    _add(p, "beta_to", real(), 0.45, "beta调优结速大小.")
    p.checks += [_not_above("alpha_from", "alpha_to"), _not_above("beta_from", "beta_to")]
    _sized_model(p)
    _data_paths(p, train=False)
    _feature(p, None)
    _resume(p, "models/deepspeech2/epoch_50/")
    p.checks.append(_required("lang_model_path", "a language model (build one with tools/build_lm.py)"))
    return p


def export_parser() -> FlagParser:
    p = FlagParser(description="Export an inference model (PPASR export_model.py).")
    _sized_model(p)
    _vocab_and_stats(p)
    _add(p, "save_model", str, "models/", "模型保存的路径.")
    _resume(p, "models/deepspeech2/epoch_50")
    return p


def infer_parser() -> FlagParser:
    p = FlagParser(description="Transcribe one audio file with an exported model (PPASR infer_path.py).")
    _add(p, "wav_path", str, "./dataset/test.wav", "预测音频的路径.")
    _add(p, "is_long_audio", bool, False, "是否为长语音 (split on silence, decode parts, join).")
    _add(p, "print_timestamps", bool, False, "是否打印时间戳 (one line per character, word for English: start-end).")
    _prediction(p)
    _vad(p)
    return p


def gui_parser() -> FlagParser:
    p = FlagParser(description="Desktop window: recognise a file or a recording (PPASR infer_gui.py).")
    _prediction(p)
    _vad(p)
    return p


def _vad(p: FlagParser) -> None:
    _add(p, "vad", str, "webrtc", "长语音分割所用的VAD: webrtc (PPASR's), silero (neural, CPU) or energy.",
         choices=list(VADS))


def server_parser() -> FlagParser:
    p = FlagParser(description="Speech recognition server: page, HTTP and WebSocket streaming "
                                            "(PPASR infer_server.py).")
    _add(p, "host", str, "0.0.0.0", "监听主机的IP地址.")
    _add(p, "port", integer(1), 5000, "服务所使用的端口号.")
    _prediction(p)
    _vad(p)
    _add(p, "max_upload_mb", real(0.0, low_open=True), 32, "上传音频的最大大小 (MB); larger uploads get HTTP 413.")
    _add(p, "max_audio_seconds", real(0.0, low_open=True), 600, "一条音频的最大时长 (s): per upload and per streamed utterance.")
    _add(p, "max_streams", integer(1), 32, "同时打开的WebSocket流的最大数量; more are refused with code 5.")
    _add(p, "max_uploads", integer(1), 4, "同时处理的上传请求的最大数量; more get HTTP 503 with Retry-After.")
    _add(p, "max_channels", integer(1), 8, "上传音频的最大声道数 (checked in the header before decoding).")
    _add(p, "max_sample_rate", integer(1), 192000, "上传音频的最大采样率 (Hz).")
    _add(p, "max_decoded_samples", integer(1), 60_000_000,
         "上传音频解码后的最大样本数 (frames x channels; 60M = 10 min of 48 kHz stereo).")
    _add(p, "max_connections", integer(1), 1000, "同时打开的连接的最大数量; more are answered 503 and closed.")
    _add(p, "header_timeout", real(0.0, low_open=True), 10, "请求头必须在多少秒内收到 (s); else the connection is closed.")
    _add(p, "body_timeout", real(0.0, low_open=True), 60, "请求体必须在请求头之后多少秒内收到 (s).")
    _add(p, "stream_idle_seconds", real(0.0, low_open=True), 60,
         "WebSocket流多少秒没有音频就关闭 (s); also the time a client may take to read an answer.")
    _add(p, "allowed_origins", str, "", "允许的其他来源 (comma-separated Origins, or * for all as PPASR); "
         "default: only the page this server serves.")
    _add(p, "token", none_or_str, None, "共享密钥 (None = no authentication): requests need ?token=… or "
         "Authorization: Bearer ….")
    _add(p, "max_hotwords", integer(0), 100, "每个请求最多的热词数 (the form field / WebSocket message `hotwords`).")
    _add(p, "max_hotword_chars", integer(1), 32, "每个热词最多的字符数.")
    return p


def _archive_source(p: FlagParser, corpus: Corpus) -> None:
    _add(p, "url", str, corpus.url, "下载地址 (a mirror, e.g. https://openslr.magicdatatech.com/resources/...).")
    _add(p, "md5", none_or_str, corpus.md5, "压缩包的MD5 (None = not checked).")
    _add(p, "archive", none_or_str, None, "已下载的压缩包路径，不再下载 (only read, never deleted).")


def download_parser(corpus: Corpus) -> FlagParser:
    """Flags of download_data/<name>.py for a speech corpus (``ppasr.data.corpora.Corpus``): PPASR's, then ours."""
    p = FlagParser(description=f"Download {corpus.title} and write its annotations (PPASR download_data).")
    _add(p, "target_dir", str, "../dataset/audio/", "存放音频文件的目录.")
    _add(p, "annotation_text", str, "../dataset/annotation/", "存放音频标注文件的目录.")
    _archive_source(p, corpus)
    return p


def noise_download_parser(corpus: Corpus) -> FlagParser:
    """Flags of download_data/noise.py (``corpus``: the RIRS_NOISES entry of ``ppasr.data.corpora``)."""
    p = FlagParser(description="Download RIRS_NOISES point-source noises (PPASR download_data/noise.py).")
    _add(p, "target_dir", str, "../dataset/audio/", "存放下载的压缩包的目录.")
    _add(p, "noise_path", str, "../dataset/audio/noise/", "存放噪声音频的目录.")
    _archive_source(p, corpus)
    return p


def generate_audio_parser() -> FlagParser:
    from ppasr.demo.espeak import BACKENDS
    from ppasr.demo.grammar import GRAMMARS, LANGUAGES
    from ppasr.demo.synth import ENGINES, SPLITS

    p = FlagParser(description="Generate a synthetic speech corpus (eSpeak NG) with a PPASR annotation file.")
    _add(p, "num_samples", integer(1), 3000, "utterances to generate.")
    _add(p, "seed", integer(0), 0, "random seed of sentences, voices and noise.")
    _add(p, "language", str, "zh", "zh: Mandarin (Hanzi transcripts); en: English (lower-case words).",
         choices=LANGUAGES)
    _add(p, "grammar", str, "demo", "demo: ~130 characters, short sentences, quick to learn; full: richer.",
         choices=GRAMMARS)
    _add(p, "name", str, "demo", "corpus name (audio sub-folder and annotation file).")
    _add(p, "split", str, "train", "train: training voices and sentences -> annotation/<name>.txt; test: the same "
         "voices, test sentences; unseen: held-out voices, templates, rates and pitches (test and unseen go "
         "to audio/<name>_<split>/ and annotation/test.txt, create_data.py's test set).", choices=list(SPLITS))
    _add(p, "noise_clips", integer(0), 0, "also write this many noise clips (white, pink, brown, hum, babble) to "
         "<output_dir>/audio/noise/ for noise augmentation.")
    _add(p, "output_dir", str, "dataset", "root of audio/ and annotation/.")
    _add(p, "num_workers", integer(1), None, "synthesis processes (None: the number of CPUs).")
    _add(p, "backend", str, "auto", "eSpeak NG from pip espeakng-loader ('library') or the espeak-ng program "
         "('cli'); 'auto' prefers the library.", choices=BACKENDS)
    _add(p, "engine", str, "espeak", "espeak: eSpeak NG voices; kokoro: the Kokoro-82M neural Mandarin speakers "
         "(requirements-kokoro.txt; 5 train, 2 held out for unseen); mixed: half each.", choices=ENGINES)
    return p


def build_lm_parser() -> FlagParser:
    from ppasr.decode.lm_builder import TOKEN_MODES

    p = FlagParser(description="Build an n-gram language model (ARPA) for the CTC beam search.")
    p.add_argument("--manifest", nargs="+", required=True,
                   help="manifests (JSON lines with a 'text' field) or plain-text files, one transcript per line")
    p.add_argument("--output", required=True, help="ARPA file to write (.klm/.bin needs KenLM's build_binary)")
    _add(p, "order", integer(1), None, "n-gram order (None: 5 for characters, 3 for words).")
    _add(p, "token", str, "auto", "LM tokens: characters (Chinese), words (English) or detected from the text.",
         choices=TOKEN_MODES)
    _add(p, "build_binary", none_or_str, None, "path of KenLM's build_binary, for binary output "
         "(None: looked up on PATH).")
    return p


def average_model_parser() -> FlagParser:
    p = FlagParser(description="Average the weights of a run's last checkpoints into one model folder.")
    _add(p, "model_dir", str, "models/deepspeech2/", "the run's checkpoint folder (epoch_N folders).")
    _add(p, "num", integer(1), 3, "how many of its newest end-of-epoch checkpoints to average.")
    p.add_argument("--checkpoints", nargs="+", default=None,
                   help="average these checkpoint folders instead (any saves of one model). Default: None.")
    _add(p, "output", none_or_str, None, "the folder to write (None: <model_dir>/avg_<num>).")
    return p


def whisper_cer_parser() -> FlagParser:
    p = FlagParser(description="Whisper-base's greedy CER on a manifest, beside the demo's model (optional peer).")
    p.add_argument("--manifest", required=True, help="manifest to transcribe (JSON lines: audio_filepath, text)")
    _add(p, "limit", integer(0), 0, "transcribe only the first N utterances (0: all).")
    _add(p, "num_threads", integer(1), 2, "CPU threads for Whisper.")
    return p


def vdl_screenshot_parser() -> FlagParser:
    p = FlagParser(description="Serve a VisualDL log folder and screenshot its scalar page with headless Chromium.")
    _add(p, "logdir", str, "log", "the folder train.py logs into (served by VisualDL).")
    _add(p, "output", str, "docs/images/visualdl_scalar.png", "PNG to write.")
    _add(p, "page", str, "/app/scalar", "VisualDL page to render.")
    _add(p, "width", integer(1), 1400, "screenshot width in pixels.")
    _add(p, "height", integer(1), 1000, "screenshot height in pixels.")
    return p
