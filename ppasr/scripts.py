"""The command-line programs, one function each: the root scripts (``python3 train.py``) and the console
entry points of an installed package (``ppasr-train``) both call these.

Flags are parsed first and paddle is imported only after they are valid, so ``--help`` and flag errors
are instant. A ``UserError`` ends a program with one ``error: …`` line (``run_main``).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ppasr import cli
from ppasr.data.options import DataOptions
from ppasr.errors import UserError, run_main
from ppasr.model.options import ModelChoice
from ppasr.train.options import OptimOptions, RunOptions, TrainOptions
from ppasr.utils import print_arguments

if TYPE_CHECKING:  # ppasr.jobs imports paddle: scripts import it only once the flags are valid
    from ppasr.jobs import EvalJob


def create_data() -> None:
    """PPASR create_data.py: manifests, vocabulary, mean/std and noise manifest."""
    def job() -> None:
        args = cli.create_data_parser().parse_args()
        from ppasr.data.prepare import PrepareOptions, create_data as prepare
        print_arguments(args)
        prepare(cli.options(PrepareOptions, args))
    run_main(job)


def train() -> None:
    """PPASR train.py (also under ``python -m paddle.distributed.launch``)."""
    def job() -> None:
        import os

        args = cli.train_parser().parse_args()
        from ppasr.train.trainer import train as run_training
        if os.environ.get("PADDLE_TRAINER_ID", "0") == "0":
            print_arguments(args)
        run_training(train_options(args))
    run_main(job)


def train_options(args: argparse.Namespace) -> TrainOptions:
    """train.py's parsed flags as the trainer's typed options."""
    return TrainOptions(data=cli.options(DataOptions, args), model=cli.options(ModelChoice, args),
                        optim=cli.options(OptimOptions, args), run=cli.options(RunOptions, args))


def eval_job(args: argparse.Namespace) -> EvalJob:
    """eval.py's / tools/tune.py's parsed flags as the checkpoint and test set to evaluate."""
    from ppasr.jobs import EvalJob
    return EvalJob(data=cli.options(DataOptions, args), model=cli.options(ModelChoice, args),
                   resume_model=args.resume_model, result_path=getattr(args, "result_path", None))


def evaluate() -> None:
    """PPASR eval.py: the CER of a trained model."""
    def job() -> None:
        args = cli.eval_parser().parse_args()
        from ppasr.decode.options import DecodeOptions
        from ppasr.jobs import run_eval
        print_arguments(args)
        run_eval(eval_job(args), cli.options(DecodeOptions, args))
    run_main(job)


def export_model() -> None:
    """PPASR export_model.py: an inference model (and its ONNX twin)."""
    def job() -> None:
        args = cli.export_parser().parse_args()
        from ppasr.serve.export import ExportOptions, export_model as export
        print_arguments(args)
        options = cli.options(ExportOptions, args, model=cli.options(ModelChoice, args))
        print(f"预测模型已保存：{export(options)}")
    run_main(job)


def infer_path() -> None:
    """PPASR infer_path.py: transcribe one audio file."""
    def job() -> None:
        args = cli.infer_parser().parse_args()
        from ppasr.serve.infer import InferOptions, ModelSource, infer_path as transcribe
        print_arguments(args)
        from ppasr.decode.options import DecodeOptions
        transcribe(cli.options(ModelSource, args), cli.options(InferOptions, args), cli.options(DecodeOptions, args))
    run_main(job)


def infer_server() -> None:
    """PPASR infer_server.py: the page, HTTP recognition and the streaming WebSocket."""
    def job() -> None:
        args = cli.server_parser().parse_args()
        from ppasr.decode.options import DecodeOptions
        from ppasr.serve.infer import ModelSource
        from ppasr.serve.server import ServeOptions, serve
        print_arguments(args)
        serve(cli.options(ModelSource, args), cli.options(ServeOptions, args), cli.options(DecodeOptions, args))
    run_main(job)


def tune() -> None:
    """PPASR tools/tune.py: grid-search alpha/beta of the LM beam search."""
    def job() -> None:
        args = cli.tune_parser().parse_args()
        from ppasr.decode.options import DecodeOptions
        from ppasr.jobs import TuneGrid, run_tune
        print_arguments(args)
        run_tune(eval_job(args), cli.options(TuneGrid, args), cli.options(DecodeOptions, args))
    run_main(job)


def build_lm() -> None:
    """tools/build_lm.py: an n-gram language model (ARPA) from your transcripts."""
    def job() -> None:
        args = cli.build_lm_parser().parse_args()
        from ppasr.decode.lm_builder import build_lm as build
        model = build(args.manifest, args.output, order=args.order, token=args.token, build_binary=args.build_binary)
        sizes = ", ".join(f"{n}-grams: {count}" for n, count in enumerate(model.counts(), start=1))
        print(f"wrote {args.output} ({model.token} tokens, order {model.order}; {sizes})")
    run_main(job)


def average_model() -> None:
    """tools/average_model.py: one model folder from the mean of a run's last checkpoints."""
    def job() -> None:
        import os

        args = cli.average_model_parser().parse_args()
        from ppasr.model.average import average_checkpoints, newest_epochs
        print_arguments(args)
        checkpoints = args.checkpoints or newest_epochs(args.model_dir, args.num)
        output = args.output or os.path.join(os.path.dirname(os.path.normpath(checkpoints[-1])),
                                             f"avg_{len(checkpoints)}")
        average_checkpoints(checkpoints, output)
        print(f"averaged {len(checkpoints)} checkpoints ({', '.join(checkpoints)}) into {output}; evaluate it "
              f"with `python3 eval.py --resume_model={os.path.join(output, '')}`")
    run_main(job)


def whisper_cer() -> None:
    """tools/whisper_cer.py: Whisper-base's greedy CER on a manifest (where it is installed)."""
    def job() -> None:
        args = cli.whisper_cer_parser().parse_args()
        from ppasr.demo.whisper import whisper_cer as measure
        cer, errors, chars, count, seconds = measure(args.manifest, args.limit, args.num_threads)
        print(f"Whisper-base greedy CER on {args.manifest}: {cer:.5f} ({errors} errors / {chars} characters, "
              f"{count} utterances, {seconds:.0f} s)")
    run_main(job)


def generate_audio() -> None:
    """tools/generate_audio.py: a synthetic eSpeak NG corpus with its annotation file."""
    def job() -> None:
        args = cli.generate_audio_parser().parse_args()
        from ppasr.demo.espeak import EspeakError
        from ppasr.demo.synth import generate_corpus, generate_noise
        from ppasr.model.checkpoint import check_writable
        check_writable(args.output_dir, "--output_dir")
        try:
            annotation = generate_corpus(args.num_samples, seed=args.seed, language=args.language,
                                         grammar=args.grammar, name=args.name, output_dir=args.output_dir,
                                         num_workers=args.num_workers, backend=args.backend, split=args.split,
                                         engine=args.engine)
            noise = generate_noise(args.noise_clips, seed=args.seed, language=args.language, grammar=args.grammar,
                                   name=args.name, output_dir=args.output_dir,
                                   backend=args.backend) if args.noise_clips else None
        except EspeakError as exc:
            raise UserError(str(exc)) from None
        print(f"wrote {args.num_samples} {args.split} utterances; annotation: {annotation}")
        if noise:
            print(f"wrote {args.noise_clips} noise clips to {noise}")
    run_main(job)


def download_corpus(name: str, root: str) -> None:
    """download_data/<name>.py: fetch a public corpus and write its annotations; ``root`` is the folder
    create_data.py runs in (annotations name audio from there)."""
    from ppasr.data.corpora import CORPORA, prepare_corpus, prepare_noise

    corpus = CORPORA[name]
    args = (cli.noise_download_parser(corpus) if name == "noise" else cli.download_parser(corpus)).parse_args()
    print_arguments(args)
    if name == "noise":
        run_main(lambda: prepare_noise(args.target_dir, args.noise_path, args.url, args.md5, args.archive))
    else:
        run_main(lambda: prepare_corpus(name, args.target_dir, args.annotation_text, args.url, args.md5,
                                        args.archive, root))
