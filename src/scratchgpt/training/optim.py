"""The optimiser and learning-rate schedule of a run (fine-tuning, and the optimiser of
next-token pretraining): AdamW over the trainable parameters, transformers' schedules."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from scratchgpt.training.arguments import FinetuneArguments


def make_optimizer(
    module: torch.nn.Module, args: FinetuneArguments, accelerator: Accelerator
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (the book's settings).

    The fused kernel does the whole update in one pass over memory: ~4x faster than the
    default on this CPU (27 -> 6 ms for the last block, 0.37 -> 0.10 s for all 124M
    parameters). FSDP's sharded parameters keep the default implementation.
    """
    fused = accelerator.device.type in ("cpu", "cuda") and "FSDP" not in str(
        accelerator.distributed_type
    )
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        params, lr=args.lr, weight_decay=args.weight_decay, fused=fused or None
    )


def make_scheduler(optimizer: torch.optim.Optimizer, args: FinetuneArguments, steps_per_epoch: int):
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    name = {"constant": "constant_with_warmup"}.get(args.lr_schedule, args.lr_schedule)
    return get_scheduler(
        name, optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=total
    )
