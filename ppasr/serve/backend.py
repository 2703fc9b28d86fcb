"""Inference backends behind ``Predictor``: onnxruntime (default on CPU) and paddle (GPU, or no .onnx).

Both run the exported model: (audio features, lengths[, initial GRU state]) → (probabilities,
output lengths, final GRU state), as numpy arrays. onnxruntime runs the same graph about 7x faster
than ``paddle.jit.load`` on CPU (bench/bench_infer.py); its sessions are thread-safe, so a server
shares one backend across streams and keeps only per-stream state.
"""
from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from ppasr.errors import UserError
from ppasr.logger import logger
from ppasr.utils import cpu_threads_per_process

# paddle and onnxruntime are imported where they are used, so that the flags (ppasr.cli) can name the
# backends without loading either
BACKENDS = ("onnxruntime", "paddle")  # OnnxBackend.name, PaddleBackend.name
ONNX_FILE = "inference.onnx"
ONNX_OPSET = 13
# export checks the converted graph against paddle on a random input; more than this is a failed conversion
MAX_CONVERSION_DIFF = 1e-4


def paddle_model_files(model_dir: str, prefix: str) -> tuple[str, str]:
    """(program file, params file) of a ``paddle.jit.save`` output: .json on paddle 3, .pdmodel on 2.6."""
    base = os.path.join(model_dir, prefix)
    program = base + ".json" if os.path.exists(base + ".json") else base + ".pdmodel"
    return program, base + ".pdiparams"


def cuda_available() -> bool:
    """Paddle was built with CUDA and sees a device."""
    import paddle

    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def default_backend(use_gpu: bool) -> str:
    """paddle when a GPU is asked for and present, else onnxruntime."""
    return "paddle" if use_gpu and cuda_available() else "onnxruntime"


def resolve_threads(num_threads: int) -> int:
    """``--num_threads`` 0 means this process's share of the cores (``OMP_NUM_THREADS`` if set)."""
    return num_threads if num_threads > 0 else cpu_threads_per_process()


class PaddleBackend:
    """``paddle.jit.load`` of the exported program; a lock makes one instance safe to share across threads."""

    name = "paddle"

    def __init__(self, model_dir: str, prefix: str, use_gpu: bool = False, num_threads: int = 0):
        import paddle

        paddle.set_device("gpu" if use_gpu and cuda_available() else "cpu")
        core = getattr(paddle, "base", None) or paddle.fluid
        core.core.set_num_threads(resolve_threads(num_threads))
        self._model = paddle.jit.load(os.path.join(model_dir, prefix))
        self._model.eval()
        self._lock = threading.Lock()

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        import paddle

        with self._lock, paddle.no_grad():
            outputs = self._model(*[paddle.to_tensor(x) for x in inputs])
        return tuple(o.numpy() for o in outputs)


class OnnxBackend:
    """An onnxruntime session over ``inference.onnx``; ``run`` is thread-safe, so no lock."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str, use_gpu: bool = False, num_threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = resolve_threads(num_threads)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if use_gpu and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._session = onnxruntime.InferenceSession(onnx_path, options, providers=providers)
        self._input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self._session.run(None, dict(zip(self._input_names, inputs))))


def load_backend(model_dir: str, prefix: str, backend: str | None = None, use_gpu: bool = False,
                 num_threads: int = 0) -> PaddleBackend | OnnxBackend:
    """The requested backend (default: ``default_backend``); onnxruntime without a usable
    ``inference.onnx`` falls back to paddle with one line saying why."""
    backend = backend or default_backend(use_gpu)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        onnx_path = os.path.join(model_dir, ONNX_FILE)
        if importlib.util.find_spec("onnxruntime") is None:  # optional: without it inference runs on paddle
            logger.info("onnxruntime is not installed (pip install onnxruntime); using the paddle backend")
        elif os.path.exists(onnx_path):
            return OnnxBackend(onnx_path, use_gpu, num_threads)
        else:
            logger.info(f"{onnx_path} not found (export the model again to create it); using the paddle backend")
    return PaddleBackend(model_dir, prefix, use_gpu, num_threads)


def convert_to_onnx(model_dir: str, prefix: str, sample_inputs: list[np.ndarray]) -> str | None:
    """Convert the saved paddle program to ``inference.onnx`` beside it and check it on ``sample_inputs``.

    Returns the path, or ``None`` after one line saying why there is no .onnx (inference then uses
    paddle): a missing paddle2onnx, an unsupported operator, or outputs that differ from paddle's.
    """
    onnx_path = os.path.join(model_dir, ONNX_FILE)
    if os.path.exists(onnx_path):
        os.remove(onnx_path)  # never leave a stale graph beside a new paddle model
    try:
        import paddle2onnx  # imported here: only export needs it, and it loads much of paddle's static graph code
    except ImportError as e:  # not installed, or a paddle2onnx built for another paddle (2.x needs paddle 3)
        logger.info(f"paddle2onnx is unavailable ({e}): no {ONNX_FILE} written, infer_path.py will use paddle "
                    f"(pip install paddle2onnx onnxruntime, then export again)")
        return None
    program, params = paddle_model_files(model_dir, prefix)
    try:
        # save_file=None returns the bytes and skips paddle2onnx's polygraphy pass, which pip-installs packages
        graph = paddle2onnx.export(program, params, None, opset_version=ONNX_OPSET, enable_onnx_checker=True)
    except Exception as e:  # paddle2onnx raises whatever its converter hit; any of it means "no .onnx"
        logger.info(f"could not convert {program} to ONNX ({type(e).__name__}: {e}); no {ONNX_FILE} written, "
                    f"infer_path.py will use paddle")
        return None
    partial = onnx_path + ".partial"
    with open(partial, "wb") as f:
        f.write(graph)
    diff = max_output_diff(OnnxBackend(partial, num_threads=1), PaddleBackend(model_dir, prefix, num_threads=1),
                           sample_inputs)
    if not diff <= MAX_CONVERSION_DIFF:
        os.remove(partial)
        logger.info(f"the ONNX conversion of {program} differs from paddle by {diff:.2g}; no {ONNX_FILE} written, "
                    f"infer_path.py will use paddle")
        return None
    os.replace(partial, onnx_path)
    logger.info(f"ONNX model saved: {onnx_path} (max difference from paddle {diff:.1g})")
    return onnx_path


def max_output_diff(a, b, inputs: list[np.ndarray]) -> float:
    """Largest absolute difference between two backends' float outputs (inf if shapes differ)."""
    worst = 0.0
    for x, y in zip(a(*inputs), b(*inputs)):
        if x.shape != y.shape:
            return float("inf")
        if np.issubdtype(x.dtype, np.floating):
            worst = max(worst, float(np.abs(x - y).max(initial=0.0)))
        elif not np.array_equal(x, y):
            return float("inf")
    return worst
