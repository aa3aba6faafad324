"""Command-line flags of ``scripts/finetune.py`` (data flags: ``scratchgpt.data``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from scratchgpt.training.data import add_data_arguments

TRAINABLE = ("last_layer", "last_block", "last_two_blocks", "all", "lora")
SCHEDULES = ("constant", "linear", "cosine")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative ones (unset options, off switches)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """All flags of ``scripts/finetune.py`` (data flags come from ``scratchgpt.data``)."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a from-scratch GPT-2 as a text classifier (book ch. 6 recipe), "
        "through accelerate: `accelerate launch scripts/finetune.py [flags]`.",
        formatter_class=_HelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="gpt2-small",
        help="preset (gpt2-small|medium|large|xl) or a model folder",
    )
    model.add_argument(
        "--init",
        choices=("pretrained", "random"),
        default="pretrained",
        help="pretrained: OpenAI weights (downloaded and converted once); "
        "random: the preset's shape with fresh weights (works offline)",
    )
    model.add_argument(
        "--trainable",
        choices=TRAINABLE,
        default="last_block",
        help="what learns besides the new head: last_layer = head only; "
        "last_block / last_two_blocks = those blocks + final norm; all; lora",
    )
    model.add_argument("--lora-r", type=int, default=8, help="LoRA rank (--trainable lora)")
    model.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA scaling alpha")
    model.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on LoRA inputs")
    model.add_argument(
        "--pooling",
        choices=("last", "mean"),
        default="last",
        help="classify from the last real token or the mean of real tokens",
    )
    model.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="dropout in the model (the book fine-tunes with 0.0); >0 turns "
        "the frozen-prefix cache off",
    )
    model.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute block activations in backward (large presets, full "
        "fine-tuning): less memory, ~30%% more compute",
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=5, help="passes over the training split")
    optim.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="global batch size, split evenly across processes, so results do "
        "not depend on how many processes run",
    )
    optim.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        default=1,
        help="batches per optimizer step (effective batch = batch size x this)",
    )
    optim.add_argument("--lr", type=float, default=5e-5, help="AdamW peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    optim.add_argument(
        "--lr-schedule",
        choices=SCHEDULES,
        default="constant",
        help="after warmup: constant (the book), linear or cosine decay to 0",
    )
    optim.add_argument("--warmup-steps", type=int, default=0, help="linear warmup steps")
    optim.add_argument(
        "--max-grad-norm",
        type=float,
        default=0.0,
        help="clip the gradient norm to this (0 = no clipping, as the book)",
    )
    optim.add_argument(
        "--mixed-precision",
        choices=("no", "bf16", "fp16"),
        default=None,
        help="autocast dtype (GPU; bf16 is slower than fp32 on most CPUs); "
        "default: what `accelerate config` chose, else no",
    )
    optim.add_argument(
        "--cpu",
        action="store_true",
        help="train on the CPU even if a GPU is present (with no GPU this is automatic, and "
        "`accelerate launch --multi_gpu --num_processes N` then runs N gloo processes)",
    )
    optim.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="stop after this many optimizer steps (0 = run all epochs); for "
        "smoke tests and benchmarks",
    )
    optim.add_argument("--seed", type=int, default=123, help="seed for weights, data and order")

    evals = parser.add_argument_group("evaluation")
    evals.add_argument(
        "--eval-freq",
        type=int,
        default=50,
        help="log train/validation loss every this many optimizer steps",
    )
    evals.add_argument(
        "--eval-iter",
        type=int,
        default=5,
        help="batches used for those losses and for the per-epoch accuracy",
    )
    evals.add_argument(
        "--keep-best",
        action="store_true",
        help="score the whole validation split after each epoch and keep the "
        "best epoch's weights (accuracy, then loss) instead of the last",
    )

    out = parser.add_argument_group("outputs and checkpoints")
    out.add_argument(
        "--output-dir",
        type=Path,
        default=Path("outputs/sms-spam"),
        help="final model folder (+ metrics, logs, plots, card), written atomically at the end",
    )
    out.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="checkpoints and live logs (default: <output-dir>.run)",
    )
    out.add_argument(
        "--save-steps",
        type=int,
        default=0,
        help="also checkpoint every this many optimizer steps (0 = per epoch only)",
    )
    out.add_argument(
        "--save-total-limit",
        type=int,
        default=2,
        help="checkpoints kept (the best one under --keep-best is always kept)",
    )
    out.add_argument(
        "--resume-from-checkpoint",
        default=None,
        metavar="latest|PATH",
        help="continue from the newest checkpoint in --run-dir, or from PATH",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if --run-dir holds checkpoints of another run",
    )
    out.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="skip TensorBoard events (the JSONL step log is always written)",
    )

    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--prefix-cache",
        choices=("auto", "off"),
        default="auto",
        help="auto: run frozen leading blocks once per message when exact",
    )
    speed.add_argument(
        "--prefix-cache-max-gb",
        type=float,
        default=8.0,
        help="skip the cache if its states would need more memory than this",
    )
    add_data_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check flags; errors name the flag and the bad value."""
    parser = build_parser()
    args = parser.parse_args(argv)
    positive = (
        "epochs",
        "batch_size",
        "gradient_accumulation_steps",
        "eval_freq",
        "eval_iter",
        "save_total_limit",
        "lora_r",
    )
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("warmup_steps", "max_grad_norm", "save_steps", "max_steps", "weight_decay"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not 0 <= args.drop_rate < 1:
        parser.error(f"--drop-rate must be in [0, 1), got {args.drop_rate}")
    if args.run_dir is None:
        args.run_dir = args.output_dir.with_name(args.output_dir.name + ".run")
    return args
