"""Training in named phases that read top to bottom (WeNet's init_* steps, then an epoch loop):

    init_distributed → build_data → build_run (model, optimizer) → restore → open_logs →
    per epoch: train_one_epoch (train_step, save_interval checkpoints) → validate → report_test → save

SIGINT/SIGTERM (``preemption.py``) end the current step, save a resumable checkpoint and stop the run.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import numpy as np
import paddle
import paddle.distributed as dist

from ppasr.data.augment import build_augmentation_pipeline
from ppasr.data.dataset import ManifestDataset, SortaGradBatchSampler, build_loader, is_placeholder
from ppasr.data.features import FeatureConfig, FeatureNormalizer
from ppasr.data.options import DataOptions
from ppasr.decode.greedy import greedy_decode
from ppasr.errors import Stopped, UserError
from ppasr.logger import PLAIN, setup_logging
from ppasr.model.checkpoint import (BEST_MODEL, LAST_MODEL, RunLock, check_model_dir, check_writable,
                                    checkpoint_name, load_optimizer, load_pretrained, load_weights, new_run_id,
                                    prune_checkpoints, publish, read_state, remove_stale_temporaries,
                                    save_checkpoint, load_scaler_state, scaler_state)
from ppasr.model.config import ModelConfig, resolve_model_config
from ppasr.model.registry import model_spec
from ppasr.train.evaluation import EvalResult, ctc_loss_per_utterance, evaluate
from ppasr.train.options import TrainOptions
from ppasr.train.preemption import Interrupted, StopRequest
from ppasr.train.schedule import WarmupEpochDecay
from ppasr.train.state import TrainState
from ppasr.train.vdl import new_run_dir, open_writer
from ppasr.utils import loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads

logger = logging.getLogger("ppasr")

L2_DECAY = 1e-6  # Adam weight decay (PPASR's)
CLIP_GLOBAL_NORM = 400.0  # gradient clipping by global norm (PPASR's)
AMP_INIT_LOSS_SCALING = 1024.0  # first loss scale of mixed-precision training (GPU only)
ETA_WINDOW = 100  # recent steps averaged for the ETA
TEST_LOG_INTERVAL = 100  # a Test batch line every this many test batches (PPASR's)


@dataclass
class Data:
    """What build_data prepares: the vocabulary, features, both sets with their samplers and loaders."""

    vocabulary: list[str]
    feature_config: FeatureConfig
    train_set: ManifestDataset
    test_set: ManifestDataset
    sampler: SortaGradBatchSampler
    train_loader: paddle.io.DataLoader
    test_loader: paddle.io.DataLoader
    workers: int


@dataclass
class Run:
    """What the phases of one training run share."""

    options: TrainOptions
    world_size: int
    rank: int
    data: Data
    config: ModelConfig
    model: paddle.nn.Layer
    train_model: paddle.nn.Layer  # the model, wrapped in DataParallel when there are several processes
    optimizer: paddle.optimizer.Optimizer
    scheduler: WarmupEpochDecay
    scaler: paddle.amp.GradScaler | None  # mixed precision (GPU) only
    state: TrainState  # what each checkpoint's state.json records
    save_root: str
    stop: StopRequest
    writer: Any = None  # VisualDL, rank 0 only
    ctc: paddle.nn.CTCLoss = field(default_factory=lambda: paddle.nn.CTCLoss(blank=0, reduction="none"))
    bad_steps: int = 0  # skipped batches in a row
    skipped_steps: int = 0
    step_times: list[float] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(options: TrainOptions) -> None:
    """Train DeepSpeech2 with CTC as ``python3 train.py`` does."""
    setup_logging()
    stop = StopRequest().install()
    try:
        world_size, rank, device, threads = init_distributed()
        data = build_data(options.data, options.optim.seed, world_size, rank,
                          model_spec(options.model.use_model).output_length)
        run = build_run(options, data, world_size, rank, device, stop)
        restore(run)
        lock = open_logs(run, device, threads)
    except Interrupted:
        raise stop.stopped("before the first training step; nothing to save") from None
    try:
        with stop.deferred():
            for epoch in range(first_epoch(run.state), options.optim.num_epoch + 1):
                epoch_start = time.time()
                batches = train_one_epoch(run, epoch)
                try:
                    with stop.abandonable():
                        result = validate(run)
                except Interrupted:  # not worth waiting for: the epoch's training is saved instead
                    raise stop_run(run, epoch, batches) from None
                run.scheduler.step()
                report_test(run, epoch, result, time.time() - epoch_start)
                with stop.saving():
                    save(run, epoch, 0, result)
                if stop.requested:
                    raise stop_run(run, epoch, 0)
    finally:
        if run.writer is not None:
            run.writer.close()
        if lock is not None:
            lock.release()
    finish(run)


# ---- setup ---------------------------------------------------------------------------------------

def init_distributed() -> tuple[int, int, str, int]:
    """(world size, rank, device, CPU threads) of this process."""
    world_size, rank = dist.get_world_size(), dist.get_rank()
    if world_size > 1:
        dist.init_parallel_env()
    return world_size, rank, select_device(), set_paddle_threads(world_size)


def build_data(options: DataOptions, seed: int, world_size: int, rank: int,
               output_length: Callable[[int], int]) -> Data:
    """Vocabulary, features, training and test sets, their samplers (sharded over ranks) and loaders."""
    for path in (options.train_manifest, options.test_manifest, options.dataset_vocab, options.mean_std_path):
        require_file(path, "python3 create_data.py")
    vocabulary = read_vocabulary(options.dataset_vocab)
    normalizer = FeatureNormalizer(options.mean_std_path)
    normalizer.check_method(options.feature_method, options.mean_std_path)
    augmentation = build_augmentation_pipeline(options.augment_conf_path, seed=seed)
    train_set = ManifestDataset(options.train_manifest, vocabulary, normalizer, augmentation,
                                options.min_duration, options.max_duration, train=True,
                                output_length=output_length)
    test_set = ManifestDataset(options.test_manifest, vocabulary, normalizer, None, train=False)
    for reason, count in train_set.dropped.items():
        logger.info(f"train set: dropped {count} utterances: {reason}", extra=PLAIN)
    if len(train_set) == 0:
        raise UserError(f"no usable training utterances in {options.train_manifest} (reasons above)")
    sampler = SortaGradBatchSampler(train_set, options.batch_size, shuffle=True, seed=seed,
                                    num_replicas=world_size, rank=rank, max_batch_duration=options.max_batch_duration)
    test_sampler = SortaGradBatchSampler(test_set, options.batch_size, shuffle=False, num_replicas=world_size,
                                         rank=rank, even_shards=False)
    workers = loader_workers(options.num_workers, world_size)
    return Data(vocabulary, normalizer.feature_config, train_set, test_set, sampler,
                build_loader(train_set, sampler, workers), build_loader(test_set, test_sampler, workers), workers)


def build_run(options: TrainOptions, data: Data, world_size: int, rank: int, device: str,
              stop: StopRequest) -> Run:
    """Model (sized by the flags, or by the checkpoint it continues), Adam with PPASR's settings, state."""
    optim, paths = options.optim, options.run
    source = paths.resume_model or paths.pretrained_model
    if source:
        check_model_dir(source)
    config = resolve_model_config(options.model, data.vocabulary, data.feature_config, source,
                                  strict=bool(paths.resume_model))
    paddle.seed(optim.seed)
    model = config.build()
    scheduler = WarmupEpochDecay(optim.learning_rate, optim.lr_gamma, optim.warmup_steps)
    optimizer = paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(),
                                      weight_decay=paddle.regularizer.L2Decay(L2_DECAY),
                                      grad_clip=paddle.nn.ClipGradByGlobalNorm(CLIP_GLOBAL_NORM))
    use_amp = optim.use_amp and device.startswith("gpu")
    state = TrainState(run_id=new_run_id(), seed=optim.seed, model_config=config.to_dict(),
                       train_options=options.to_dict())
    return Run(options, world_size, rank, data, config, model,
               paddle.DataParallel(model) if world_size > 1 else model, optimizer, scheduler,
               paddle.amp.GradScaler(init_loss_scaling=AMP_INIT_LOSS_SCALING) if use_amp else None,
               state, os.path.join(paths.save_model_path, options.model.use_model), stop)


def restore(run: Run) -> None:
    """Load ``--pretrained_model`` (matching tensors) and/or ``--resume_model`` (everything, exactly)."""
    paths = run.options.run
    if paths.pretrained_model:
        skipped = load_pretrained(paths.pretrained_model, run.model)
        logger.info("loaded pretrained model %s; skipped tensors: %s", paths.pretrained_model, skipped or "none")
    if paths.resume_model:
        resumed = TrainState.from_dict(read_state(paths.resume_model), paths.resume_model)
        load_weights(paths.resume_model, run.model)
        load_optimizer(paths.resume_model, run.optimizer)
        if run.scaler is not None and resumed.amp_scaler is not None:
            load_scaler_state(run.scaler, resumed.amp_scaler, paths.resume_model)
        run.state.continue_from(resumed)
        logger.info("resumed from %s: epoch %d, batch %d, step %d, learning rate %.8f", paths.resume_model,
                    run.state.epoch, run.state.batch_in_epoch, run.state.step, run.scheduler.get_lr())


def open_logs(run: Run, device: str, threads: int) -> RunLock | None:
    """Rank 0: the folders checked writable, the checkpoint folder locked for this run, VisualDL writer
    (a resumed run continues its folder), one summary line."""
    if not run.is_main:
        return None
    check_writable(run.save_root, "--save_model_path")
    check_writable(run.options.run.log_dir, "--log_dir")
    lock = RunLock(run.save_root, run.state.run_id)
    lock.acquire()
    remove_stale_temporaries(run.save_root)
    run.state.run_log_dir = run.state.run_log_dir or new_run_dir(run.options.run.log_dir)
    run.writer = open_writer(run.state.run_log_dir)
    data = run.data
    logger.info("device: %s, processes: %d, loader workers: %d, threads: %d, train utterances: %d, "
                "test utterances: %d, model: %s, run: %s, VisualDL: %s", device, run.world_size, data.workers,
                threads, len(data.train_set), len(data.test_set), run.config.describe(), run.state.run_id,
                run.state.run_log_dir)
    return lock


def first_epoch(state: TrainState) -> int:
    """The epoch to run first: the next one, or the same one when the checkpoint was mid-epoch."""
    return state.epoch + 1 if state.batch_in_epoch == 0 else state.epoch


# ---- one epoch -----------------------------------------------------------------------------------

def train_one_epoch(run: Run, epoch: int) -> int:
    """All batches of ``epoch`` (the rest of it when resuming mid-epoch), with save_interval checkpoints;
    the number of batches in the epoch. A stop request saves after the step and raises ``Stopped``."""
    optim, log_interval, data = run.options.optim, run.options.run.log_interval, run.data
    skip = run.state.batch_in_epoch if epoch == run.state.epoch else 0
    data.sampler.set_epoch(epoch, skip)
    data.train_set.set_epoch(optim.seed, epoch)
    batches = skip + len(data.sampler)
    run.train_model.train()
    tic = time.time()
    stopping = False
    for batch_id, batch in enumerate(data.train_loader, start=skip):
        window = accumulation_window(batch_id, batches, optim.accum_grad)
        loss, stop = train_step(run, batch, epoch, batch_id, window)
        run.step_times.append(time.time() - tic)
        tic = time.time()
        if run.is_main and loss is not None and (batch_id % log_interval == 0 or batch_id == batches - 1):
            log_train(run, epoch, batch_id, batches, loss)
        stopping = stopping or stop
        if batch_id + 1 < window[1]:
            continue  # checkpoints and stops only between optimiser steps, so a resume is exact
        if stopping:
            raise stop_run(run, epoch, batch_id + 1)
        updates = (batch_id + 1) // optim.accum_grad
        save_interval = run.options.run.save_interval
        if save_interval > 0 and updates % save_interval == 0 and batch_id + 1 < batches:
            with run.stop.saving():
                save(run, epoch, batch_id + 1)
    return batches


def stop_run(run: Run, epoch: int, batch_in_epoch: int) -> Stopped:
    """Save where a stopped run is (rank 0), and the ``Stopped`` that ends it with the signal's code.

    ``batch_in_epoch`` 0 means the end-of-epoch checkpoint is already saved; a save after an epoch's
    last batch (before its validation) is ``epoch_N_batch_<all>``, whose resume validates at once.
    """
    with run.stop.saving():
        if batch_in_epoch:
            save(run, epoch, batch_in_epoch)
    where = f"epoch {epoch}" + (f", batch {batch_in_epoch}" if batch_in_epoch else "")
    last = os.path.join(run.save_root, LAST_MODEL)
    return run.stop.stopped(f"saved {os.path.join(run.save_root, checkpoint_name(epoch, batch_in_epoch))} "
                            f"({where}; also {last}); continue with: python3 train.py --resume_model={last}")


def accumulation_window(batch_id: int, batches: int, accum_grad: int) -> tuple[int, int]:
    """The batches [first, end) whose gradients make the optimiser step that ``batch_id`` belongs to
    (the epoch's last window may be shorter)."""
    first = batch_id - batch_id % accum_grad
    return first, min(first + accum_grad, batches)


def train_step(run: Run, batch, epoch: int, batch_id: int, window: tuple[int, int] | None = None
               ) -> tuple[float | None, bool]:
    """Forward, CTC loss, backward, and at the end of the accumulation ``window`` (default: this batch
    alone) the Adam step; the loss (None when the batch was skipped) and whether the run stops.

    A batch is skipped on every rank when any rank's loss is NaN/inf or none of its audio loaded
    (all ranks must agree, or DataParallel's all-reduce would hang); too many in a row stop the run.
    A skipped batch that ends a window drops the window's gradients: the ranks never synced them.
    A stop request travels in the same all-reduce, so every rank stops after the same step.
    """
    first, end = window or (batch_id, batch_id + 1)
    last = batch_id + 1 == end
    run.scheduler.set_step(run.state.step)
    with gradient_sync(run.train_model, last):
        loss = batch_loss(run.train_model, batch, run.ctc, run.scaler is not None)
        value = float(loss.item()) if loss is not None else float("nan")
        bad, stop = all_reduce_sum([0.0 if np.isfinite(value) else 1.0, float(run.stop.requested)],
                                   run.world_size)
        if bad == 0:
            backward(loss / (end - first) if end - first > 1 else loss, run.scaler)
    if bad == 0:
        if last:
            optimizer_step(run.optimizer, run.scaler)
            run.state.step += 1
        run.bad_steps = 0
        return value, stop > 0
    if last:
        run.optimizer.clear_grad()
    run.skipped_steps += 1
    run.bad_steps += 1
    logger.warning("warning: skipped batch %d of epoch %d: %s (skipped %d so far)", batch_id, epoch,
                   "loss is NaN/inf" if loss is not None else "no utterance could be loaded", run.skipped_steps)
    if run.bad_steps >= run.options.optim.max_bad_steps:
        raise UserError(f"{run.bad_steps} bad batches in a row (NaN/inf loss); lower --learning_rate or "
                        f"check the data")
    return None, stop > 0


def batch_loss(model: paddle.nn.Layer, batch, ctc: paddle.nn.CTCLoss, use_amp: bool = False):
    """Mean CTC loss of a collated batch, or None when none of its utterances could be loaded."""
    features, feature_lens, labels, label_lens, indices = batch
    if is_placeholder(indices.numpy()):
        return None
    with paddle.amp.auto_cast(enable=use_amp):
        logits, out_len, _ = model(features, feature_lens)
    return ctc_loss_per_utterance(ctc, logits.astype("float32"), out_len, labels, label_lens).mean()


def update(loss: paddle.Tensor, optimizer: paddle.optimizer.Optimizer, scaler=None) -> None:
    """Backward pass and optimiser step (through the AMP loss scaler when there is one)."""
    backward(loss, scaler)
    optimizer_step(optimizer, scaler)


def gradient_sync(model: paddle.nn.Layer, sync: bool):
    """Around a batch's forward and backward: a DataParallel ``model`` all-reduces the gradients only
    when ``sync`` (the last batch of an accumulation window); before that they add up locally."""
    return model.no_sync() if not sync and isinstance(model, paddle.DataParallel) else contextlib.nullcontext()


def backward(loss: paddle.Tensor, scaler=None) -> None:
    """Add ``loss``'s gradients to the parameters' (AMP-scaled when there is a scaler)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def optimizer_step(optimizer: paddle.optimizer.Optimizer, scaler=None) -> None:
    """Apply the accumulated gradients (through the AMP loss scaler when there is one), then clear them."""
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.clear_grad()


def log_train(run: Run, epoch: int, batch_id: int, batches: int, loss: float) -> None:
    """PPASR's ``Train epoch`` line and the VisualDL training scalars."""
    num_epoch = run.options.optim.num_epoch
    remaining = (batches - batch_id - 1) + (num_epoch - epoch) * batches
    eta = timedelta(seconds=int(np.mean(run.step_times[-ETA_WINDOW:]) * remaining))
    lr = run.scheduler.get_lr()
    logger.info("Train epoch: [%d/%d], batch: [%d/%d], loss: %.5f, learning rate: %.8f, eta: %s",
                epoch, num_epoch, batch_id, batches, loss, lr, eta)
    run.writer.add_scalar("Train loss", loss, run.state.step)
    run.writer.add_scalar("Learning rate", lr, run.state.step)


# ---- validate and save ---------------------------------------------------------------------------

def validate(run: Run) -> EvalResult:
    """Test loss and CER with greedy decoding, each rank on its shard, summed over ranks."""
    vocabulary = run.data.vocabulary
    if run.is_main:
        logger.info("\n " + "=" * 70, extra=PLAIN)  # PPASR's opening separator: an empty line, then " ===…"
    result = evaluate(run.model, run.data.test_loader, run.data.test_set,
                      lambda probs, lengths: greedy_decode(probs, lengths, vocabulary), run.ctc, progress=False,
                      log_every=TEST_LOG_INTERVAL if run.is_main else 0)
    loss_sum, utterances, errors, chars, cer_sum = all_reduce_sum(
        [result.loss_sum, result.utterances, result.errors, result.chars, result.per_utterance_cer_sum],
        run.world_size)
    return EvalResult(loss_sum, int(utterances), int(errors), int(chars), cer_sum)


def report_test(run: Run, epoch: int, result: EvalResult, seconds: float) -> None:
    """PPASR's ``Test epoch`` line exactly (``cer`` is the corpus CER), then PPASR's own figure, then its
    closing separator ("===… " and an empty line)."""
    if not run.is_main:
        return
    logger.info("Test epoch: %d, time/epoch: %s, loss: %.5f, cer: %.5f", epoch, timedelta(seconds=seconds),
                result.loss, result.cer)
    logger.info("mean per-utterance cer: %.5f", result.mean_utterance_cer)
    logger.info("=" * 70 + " \n", extra=PLAIN)
    run.writer.add_scalar("Test cer", result.cer, epoch)
    run.writer.add_scalar("Test loss", result.loss, epoch)


def save(run: Run, epoch: int, batch_in_epoch: int, result: EvalResult | None = None) -> None:
    """Checkpoint ``epoch_N[_batch_B]`` (rank 0), then ``last_model``, ``best_model`` when its test CER
    is the lowest of the run so far, and retention of this run's own checkpoints."""
    state = run.state
    state.epoch, state.batch_in_epoch, state.learning_rate = epoch, batch_in_epoch, run.scheduler.get_lr()
    if run.scaler is not None:
        state.amp_scaler = scaler_state(run.scaler)
    is_best = result is not None and (state.best_cer is None or result.cer <= state.best_cer)
    if is_best:
        state.best_cer = result.cer
    if not run.is_main:
        return
    tested = {"test_cer": result.cer, "test_loss": result.loss} if result is not None else {}
    path = save_checkpoint(run.save_root, checkpoint_name(epoch, batch_in_epoch), run.model, run.optimizer,
                           dict(state.to_dict(), **tested))
    publish(run.save_root, path, LAST_MODEL)
    if is_best:
        publish(run.save_root, path, BEST_MODEL)
    prune_checkpoints(run.save_root, state.run_id, run.options.run.keep_checkpoints, path)
    logger.info("saved checkpoint %s%s", path, f" (new {BEST_MODEL})" if is_best else "")


def finish(run: Run) -> None:
    """A checksum of the final weights (replicas must agree) and the count of skipped batches."""
    digest = hashlib.sha1(b"".join(p.numpy().tobytes() for p in run.model.parameters())).hexdigest()[:16]
    logger.info("rank %d: final parameter checksum %s", run.rank, digest)
    if run.skipped_steps and run.is_main:
        logger.info("training finished with %d skipped batches", run.skipped_steps)


def all_reduce_sum(values: list[float], world_size: int) -> list[float]:
    """Element-wise sum over ranks (as float64)."""
    if world_size == 1:
        return values
    tensor = paddle.to_tensor(np.array(values, dtype=np.float64))
    dist.all_reduce(tensor)
    return tensor.numpy().tolist()
