"""The training loop: one function, readable top to bottom."""
from __future__ import annotations

import hashlib
import logging
import os
import time
from datetime import datetime, timedelta

import numpy as np
import paddle
import paddle.distributed as dist

from ppasr.augment import build_augmentation_pipeline
from ppasr.checkpoint import (check_compatible, checkpoint_name, load_optimizer, load_pretrained, load_weights,
                              read_state, save_checkpoint)
from ppasr.dataset import ManifestDataset, SortaGradBatchSampler, collate, is_placeholder
from ppasr.decoder import greedy_decode
from ppasr.errors import UserError
from ppasr.evaluation import EvalResult, ctc_loss_per_utterance, evaluate
from ppasr.features import FeatureNormalizer
from ppasr.model import DeepSpeech2Model
from ppasr.vdl import new_run_dir, open_writer
from ppasr.utils import (loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads,
                         single_threaded_worker, vocabulary_hash)

logger = logging.getLogger("ppasr")


def now() -> str:
    return str(datetime.now())


def all_reduce_sum(values: list[float], world_size: int) -> list[float]:
    if world_size == 1:
        return values
    tensor = paddle.to_tensor(np.array(values, dtype=np.float64))
    dist.all_reduce(tensor)
    return tensor.numpy().tolist()


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
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.clear_grad()


def train(args) -> None:
    """Train DeepSpeech2 with CTC as ``python3 train.py`` does."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    world_size, rank = dist.get_world_size(), dist.get_rank()
    if world_size > 1:
        dist.init_parallel_env()
    device = select_device()
    threads = set_paddle_threads(world_size)
    for path in (args.train_manifest, args.test_manifest, args.dataset_vocab, args.mean_std_path):
        require_file(path, "python3 create_data.py")

    # ---- data -----------------------------------------------------------------------------------
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    normalizer.check_method(args.feature_method, args.mean_std_path)
    feature_config = normalizer.feature_config
    augmentation = build_augmentation_pipeline(args.augment_conf_path, seed=args.seed)
    train_set = ManifestDataset(args.train_manifest, vocabulary, normalizer, augmentation,
                                args.min_duration, args.max_duration, train=True)
    test_set = ManifestDataset(args.test_manifest, vocabulary, normalizer, None, train=False)
    for reason, count in train_set.dropped.items():
        print(f"train set: dropped {count} utterances: {reason}")
    if len(train_set) == 0:
        raise UserError(f"no usable training utterances in {args.train_manifest} (reasons above)")
    sampler = SortaGradBatchSampler(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                    num_replicas=world_size, rank=rank)
    test_sampler = SortaGradBatchSampler(test_set, args.batch_size, shuffle=False, num_replicas=world_size,
                                         rank=rank, even_shards=False)
    workers = loader_workers(args.num_workers, world_size)
    train_loader = paddle.io.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                        num_workers=workers, worker_init_fn=train_set.worker_init)
    test_loader = paddle.io.DataLoader(test_set, batch_sampler=test_sampler, collate_fn=collate,
                                       num_workers=workers, worker_init_fn=single_threaded_worker)

    # ---- model, optimiser, state ----------------------------------------------------------------
    paddle.seed(args.seed)
    model = DeepSpeech2Model(feature_config.dim, len(vocabulary), args.cnn_size, args.num_rnn_layers, args.rnn_size)
    scheduler = paddle.optimizer.lr.ExponentialDecay(learning_rate=args.learning_rate, gamma=args.lr_gamma)
    optimizer = paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(),
                                      weight_decay=paddle.regularizer.L2Decay(1e-6),
                                      grad_clip=paddle.nn.ClipGradByGlobalNorm(400))
    vocab_hash = vocabulary_hash(vocabulary)
    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "seed": args.seed, "vocab_hash": vocab_hash,
             "feature_config": feature_config.to_json(),
             "run_log_dir": None}
    if args.pretrained_model:
        skipped = load_pretrained(args.pretrained_model, model)
        print(f"[{now()}] loaded pretrained model {args.pretrained_model}; skipped tensors: {skipped or 'none'}")
    if args.resume_model:
        resumed = read_state(args.resume_model)
        check_compatible(resumed, vocab_hash, feature_config.to_json(), args.resume_model)
        load_weights(args.resume_model, model)
        load_optimizer(args.resume_model, optimizer)
        state.update({k: resumed[k] for k in ("epoch", "batch_in_epoch", "step", "run_log_dir") if k in resumed})
        print(f"[{now()}] resumed from {args.resume_model}: epoch {state['epoch']}, "
              f"batch {state['batch_in_epoch']}, step {state['step']}, learning rate {scheduler.get_lr():.8f}")
    save_root = os.path.join(args.save_model_path, args.use_model)
    writer = None
    if rank == 0:
        state["run_log_dir"] = state["run_log_dir"] or new_run_dir(args.log_dir)
        writer = open_writer(state["run_log_dir"])
        print(f"[{now()}] device: {device}, processes: {world_size}, loader workers: {workers}, "
              f"threads: {threads}, train utterances: {len(train_set)}, "
              f"test utterances: {len(test_set)}, vocabulary: {len(vocabulary)}, "
              f"features: {feature_config.method} ({feature_config.dim}), VisualDL: {state['run_log_dir']}")
    train_model = paddle.DataParallel(model) if world_size > 1 else model
    use_amp = args.use_amp and device.startswith("gpu")
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024) if use_amp else None
    ctc = paddle.nn.CTCLoss(blank=0, reduction="none")

    def save(epoch: int, batch_in_epoch: int) -> None:
        if rank == 0:
            state.update(epoch=epoch, batch_in_epoch=batch_in_epoch, learning_rate=scheduler.get_lr())
            path = save_checkpoint(save_root, checkpoint_name(epoch, batch_in_epoch), model, optimizer,
                                   state, args.keep_checkpoints)
            print(f"[{now()}] saved checkpoint {path}")

    # ---- loop -----------------------------------------------------------------------------------
    start_epoch = state["epoch"] + 1 if state["batch_in_epoch"] == 0 else state["epoch"]
    bad_steps = skipped_steps = 0
    step_times: list[float] = []
    try:
        for epoch in range(start_epoch, args.num_epoch + 1):
            skip = state["batch_in_epoch"] if epoch == state["epoch"] else 0
            sampler.set_epoch(epoch, skip)
            train_set.set_epoch(args.seed, epoch)
            batches_in_epoch = skip + len(sampler)
            epoch_start = time.time()
            train_model.train()
            tic = time.time()
            for batch_id, batch in enumerate(train_loader, start=skip):
                loss = batch_loss(train_model, batch, ctc, use_amp)
                loaded = loss is not None
                loss_value = float(loss.item()) if loaded else float("nan")
                # every rank must agree before backward, or DataParallel's all-reduce would hang
                ok = all_reduce_sum([0.0 if np.isfinite(loss_value) else 1.0], world_size)[0] == 0
                if ok:
                    update(loss, optimizer, scaler)
                    state["step"] += 1
                    bad_steps = 0
                else:
                    optimizer.clear_grad()
                    skipped_steps += 1
                    bad_steps += 1
                    print(f"[{now()}] warning: skipped batch {batch_id} of epoch {epoch}: "
                          f"{'loss is NaN/inf' if loaded else 'no utterance could be loaded'} "
                          f"(skipped {skipped_steps} so far)")
                    if bad_steps >= args.max_bad_steps:
                        raise UserError(f"{bad_steps} bad batches in a row (NaN/inf loss); lower "
                                        f"--learning_rate or check the data")
                step_times.append(time.time() - tic)
                tic = time.time()
                if rank == 0 and ok and (batch_id % args.log_interval == 0 or batch_id == batches_in_epoch - 1):
                    remaining = (batches_in_epoch - batch_id - 1) + (args.num_epoch - epoch) * batches_in_epoch
                    eta = timedelta(seconds=int(np.mean(step_times[-100:]) * remaining))
                    print(f"[{now()}] Train epoch: [{epoch}/{args.num_epoch}], batch: [{batch_id}/{batches_in_epoch}], "
                          f"loss: {loss_value:.5f}, learning rate: {scheduler.get_lr():>.8f}, eta: {eta}", flush=True)
                    writer.add_scalar("Train loss", loss_value, state["step"])
                    writer.add_scalar("Learning rate", scheduler.get_lr(), state["step"])
                if args.save_interval > 0 and (batch_id + 1) % args.save_interval == 0 and batch_id + 1 < batches_in_epoch:
                    save(epoch, batch_id + 1)
            scheduler.step()

            result = evaluate(model, test_loader, test_set, lambda p, n: greedy_decode(p, n, vocabulary), ctc,
                              progress=rank == 0)
            loss_sum, utterances, errors, chars, cer_sum = all_reduce_sum(
                [result.loss_sum, result.utterances, result.errors, result.chars, result.per_utterance_cer_sum],
                world_size)
            total = EvalResult(loss_sum, int(utterances), int(errors), int(chars), cer_sum)
            state.update(epoch=epoch, batch_in_epoch=0)
            if rank == 0:
                print("=" * 70)
                print(f"[{now()}] Test epoch: {epoch}, time/epoch: {timedelta(seconds=time.time() - epoch_start)}, "
                      f"loss: {total.loss:.5f}, cer: {total.cer:.5f} (mean per-utterance cer: "
                      f"{total.mean_utterance_cer:.5f})")
                print("=" * 70, flush=True)
                writer.add_scalar("Test cer", total.cer, epoch)
                writer.add_scalar("Test loss", total.loss, epoch)
                save(epoch, 0)
    finally:
        if writer is not None:
            writer.close()
    digest = hashlib.sha1(b"".join(p.numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
    print(f"[{now()}] rank {rank}: final parameter checksum {digest}", flush=True)
    if skipped_steps and rank == 0:
        print(f"[{now()}] training finished with {skipped_steps} skipped batches")
