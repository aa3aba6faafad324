"""One process of the FSDP2 check in ``tests/test_fsdp.py`` (not a test module itself).

Started by ``accelerate launch --config_file configs/fsdp_gpt2.yaml --num_processes 2`` (two
gloo processes on the CPU), so the FSDP settings arrive exactly as accelerate's launcher derives
them from our config. accelerate itself selects FSDP only on accelerator devices, so this script
calls accelerate's own FSDP2 functions (``fsdp2_prepare_model``, ``save_fsdp_model``, ...) with
the plugin built from those settings, and the library's pieces the loop uses under FSDP
(``scratchgpt.training.fsdp``).

For the classifier (the default recipe, and full fine-tuning with gradient checkpointing),
wrapped as the loop wraps it, and for a causal LM with its tied head, it records on process 0:
the FSDP units; losses and gradient norms of a few clipped AdamW steps, sharded (each process
half of every global batch) and in one unsharded process (the whole batch); the full weights
gathered on process 0 (also written as a model folder); the same last steps resumed from a
sharded (torch.distributed.checkpoint) save into a freshly sharded model. ``test_fsdp.py``
compares them.
"""

from __future__ import annotations

import copy
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import (
    fsdp2_prepare_model,
    load_fsdp_model,
    load_fsdp_optimizer,
    save_fsdp_model,
    save_fsdp_optimizer,
)

from scratchgpt.folder import save_model_folder
from scratchgpt.paths import gpt2_bpe_dir
from scratchgpt.training.fsdp import register_forward_methods
from scratchgpt.training.loop import configure_trainable, parse_args
from scratchgpt.training.outputs import final_model
from scratchgpt.training.prefix_cache import ClassifierTrainingModule
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
)

STEPS = 3  # optimizer steps; the sharded checkpoint is taken after step SAVE_AT
SAVE_AT = 2
GLOBAL_BATCH, SEQ_LEN = 4, 12
MAX_GRAD_NORM = 0.05  # small enough that every step clips
LR = 1e-3


class LaunchedAccelerator:
    """What accelerate's FSDP2 functions and the loop's ``final_model`` read from an
    ``Accelerator`` in FSDP mode (which accelerate will not enter on a CPU)."""

    def __init__(self, plugin: FullyShardedDataParallelPlugin) -> None:
        self.state = SimpleNamespace(fsdp_plugin=plugin)
        self.distributed_type = DistributedType.FSDP
        self.is_fsdp2 = True
        self.mixed_precision = "no"
        self.device = torch.device("cpu")
        self.num_processes = dist.get_world_size()
        self.process_index = dist.get_rank()
        self.is_main_process = self.process_index == 0

    def wait_for_everyone(self) -> None:
        dist.barrier()


def tiny_config(**overrides) -> ScratchGPTConfig:
    # No qkv bias: its key slice has a zero gradient in exact arithmetic, and Adam turns the
    # rounding noise of two float paths into lr-sized steps there (see tests/test_train.py).
    base = dict(vocab_size=50257, context_length=32, emb_dim=32, n_heads=2, n_layers=3,
                drop_rate=0.0, qkv_bias=False)  # fmt: skip
    return ScratchGPTConfig(**{**base, **overrides})


def classifier(*flags: str) -> ClassifierTrainingModule:
    """A classifier set up by the loop's flags and wrapped as the loop hands it to accelerate."""
    labels = {"num_labels": 2, "id2label": {0: "ham", 1: "spam"}, "label2id": {"ham": 0, "spam": 1}}
    args = parse_args(list(flags))
    model = configure_trainable(ScratchGPTForSequenceClassification(tiny_config(**labels)), args)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    return ClassifierTrainingModule(model)


def default_recipe() -> ClassifierTrainingModule:
    """Last block, final norm and head learn; the frozen blocks are sharded all the same."""
    return classifier()


def full_fine_tuning() -> ClassifierTrainingModule:
    """The README's FSDP recipe: everything learns, blocks recomputed in backward."""
    return classifier("--trainable", "all", "--gradient-checkpointing")


def causal_lm() -> ScratchGPTForCausalLM:
    return ScratchGPTForCausalLM(tiny_config())


def classifier_batches() -> list[dict]:
    """Right-padded messages of different lengths, as the loop's collator makes them."""
    gen = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(STEPS):
        ids = torch.randint(0, 50257, (GLOBAL_BATCH, SEQ_LEN), generator=gen)
        lengths = torch.randint(3, SEQ_LEN + 1, (GLOBAL_BATCH,), generator=gen)
        mask = (torch.arange(SEQ_LEN)[None] < lengths[:, None]).long()
        labels = torch.randint(0, 2, (GLOBAL_BATCH,), generator=gen)
        batches.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return batches


def lm_batches() -> list[dict]:
    """Unpadded rows: every process averages its loss over as many tokens as the others."""
    gen = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(STEPS):
        ids = torch.randint(0, 50257, (GLOBAL_BATCH, SEQ_LEN), generator=gen)
        batches.append({"input_ids": ids, "labels": ids})
    return batches


def shard(module: torch.nn.Module, accelerator: LaunchedAccelerator) -> torch.nn.Module:
    """accelerate's FSDP2 preparation, then what the loop adds after ``prepare``."""
    module = fsdp2_prepare_model(accelerator, module)
    register_forward_methods(module)
    return module


def optimizer_for(module: torch.nn.Module) -> torch.optim.AdamW:
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=LR, weight_decay=0.1)


def local_rows(batch: dict) -> dict:
    """This process's share of a global batch (accelerate's ``split_batches=True``)."""
    share = GLOBAL_BATCH // dist.get_world_size()
    rows = slice(dist.get_rank() * share, (dist.get_rank() + 1) * share)
    return {k: v[rows] for k, v in batch.items()}


def train_steps(module, optimizer, batches: list[dict], sharded: bool) -> tuple[list, list]:
    """Clipped AdamW steps; the loss and gradient norm of each step over the global batch."""
    losses, norms = [], []
    for batch in batches:
        loss = module(**(local_rows(batch) if sharded else batch)).loss
        loss.backward()
        # What accelerator.clip_grad_norm_ runs under FSDP2 (one mesh): DTensor gradients are
        # clipped by the norm of the whole, unsharded gradient.
        params = [p for p in module.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad()
        loss = loss.detach()
        if sharded:
            dist.all_reduce(loss)  # mean over processes = mean over the global batch
            loss /= dist.get_world_size()
            norm = norm.full_tensor()
        losses.append(loss.item())
        norms.append(norm.item())
    return losses, norms


def fsdp_units(module: torch.nn.Module) -> list[str]:
    from torch.distributed.fsdp import FSDPModule

    return sorted(name for name, sub in module.named_modules() if isinstance(sub, FSDPModule))


def lm_head_tied(model: torch.nn.Module) -> bool:
    return model.out_head.weight is model.gpt.tok_emb.weight


def run_case(name: str, build, batches: list[dict], accelerator, out: Path) -> dict:
    rank = dist.get_rank()
    torch.manual_seed(0)
    initial = build()
    is_lm = isinstance(initial, ScratchGPTForCausalLM)
    result = {}
    if rank == 0:  # the reference: one unsharded process on the whole batch
        reference = copy.deepcopy(initial)
        losses, norms = train_steps(reference, optimizer_for(reference), batches, sharded=False)
        state = getattr(reference, "model", reference).state_dict()  # no wrapper prefix
        result["reference"] = {"losses": losses, "norms": norms, "state": state}
        result["initial"] = getattr(initial, "model", initial).state_dict()

    module = shard(copy.deepcopy(initial), accelerator)
    result["units"] = fsdp_units(module)
    result["tied_after_sharding"] = lm_head_tied(module) if is_lm else None
    optimizer = optimizer_for(module)
    losses, norms = train_steps(module, optimizer, batches[:SAVE_AT], sharded=True)

    # Sharded checkpoint, the way accelerator.save_state writes one under configs/fsdp_gpt2.yaml.
    checkpoint = [str(out / f"{name}-checkpoint")]
    dist.broadcast_object_list(checkpoint)
    plugin = accelerator.state.fsdp_plugin
    save_fsdp_model(plugin, accelerator, module, checkpoint[0])
    save_fsdp_optimizer(plugin, accelerator, optimizer, module, checkpoint[0])
    dist.barrier()
    more_losses, more_norms = train_steps(module, optimizer, batches[SAVE_AT:], sharded=True)
    result["sharded"] = {"losses": losses + more_losses, "norms": norms + more_norms}

    # The loop's output-folder weights: gathered on process 0, None on the others.
    full = final_model(SimpleNamespace(accelerator=accelerator, module=module))
    if rank == 0:
        result["gathered"] = full.state_dict()
        result["tied_after_gather"] = lm_head_tied(full) if is_lm else None
        save_model_folder(full, out / name, tokenizer_source=gpt2_bpe_dir())

    # Resume: other weights, sharded the same way, then loaded from the checkpoint.
    torch.manual_seed(1)
    resumed = shard(build(), accelerator)
    resumed_optimizer = optimizer_for(resumed)
    load_fsdp_model(plugin, accelerator, resumed, checkpoint[0])
    load_fsdp_optimizer(plugin, accelerator, resumed_optimizer, resumed, checkpoint[0])
    result["tied_after_resume"] = lm_head_tied(resumed) if is_lm else None
    losses, norms = train_steps(resumed, resumed_optimizer, batches[SAVE_AT:], sharded=True)
    result["resumed"] = {"losses": losses, "norms": norms}
    resumed_full = final_model(SimpleNamespace(accelerator=accelerator, module=resumed))
    if rank == 0:
        result["resumed"]["state"] = resumed_full.state_dict()
    return result


def main(out: Path) -> None:
    # gloo on the CPU (accelerate's logging, used by its FSDP helpers, also needs this state)
    PartialState(cpu=True, timeout=timedelta(seconds=120))
    torch.set_num_threads(1)  # two processes on two cores
    # The FSDP_* variables accelerate launch set from configs/fsdp_gpt2.yaml.
    accelerator = LaunchedAccelerator(FullyShardedDataParallelPlugin())
    results = {
        "plugin": {
            "version": accelerator.state.fsdp_plugin.fsdp_version,
            "wrap": accelerator.state.fsdp_plugin.transformer_cls_names_to_wrap,
            "state_dict_type": str(accelerator.state.fsdp_plugin.state_dict_type),
            "world_size": dist.get_world_size(),
        },
    }
    cases = {
        "classifier": (default_recipe, classifier_batches()),
        "full_fine_tuning": (full_fine_tuning, classifier_batches()),
        "causal_lm": (causal_lm, lm_batches()),
    }
    for name, (build, batches) in cases.items():
        results[name] = run_case(name, build, batches, accelerator, out)
    if dist.get_rank() == 0:
        torch.save(results, out / "results.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
