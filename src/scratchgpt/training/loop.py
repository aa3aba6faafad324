"""Fine-tuning through accelerate: the book's chapter-6 recipe, on one CPU or many GPUs.

``accelerate launch scripts/finetune.py`` and ``python scripts/finetune.py`` run the same loop
(accelerate's ``nlp_example.py`` shape: one ``prepare``, ``accumulate``, ``gather_for_metrics``).
With pre-trained weights the default is the book's recipe: a new head, the last block and the
final LayerNorm trainable, AdamW lr 5e-5 / weight decay 0.1, 5 epochs of batch 8, losses on 5
batches every 50 steps, seed 123; with random weights, the measured from-scratch recipe
(``arguments.RECIPES``). Every epoch ends with the whole validation split scored.

Where the speed comes from, compared with the book's loop:
- batches are padded to their own longest message (SMS: ~25 tokens) instead of 120, and
  grouped by length so little padding remains;
- the frozen blocks run once per message, not once per step (``prefix_cache.py``);
- evaluation reuses the same cached states.

Layout on disk: ``--output-dir`` is written once, atomically, at the end (a complete model
folder plus metrics, logs and plots); checkpoints and live logs go to ``--run-dir``.

Companions in ``scratchgpt.training``: ``arguments`` (flags), ``state`` (progress and parts),
``data`` (batches), ``optim`` (optimiser, schedule), ``pretrain`` (next-token pretraining),
``prefix_cache``, ``checkpoints``, ``outputs`` (step log, output folder),
``fsdp`` (what changes when FSDP shards the model), ``plots``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from scratchgpt.metrics import report
from scratchgpt.precision import resolve_mixed_precision
from scratchgpt.training.arguments import FinetuneArguments, build_parser, parse_args
from scratchgpt.training.checkpoints import (
    checkpoint_dir,
    load_checkpoint,
    register_checkpoint_hooks,
    resume,
    save_checkpoint,
)
from scratchgpt.training.data import load_data, make_eval_loader, make_train_loader, token_collator
from scratchgpt.training.fsdp import is_fsdp, register_forward_methods, unsupported_under_fsdp
from scratchgpt.training.optim import make_optimizer, make_scheduler
from scratchgpt.training.outputs import init_trackers, log_record, open_step_log, write_outputs
from scratchgpt.training.prefix_cache import (
    CachedCollator,
    CachedSplit,
    ClassifierTrainingModule,
    build_prefix_cache,
    cache_blocker,
    estimate_cache_bytes,
    frozen_prefix_length,
)
from scratchgpt.training.pretrain import pretrain
from scratchgpt.training.run_folder import (
    LOGS,
    SetupError,
    claim_run_folder,
    finish_run_folder,
)
from scratchgpt.training.state import Run, TrainState
from scratchgpt.weights.convert import build_model

__all__ = [
    "FinetuneArguments",
    "build_parser",
    "finetune",
    "main",
    "parse_args",
    "setup",
    "train",
]

TRAINABLE_BLOCKS = {"last_layer": 0, "last_block": 1, "last_two_blocks": 2}
LORA_TARGETS = ["qkv", "out_proj", "fc", "proj"]
SPLITS = ("train", "validation", "test")
EVAL_BATCH_MULTIPLE = 8  # whole-split scoring runs batches of 8 x --batch-size


@contextlib.contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[name]`` (reported per phase)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def progress_bar(
    accelerator: Accelerator, total: int, desc: str, unit: str, unit_scale: bool = False
) -> tqdm:
    """A bar with counts, rate and ETA, shown by the main process only."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
    )


# ----------------------------------------------------------------------------- model


def configure_trainable(model: torch.nn.Module, args: FinetuneArguments) -> torch.nn.Module:
    """Freeze what the recipe freezes; ``lora`` wraps the model with PEFT adapters."""
    if args.trainable == "lora":
        return add_lora(model, args)
    model.requires_grad_(args.trainable == "all")
    n_blocks = TRAINABLE_BLOCKS.get(args.trainable, 0)
    if n_blocks:
        model.gpt.blocks[-n_blocks:].requires_grad_(True)
        model.gpt.final_norm.requires_grad_(True)
    model.classifier.requires_grad_(True)  # the new head always learns
    return model


def add_lora(model: torch.nn.Module, args: FinetuneArguments) -> torch.nn.Module:
    """LoRA on every attention and MLP projection; the new head trains in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def make_training_module(
    model: torch.nn.Module, data, args: FinetuneArguments, accelerator: Accelerator
) -> tuple[ClassifierTrainingModule, dict, str]:
    """Wrap the model; build the frozen-prefix cache when it applies.

    Returns the module, the per-split datasets to batch (cached or tokenized) and a one-line
    note on the cache, which the run prints and records.
    """
    start = frozen_prefix_length(model)
    reason = (
        "--prefix-cache off"
        if args.prefix_cache == "off"
        else cache_blocker(
            model, str(accelerator.distributed_type).split(".")[-1], args.gradient_checkpointing
        )
    )
    lengths = [n for split in SPLITS for n in data.dataset[split]["length"]]
    needed = estimate_cache_bytes(lengths, model.config.emb_dim)
    if not reason and needed > args.prefix_cache_max_gb * 2**30:
        reason = f"it would need {needed / 2**30:.1f} GiB (> --prefix-cache-max-gb)"
    weights = class_weights(args, data)
    if reason:
        return ClassifierTrainingModule(model, 0, weights), dict(data.dataset), f"off: {reason}"
    model.to(accelerator.device)
    datasets = {}
    # Counted in tokens: messages are run shortest first, so a count of messages would
    # promise an ETA that the long ones at the end break.
    desc = f"prefix cache (blocks 0..{start - 1})"
    with progress_bar(accelerator, sum(lengths), desc, "tok", unit_scale=True) as bar:
        for split in SPLITS:
            bar.set_postfix(split=split)
            part = data.dataset[split]
            cache = build_prefix_cache(model, part["input_ids"], start, accelerator, progress=bar)
            datasets[split] = CachedSplit(cache, part["label"])
    note = f"on: blocks 0..{start - 1} run once per message ({needed / 2**20:.0f} MiB)"
    return ClassifierTrainingModule(model, start, weights), datasets, note


def class_weights(args: FinetuneArguments, data) -> torch.Tensor | None:
    """``--class-weights balanced``: n / (classes x count), as scikit-learn's "balanced", so a
    rare class (spam: 13% of SMS) weighs as much in the loss as a common one."""
    if args.class_weights == "none":
        return None
    labels = torch.tensor(data.dataset["train"]["label"])
    counts = torch.bincount(labels, minlength=len(data.label_names)).clamp(min=1).float()
    return len(labels) / (len(counts) * counts)


# ----------------------------------------------------------------------------- setup


def make_accelerator(args: FinetuneArguments) -> Accelerator:
    """One accelerator for every launch mode; batches are split so results ignore #processes.
    ``--mixed-precision auto`` is resolved here (``scratchgpt.precision``), and why is kept in
    ``accelerator.precision_reason`` for the records."""
    project = ProjectConfiguration(
        project_dir=str(args.run_dir), logging_dir=str(args.run_dir / LOGS)
    )
    # Without this, `accelerate launch --multi_gpu` on a machine with no GPU starts N
    # independent single-process runs; on CPU it selects gloo DDP instead.
    cpu = args.cpu or not has_accelerator_device()
    mixed_precision, reason = resolve_mixed_precision(
        args.mixed_precision,
        "cpu" if cpu else training_device_type(),
        launcher=os.environ.get("ACCELERATE_MIXED_PRECISION"),
    )
    accelerator = Accelerator(
        cpu=cpu,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=None if args.no_tensorboard else "tensorboard",
        project_config=project,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        step_scheduler_with_optimizer=True,
    )
    accelerator.precision_reason = reason
    accelerator.print(f"mixed precision: {accelerator.mixed_precision} ({reason})")
    return accelerator


def training_device_type() -> str:
    """The accelerator accelerate will pick when not told to use the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "xpu"


def has_accelerator_device() -> bool:
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or bool(xpu is not None and xpu.is_available())
    )


def setup(args: FinetuneArguments) -> Run:
    """Claim the run folder (``run_folder.py``: writable, locked, cleaned), then build the run;
    the caller releases ``run.lock`` (``finetune`` does)."""
    accelerator = make_accelerator(args)
    if is_fsdp(accelerator) and (problem := unsupported_under_fsdp(args)):
        raise SetupError(problem)
    if args.batch_size % accelerator.num_processes:
        raise SetupError(
            f"--batch-size {args.batch_size} must be divisible by the {accelerator.num_processes} "
            "processes (it is the global batch, split across them)"
        )
    lock = claim_run_folder(args, accelerator)
    try:
        run = build_run(args, accelerator)
    except BaseException:
        lock.release()
        raise
    run.lock = lock
    return run


def build_run(args: FinetuneArguments, accelerator: Accelerator) -> Run:
    """Data, model, cache, loaders, optimizer and schedule, all through one ``prepare``."""
    set_seed(args.seed)
    seconds: dict[str, float] = {}
    with timed(seconds, "data_and_model"), accelerator.main_process_first():
        # Downloads and dataset caches happen once per machine, on the main process first.
        model, data, tokenizer_folder = load_model_and_data(args)
    model = configure_trainable(model, args)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    pretraining = []
    if args.pretrain_epochs and not args.resume_from_checkpoint:  # a checkpoint holds its result
        with timed(seconds, "pretraining"):
            pretraining = pretrain(model, data, args, accelerator)
    with timed(seconds, "prefix_cache"):
        module, datasets, cache_note = make_training_module(model, data, args, accelerator)
    train_loader, eval_loaders, probe_loaders = make_loaders(args, data, datasets, module)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    optimizer = make_optimizer(module, args, accelerator)
    scheduler = make_scheduler(optimizer, args, steps_per_epoch)
    module, optimizer, train_loader, scheduler, *loaders = accelerator.prepare(
        module, optimizer, train_loader, scheduler, *eval_loaders.values(), *probe_loaders.values()
    )
    sharded_blocks = register_forward_methods(module)  # FSDP: blocks also run forward_at
    if is_fsdp(accelerator) and not sharded_blocks:
        raise SetupError(
            "FSDP is on but no ScratchGPTBlock was sharded: check fsdp_auto_wrap_policy and "
            "fsdp_transformer_layer_cls_to_wrap in the accelerate config (configs/fsdp_gpt2.yaml)"
        )
    info = {
        "prefix_cache": cache_note,
        "num_train_examples": len(data.dataset["train"]),
        "parameters": count_parameters(model),
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "mixed_precision": accelerator.mixed_precision,
        "mixed_precision_reason": accelerator.precision_reason,
        "data_summary": data.summary.to_dict() if hasattr(data.summary, "to_dict") else None,
        "pretraining": pretraining,
        "seconds": seconds,
    }
    run = Run(
        args,
        accelerator,
        module,
        optimizer,
        scheduler,
        train_loader,
        dict(zip(SPLITS, loaders[:3], strict=True)),
        dict(zip(probe_loaders, loaders[3:], strict=True)),
        list(data.label_names),
        Path(tokenizer_folder),
        TrainState(),
        info,
        steps_per_epoch,
    )
    accelerator.register_for_checkpointing(run.state)
    register_checkpoint_hooks(run)
    return run


def make_loaders(args: FinetuneArguments, data, datasets: dict, module) -> tuple:
    """Training batches (length-grouped), whole-split evaluation, and the book's probes."""
    pad_id = module.model.config.pad_token_id
    if module.start_block:
        collate = CachedCollator(data.pad_length)
    else:
        collate = token_collator(pad_id, data.pad_length)
    lengths = data.dataset["train"]["length"]
    train_loader = make_train_loader(
        datasets["train"], lengths, args.batch_size, args.seed, collate
    )
    # Scoring has no optimizer step to keep small: bigger batches amortise the per-batch
    # overhead. A multiple of --batch-size stays divisible by the number of processes.
    eval_batch = args.batch_size * EVAL_BATCH_MULTIPLE
    evals = {
        s: make_eval_loader(datasets[s], eval_batch, collate, lengths=data.dataset[s]["length"])
        for s in SPLITS
    }
    # The book's "first 5 batches" as loaders of their own: breaking out of a prepared loader
    # early would leave accelerate's end-of-data tracking (and so accumulation) confused.
    probe = args.eval_iter * args.batch_size
    probes = {
        s: make_eval_loader(datasets[s], args.batch_size, collate, limit=probe)
        for s in ("train", "validation")
    }
    return train_loader, evals, probes


def load_model_and_data(args: FinetuneArguments):
    """The model (new head with the data's labels) and the tokenized splits."""
    data, tokenizer_folder, model_source = load_data(args)
    id2label = dict(enumerate(data.label_names))
    model = build_model(
        model_source,
        init=args.init,
        seed=args.seed,
        num_labels=len(data.label_names),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
        pooling=args.pooling,
        drop_rate=args.drop_rate,
    )
    return model, data, tokenizer_folder


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_loss(run: Run, loader: DataLoader) -> float:
    """Mean batch loss over a (probe) loader: the book's ``calc_loss_loader``."""
    run.module.eval()
    losses = torch.stack([run.module(**batch).loss.float() for batch in loader])
    run.module.train()
    # Every process saw its slice of the same global batches: average across them.
    return run.accelerator.gather(losses).mean().item()


@torch.no_grad()
def predict(run: Run, loader: DataLoader, bar: tqdm | None = None) -> dict:
    """Labels, predictions, class probabilities and mean loss, gathered from every process."""
    run.module.eval()
    preds, refs, probs, loss_sum = [], [], [], 0.0
    for batch in loader:
        out = run.module(**batch)
        if bar is not None:
            bar.update(1)
        logits, labels = run.accelerator.gather_for_metrics((out.logits, batch["labels"]))
        preds.append(logits.argmax(-1).cpu())
        refs.append(labels.cpu())
        probs.append(logits.float().softmax(-1).cpu())
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
        loss_sum += loss.item()
    run.module.train()
    refs_t = torch.cat(refs)
    return {
        "predictions": torch.cat(preds).tolist(),
        "references": refs_t.tolist(),
        "probabilities": torch.cat(probs).tolist(),
        "loss": loss_sum / len(refs_t),
    }


def accuracy(result: dict) -> float:
    pairs = zip(result["predictions"], result["references"], strict=True)
    return sum(p == r for p, r in pairs) / len(result["references"])


def evaluate_splits(run: Run) -> tuple[dict, dict]:
    """Full metrics on every split (after training), and the raw test predictions."""
    metrics, raw = {}, {}
    total = sum(len(loader) for loader in run.eval_loaders.values())
    with progress_bar(run.accelerator, total, "final evaluation", "batch") as bar:
        for split, loader in run.eval_loaders.items():
            bar.set_postfix(split=split)
            raw[split] = predict(run, loader, bar)
    for split in raw:
        metrics[split] = report.compute_classification_metrics(
            raw[split]["predictions"], raw[split]["references"], run.label_names
        )
        metrics[split]["loss"] = raw[split]["loss"]
    return metrics, raw


# ----------------------------------------------------------------------------- training


def train(run: Run) -> None:
    """The book's ``train_classifier_simple``, through accelerate."""
    args, acc, state = run.args, run.accelerator, run.state
    total = run.steps_per_epoch * args.epochs
    bar = tqdm(
        total=min(total, args.max_steps) if args.max_steps else total,
        initial=state.global_step,
        disable=not acc.is_local_main_process,
        desc="fine-tuning",
        unit="step",
    )
    start_time, start_examples = time.perf_counter(), state.examples_seen
    smoothed = None  # exponential moving average of the batch loss, for the bar only
    for epoch in range(state.epoch, args.epochs):
        epoch_start = time.perf_counter()
        run.module.train()
        for batch in epoch_batches(run, epoch):
            loss, correct = train_step(run, batch)
            add_to_epoch_sums(state, loss, correct, len(batch["labels"]))
            state.batches_in_epoch += 1
            state.examples_seen += len(batch["labels"]) * acc.num_processes
            if not acc.sync_gradients:
                continue  # still accumulating: not an optimizer step
            state.global_step += 1
            smoothed = loss if smoothed is None else 0.95 * smoothed + 0.05 * loss
            rate = (state.examples_seen - start_examples) / (time.perf_counter() - start_time)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{smoothed:.3f}", ex_s=f"{rate:.0f}")
            after_step(run, epoch)
            if reached_max_steps(run):
                break
        if not epoch_done(run):
            break  # stopped inside the epoch by --max-steps: no epoch-end evaluation
        end_epoch(run, epoch, time.perf_counter() - epoch_start)
        if reached_max_steps(run):
            break
    bar.close()


def epoch_batches(run: Run, epoch: int):
    """This epoch's batches in their seeded order, minus those a resumed run already used."""
    run.train_loader.set_epoch(epoch)
    if run.state.batches_in_epoch == 0:
        return run.train_loader
    skipped = run.accelerator.skip_first_batches(run.train_loader, run.state.batches_in_epoch)
    skipped.set_epoch(epoch)
    return skipped


def train_step(run: Run, batch: dict) -> tuple[float, int]:
    """One forward/backward (an optimizer step when accumulation is complete); returns the
    batch's mean loss and how many of its examples the model got right before the update."""
    acc = run.accelerator
    with acc.accumulate(run.module):
        out = run.module(**batch)
        acc.backward(out.loss)
        if acc.sync_gradients and run.args.max_grad_norm:
            acc.clip_grad_norm_(run.module.parameters(), run.args.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
    correct = (out.logits.detach().argmax(-1) == batch["labels"]).sum()
    return out.loss.item(), int(correct)


def add_to_epoch_sums(state: TrainState, loss: float, correct: int, count: int) -> None:
    """Running training loss and accuracy of the epoch, over every batch it has seen."""
    loss_sum, right, seen = state.epoch_sums
    state.epoch_sums = [loss_sum + loss * count, right + correct, seen + count]


def epoch_training_means(run: Run) -> tuple[float, float]:
    """The epoch's mean training loss and accuracy over all its batches, every process."""
    sums = torch.tensor(run.state.epoch_sums, dtype=torch.float64, device=run.accelerator.device)
    loss_sum, right, seen = run.accelerator.reduce(sums, reduction="sum").tolist()
    return loss_sum / max(seen, 1), right / max(seen, 1)


def reached_max_steps(run: Run) -> bool:
    return bool(run.args.max_steps) and run.state.global_step >= run.args.max_steps


def after_step(run: Run, epoch: int) -> None:
    """The book's periodic loss check (after steps 1, 51, 101, ...) and step checkpoints."""
    args, state = run.args, run.state
    if (state.global_step - 1) % args.eval_freq == 0:
        train_loss = evaluate_loss(run, run.probe_loaders["train"])
        val_loss = evaluate_loss(run, run.probe_loaders["validation"])
        record = {
            "step": state.global_step,
            "epoch": epoch + 1,
            "epoch_float": state.batches_in_epoch / len(run.train_loader) + epoch,
            "examples_seen": state.examples_seen,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float(run.scheduler.get_last_lr()[0]),
        }
        state.evals.append(record)
        log_record(run, record)
    # The epoch's last step is saved by end_epoch, with the epoch's results in it.
    if args.save_steps and state.global_step % args.save_steps == 0 and not epoch_done(run):
        save_checkpoint(run)


def epoch_done(run: Run) -> bool:
    return run.state.batches_in_epoch >= len(run.train_loader)


def end_epoch(run: Run, epoch: int, seconds: float) -> None:
    """Per-epoch results, summary line, keep-best and checkpoint.

    Validation is the whole split, scored after the epoch (cheap with the prefix cache, and
    the same number the final evaluation reports for these weights). Training loss and
    accuracy are the means over all the epoch's batches as it ran, which costs nothing:
    scoring the whole training split again would take a third of an epoch.
    """
    args, state = run.args, run.state
    train_loss, train_accuracy = epoch_training_means(run)
    val_res = predict(run, run.eval_loaders["validation"])
    record = {
        "step": state.global_step,
        "epoch": epoch + 1,
        "epoch_end": True,
        "examples_seen": state.examples_seen,
        "train_accuracy": train_accuracy,
        "val_accuracy": accuracy(val_res),
        "train_loss": train_loss,
        "val_loss": val_res["loss"],
        "val_examples": len(val_res["references"]),
        "epoch_seconds": seconds,
    }
    state.epochs.append(record)
    log_record(run, record)
    say(
        run,
        f"epoch {epoch + 1}/{args.epochs}  step {state.global_step}  "
        f"train (running) acc {record['train_accuracy']:.2%} loss {record['train_loss']:.3f}  "
        f"validation ({record['val_examples']} messages) acc {record['val_accuracy']:.2%} "
        f"loss {record['val_loss']:.3f}  {seconds:.1f}s",
    )
    state.epoch, state.batches_in_epoch = epoch + 1, 0
    state.epoch_sums = [0.0, 0.0, 0.0]
    if args.keep_best and is_better(record, state.best):
        state.best = {
            "epoch": epoch + 1,
            "step": state.global_step,
            "accuracy": record["val_accuracy"],
            "loss": record["val_loss"],
            "checkpoint": str(checkpoint_dir(run)),
        }
    save_checkpoint(run)


def say(run: Run, text: str) -> None:
    """Print on the main process without breaking the progress bar."""
    if run.accelerator.is_main_process:
        tqdm.write(text)


def is_better(record: dict, best: dict) -> bool:
    if not best:
        return True
    key = (record["val_accuracy"], -record["val_loss"])
    return key > (best["accuracy"], -best["loss"])


def restore_best(run: Run) -> None:
    """Load the best epoch's weights (the checkpoint holds them) but keep the full history."""
    best = run.state.best
    if not run.args.keep_best or not best or best["step"] == run.state.global_step:
        return
    history = run.state.state_dict()
    load_checkpoint(run, best["checkpoint"])
    run.state.load_state_dict(history)
    run.accelerator.print(
        f"keeping epoch {best['epoch']} (best validation accuracy {best['accuracy']:.2%})"
    )


# ----------------------------------------------------------------------------- entry point


def finetune(args: FinetuneArguments) -> dict:
    """Run a fine-tuning job end to end; returns the final metrics per split.

    The output folder is ``args.output_dir``; the same call works in a notebook, under
    ``python`` and under ``accelerate launch``. accelerate's process-wide state is reset
    afterwards, so a second call in the same kernel starts as clean as the first.
    """
    try:
        run = setup(args)
        try:
            return run_job(run)
        finally:
            run.lock.release()  # a failed run keeps its run folder, for --resume-from-checkpoint
    finally:
        reset_accelerate_state()


def run_job(run: Run) -> dict:
    """Resume if asked, train, evaluate every split, write the output folder."""
    args, acc = run.args, run.accelerator
    if args.resume_from_checkpoint:
        resume(run)
    open_step_log(run)
    init_trackers(run)
    acc.print(f"prefix cache {run.info['prefix_cache']}")
    acc.print(
        f"parameters: {run.info['parameters']['trainable']:,} trainable of "
        f"{run.info['parameters']['total']:,}; {acc.num_processes} process(es), "
        f"{len(run.train_loader)} batches per epoch"
    )
    seconds = run.info["seconds"]
    with timed(seconds, "training"):
        run.state.start_clock()  # saved with every checkpoint: adds up across resumes
        train(run)
        run.state.stop_clock()
    with timed(seconds, "final_evaluation"):
        restore_best(run)
        metrics, raw = evaluate_splits(run)
    acc.print(report.format_splits_table(metrics))
    for tracker in acc.trackers:
        tracker.finish()  # flush TensorBoard before its files are copied into the output
    with timed(seconds, "outputs"):
        write_outputs(run, metrics, raw)
        acc.wait_for_everyone()
    acc.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    acc.print(f"wrote {args.output_dir}; {finish_run_folder(args, acc, run.lock)}")
    acc.end_training()  # also ends the process group, so it comes last
    return metrics


def reset_accelerate_state() -> None:
    """Forget accelerate's singletons (device, process group, accumulation state)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def main(argv: Sequence[str] | None = None) -> dict:
    """``scripts/finetune.py`` without the exit status: flags (and ``--config``) -> metrics."""
    return finetune(parse_args(argv))
