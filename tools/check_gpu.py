"""Does this machine train and infer? The first command to run on a new GPU machine.

Reports paddle's CUDA/cuDNN build and the GPUs, synthesises a small Mandarin corpus, trains ``--steps``
steps of the PPASR-size model in fp32 and with AMP (steps/s, audio s/s, loss finite and falling), trains
through ``paddle.distributed.launch`` on every visible GPU (replicas must stay identical), exports the
model and runs ``infer_path.py`` on the paddle backend. One table; exit status 1 when any check fails.
Without CUDA the CPU parts run (fp32 training, export, inference) and the GPU parts are reported skipped.

    python tools/check_gpu.py [--steps 30] [--quick] [--work_dir DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppasr.data.manifest import read_manifest  # noqa: E402

PPASR_MODEL = {"batch": 32, "flags": []}
QUICK_MODEL = {"batch": 4, "flags": ["--rnn_size=32", "--num_rnn_layers=1", "--cnn_size=8"]}
TEST_UTTERANCES = 4
_TRAIN_LINE = re.compile(r"^\[([\d\- :.]+)\] Train epoch: .*loss: ([^,]+),")
_TEST_LOSS = re.compile(r"Test epoch: \d+, .*loss: ([^,]+),")


def environment() -> tuple[str, int]:
    """paddle's build and the visible GPUs (the detail line), and the GPU count."""
    import paddle
    if not paddle.is_compiled_with_cuda():
        return f"paddle {paddle.__version__}, CPU build (no CUDA)", 0
    count = paddle.device.cuda.device_count()
    names = ", ".join(paddle.device.cuda.get_device_name(i) for i in range(count))
    return (f"paddle {paddle.__version__}, CUDA {paddle.version.cuda()}, cuDNN {paddle.version.cudnn()}, "
            f"{count} GPU(s): {names or 'none visible'}"), count


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """A repo script as a user runs it; the output is kept for the failure message."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env)


def failure(proc: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed (its ``error:`` line or the traceback's end)."""
    lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"


def make_corpus(work: Path, utterances: int) -> float:
    """Synthesised corpus + create_data.py in ``work``; the training audio's seconds."""
    from ppasr.demo.synth import generate_corpus
    cwd = os.getcwd()
    os.chdir(work)
    try:
        annotation = Path(generate_corpus(utterances + TEST_UTTERANCES, seed=1, name="check", progress=False))
    finally:
        os.chdir(cwd)
    lines = (work / annotation).read_text(encoding="utf-8").splitlines(keepends=True)
    (work / annotation).write_text("".join(lines[:utterances]), encoding="utf-8")
    (work / annotation.parent / "test.txt").write_text("".join(lines[utterances:]), encoding="utf-8")
    proc = run([sys.executable, str(REPO / "create_data.py"), "--count_threshold=1"], work)
    if proc.returncode:
        raise RuntimeError(f"create_data.py {failure(proc)}")
    return sum(float(x["duration"]) for x in read_manifest(str(work / "dataset/manifest.train")))


def train(work: Path, name: str, model: dict, audio: float, steps: int, amp: bool = False,
          gpus: int = 0) -> str:
    """Train ``steps`` steps (2 epochs) into ``models_<name>/``; the detail line, or RuntimeError."""
    flags = [*model["flags"], f"--batch_size={model['batch']}", "--num_epoch=2", "--log_interval=1",
             "--num_workers=2", "--augment_conf_path=None", f"--save_model_path=models_{name}/",
             f"--log_dir=log_{name}/", f"--use_amp={amp}"]
    if gpus > 1:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--gpus", ",".join(map(str, range(gpus))),
               "--log_dir", f"launch_{name}", str(REPO / "train.py"), *flags]
    else:
        cmd = [sys.executable, str(REPO / "train.py"), *flags]
    proc = run(cmd, work)
    logs = [proc.stdout + proc.stderr]
    if gpus > 1:
        logs = [(work / f"launch_{name}" / f"workerlog.{rank}").read_text(encoding="utf-8") for rank in range(gpus)]
    if proc.returncode:
        raise RuntimeError(f"train.py {failure(proc)}")
    points = [(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f"), float(m.group(2)))
              for m in map(_TRAIN_LINE.match, logs[0].splitlines()) if m]
    losses = [loss for _, loss in points]
    if len(points) < 4:
        raise RuntimeError(f"only {len(points)} training steps logged")
    if not all(map(lambda x: x == x and abs(x) != float("inf"), losses)):
        raise RuntimeError(f"loss not finite: {losses}")
    tests = [float(x) for x in _TEST_LOSS.findall(logs[0])]
    if len(tests) != 2 or not tests[1] < tests[0]:
        raise RuntimeError(f"test loss not falling over the 2 epochs: {tests}")
    seconds = (points[-1][0] - points[0][0]).total_seconds() or 1e-9
    rate = (len(points) - 1) / seconds
    per_step = 2 * audio / len(points)  # every process's share of one step, summed
    detail = f"{rate:.2f} steps/s, {rate * per_step:.0f} audio s/s, test loss {tests[0]:.1f} → {tests[1]:.1f}"
    if gpus > 1:
        sums = {re.search(r"final parameter checksum (\w+)", log).group(1) for log in logs}
        if len(sums) != 1:
            raise RuntimeError(f"replicas differ: checksums {sorted(sums)}")
        detail += f", {gpus} replicas identical"
    return detail


def export_and_infer(work: Path, use_gpu: bool) -> str:
    """Export ``models_fp32``'s last model and transcribe one test utterance on the paddle backend."""
    proc = run([sys.executable, str(REPO / "export_model.py"), "--save_model=models_fp32/",
                "--resume_model=models_fp32/deepspeech2/last_model"], work)
    if proc.returncode:
        raise RuntimeError(f"export_model.py {failure(proc)}")
    wav = read_manifest(str(work / "dataset/manifest.test"))[0]["audio_filepath"]
    proc = run([sys.executable, str(REPO / "infer_path.py"), f"--wav_path={wav}", f"--use_gpu={use_gpu}",
                "--backend=paddle", "--decoder=ctc_greedy", "--model_dir=models_fp32/deepspeech2/infer/"], work)
    if proc.returncode:
        raise RuntimeError(f"infer_path.py {failure(proc)}")
    return f"infer_path.py --use_gpu={use_gpu} --backend=paddle: ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--quick", action="store_true", help="a tiny model and batch 4 (CI on a CPU)")
    parser.add_argument("--work_dir", help="keep the corpus and models here (default: a temporary folder)")
    args = parser.parse_args()
    model = QUICK_MODEL if args.quick else PPASR_MODEL
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="check_gpu_"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []

    def check(name: str, action) -> bool:
        tic = time.time()
        try:
            detail = action()
        except Exception as e:  # a check's failure is a table row, not a traceback
            rows.append((name, "FAIL", f"{e} ({time.time() - tic:.0f} s)"))
            return False
        rows.append((name, "ok", f"{detail} ({time.time() - tic:.0f} s)"))
        return True

    build, gpus = environment()
    rows.append(("paddle build", "ok", build))
    audio = {}
    utterances = args.steps * model["batch"] // 2
    ready = check("synthesised corpus", lambda: f"{audio.setdefault('s', make_corpus(work, utterances)):.0f} s "
                  f"of training audio, {utterances} utterances")
    if ready:
        device = "GPU" if gpus else "CPU"
        trained = check(f"train fp32 ({device})", lambda: train(work, "fp32", model, audio["s"], args.steps))
        if gpus:
            check("train AMP (GPU)", lambda: train(work, "amp", model, audio["s"], args.steps, amp=True))
            if gpus > 1:
                check(f"launch on {gpus} GPUs", lambda: train(work, "launch", model, audio["s"], args.steps,
                                                              gpus=gpus))
        if trained:
            check("export + infer", lambda: export_and_infer(work, use_gpu=bool(gpus)))
    width = max(len(r[0]) for r in rows)
    print(f"| {'check':<{width}} | result | detail |")
    print(f"|{'-' * (width + 2)}|--------|--------|")
    for name, result, detail in rows:
        print(f"| {name:<{width}} | {result:<6} | {detail} |")
    if not gpus:
        print("GPU parts skipped: paddle has no CUDA or sees no GPU (AMP training, multi-GPU launch, GPU inference).")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(result == "FAIL" for _, result, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
