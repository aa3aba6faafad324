"""What the fine-tuning loop does differently when accelerate shards the model with FSDP2.

With ``configs/fsdp_gpt2.yaml`` accelerate calls ``fully_shard`` on each ``ScratchGPTBlock``,
then on the module it was given (the loop's ``ClassifierTrainingModule``), which takes the
embeddings, the final norm and the head. Per feature of the loop:

- training step, gradient clipping, ``gather_for_metrics``: unchanged. accelerate clips the
  sharded (DTensor) gradients by their global norm, and the metrics gather predictions, not
  weights;
- checkpoints, ``--resume-from-checkpoint``, ``--keep-best``: unchanged; ``save_state`` and
  ``load_state`` write and read sharded ``torch.distributed.checkpoint`` folders (every process
  its own part). These keep the full state, frozen weights included: accelerate saves them
  itself, past the hook that leaves frozen weights out of unsharded checkpoints;
- the classifier's pooled fast path runs the last block through ``forward_at``, which FSDP2
  does not know: :func:`register_forward_methods` makes it gather the block's weights too;
- the output folder: :func:`gather_full_model` collects the full weights on the main process;
- the frozen-prefix cache is off (``prefix_cache.cache_blocker`` says why) and LoRA is refused
  (:func:`unsupported_under_fsdp`).

``tests/test_fsdp.py`` runs these pieces sharded, in two processes on the CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from scratchgpt.folder import TASK_CLASSES
from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.prefix_cache import ClassifierTrainingModule
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTBlock

# Methods of ScratchGPTBlock that run it besides ``forward``.
BLOCK_FORWARD_METHODS = ("forward_at",)


def is_fsdp(accelerator) -> bool:
    return str(accelerator.distributed_type).split(".")[-1] == "FSDP"


def unsupported_under_fsdp(args: FinetuneArguments) -> str:
    """Why these flags cannot run sharded, naming the flag; ``""`` when they can."""
    if args.trainable == "lora":
        return (
            "--trainable lora is not supported with FSDP: the output folder merges the adapters "
            "into unsharded weights, and LoRA's small optimizer state gains little from "
            "sharding; use DDP (accelerate launch --multi_gpu) instead"
        )
    if args.pretrain_epochs:
        return (
            f"--pretrain-epochs {args.pretrain_epochs} is not supported with FSDP (the next-token "
            "head reads the sharded token embedding); pass --pretrain-epochs 0, or use DDP "
            "(accelerate launch --multi_gpu)"
        )
    return ""


def register_forward_methods(module: nn.Module) -> int:
    """Let FSDP2 gather a block's weights around ``forward_at`` as it does around ``forward``.

    The classifier runs its last block through ``forward_at`` (only the pooled token), which
    FSDP2's hooks do not see: the block's weights would stay sharded and the call would fail.
    A no-op for blocks that are not sharded, so it is safe in every launch mode. Returns the
    number of sharded blocks (0 when nothing is sharded).
    """
    from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method

    sharded = 0
    for block in module.modules():
        # By class name, as accelerate's wrap policy matches: a model loaded with
        # trust_remote_code has its own ScratchGPTBlock class (from the folder's code).
        is_block = any(cls.__name__ == ScratchGPTBlock.__name__ for cls in type(block).__mro__)
        if is_block and isinstance(block, FSDPModule):
            for name in BLOCK_FORWARD_METHODS:
                register_fsdp_forward_method(block, name)
            sharded += 1
    return sharded


def gather_full_model(module: nn.Module) -> PreTrainedModel | None:
    """The full weights of a (sharded) ScratchGPT model as a plain model on the main process's
    CPU, ready for ``save_model_folder``; ``None`` on the other processes.

    ``module`` is a ScratchGPT model or the loop's ``ClassifierTrainingModule``. Every process
    must call this (the gather is collective); only process 0 ever holds the full weights.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(module, options=options)
    if dist.is_initialized() and dist.get_rank() != 0:
        return None
    inner, prefix = module, ""
    if isinstance(module, ClassifierTrainingModule):
        inner, prefix = module.model, "model."
    model_class = next(cls for cls in TASK_CLASSES.values() if isinstance(inner, cls))
    with torch.device("meta"):
        model = model_class(inner.config)
    model.load_state_dict({k.removeprefix(prefix): v for k, v in state.items()}, assign=True)
    model.tie_weights()  # assign=True replaced the shared tensor by two copies
    return model.eval()
