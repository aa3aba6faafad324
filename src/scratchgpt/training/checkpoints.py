"""Checkpoints of a fine-tuning run: save (atomically, every process), prune, find, resume.

``accelerator.save_state`` folders under ``<run-dir>/checkpoints/step_NNNNNNN``; the progress
(``TrainState``) is registered with accelerate, so it travels inside them.

A checkpoint holds what training changes: the trainable parameters (LoRA adapters and the new
head included), optimizer, schedule, RNG and progress, not the frozen weights, which a resumed
run rebuilds exactly as the first one built them (the same ``--model`` folder, or ``--init
random`` from ``--seed``). ``frozen.json`` records a fingerprint of those frozen weights, and
loading refuses a checkpoint whose frozen weights differ from the ones just built. Under FSDP
accelerate writes its own sharded ``torch.distributed.checkpoint`` folders, which keep the full
state (its hooks never see those weights).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import torch

from scratchgpt.training.run_folder import CHECKPOINTS, SetupError, list_checkpoints
from scratchgpt.training.state import Run

FROZEN = "frozen.json"


def checkpoint_dir(run: Run) -> Path:
    return run.args.run_dir / CHECKPOINTS / f"step_{run.state.global_step:07d}"


def save_checkpoint(run: Run) -> Path:
    """``accelerator.save_state`` into a temp folder, renamed when every process is done."""
    final = checkpoint_dir(run)
    if final.exists():  # the epoch ended on a --save-steps step: already saved
        return final
    tmp = final.with_name(f".{final.name}.tmp")
    acc = run.accelerator
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)  # left by a run that died while saving
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        tmp.rename(final)
        prune_checkpoints(run)
    acc.wait_for_everyone()
    return final


def prune_checkpoints(run: Run) -> None:
    keep = {str(p) for p in list_checkpoints(run.args.run_dir)[-run.args.save_total_limit :]}
    if run.state.best.get("checkpoint"):
        keep.add(run.state.best["checkpoint"])
    for path in list_checkpoints(run.args.run_dir):
        if str(path) not in keep:
            shutil.rmtree(path)


def resolve_checkpoint(spec: str, run_dir: Path) -> Path:
    if spec != "latest":
        path = Path(spec)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume-from-checkpoint {spec}: no such checkpoint folder")
        return path
    found = list_checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(
            f"--resume-from-checkpoint latest: no checkpoint in {run_dir / CHECKPOINTS}"
        )
    return found[-1]


def resume(run: Run) -> None:
    """Restore model, optimizer, schedule, RNG and progress; the loop skips consumed batches."""
    path = resolve_checkpoint(run.args.resume_from_checkpoint, run.args.run_dir)
    load_checkpoint(run, path)
    run.accelerator.print(
        f"resumed from {path}: epoch {run.state.epoch + 1}, step {run.state.global_step}, "
        f"{run.state.batches_in_epoch} batches into the epoch"
    )


def load_checkpoint(run: Run, path: Path | str) -> None:
    """``load_state`` of a checkpoint that lacks the frozen weights (checked by the hook)."""
    run.accelerator.load_state(str(path), strict=False)


# ----------------------------------------------------------------------------- what is saved


def frozen_names(model: torch.nn.Module) -> set[str]:
    """State-dict names of the frozen parameters (every alias of a shared one)."""
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}


def frozen_fingerprint(model: torch.nn.Module) -> dict:
    """A hash of the frozen weights' names, shapes and bytes (~1 s per GB)."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    for name, param in model.named_parameters():
        if param.requires_grad:
            continue
        tensor = param.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
        count += tensor.numel()
    return {"frozen_parameters": count, "fingerprint": digest.hexdigest()}


def register_checkpoint_hooks(run: Run) -> None:
    """Leave the frozen weights out of every ``save_state`` and check them at ``load_state``."""
    acc = run.accelerator
    fingerprint = functools.cache(lambda: frozen_fingerprint(run.module))  # they never change

    def drop_frozen(models: list, weights: list[dict], output_dir: str) -> None:
        # ``weights`` is empty under FSDP, whose sharded state accelerate saves itself.
        for model, state in zip(models, weights, strict=False):
            for name in frozen_names(model):
                state.pop(name, None)
        if weights and acc.is_main_process:
            Path(output_dir, FROZEN).write_text(json.dumps(fingerprint()) + "\n")

    def check_frozen(models: list, input_dir: str) -> None:
        record = Path(input_dir, FROZEN)
        if not models or not record.is_file():  # FSDP, or a full checkpoint of an older run
            return
        if json.loads(record.read_text()) != fingerprint():
            raise SetupError(
                f"{input_dir} was trained on top of other frozen weights than this run built: "
                "resume with the --model, --init and --seed of the interrupted run"
            )
        check_trainable_saved(models, Path(input_dir))

    acc.register_save_state_pre_hook(drop_frozen)
    acc.register_load_state_pre_hook(check_frozen)


def check_trainable_saved(models: list, folder: Path) -> None:
    """``strict=False`` loading must not skip a trainable weight: every one is in the file."""
    from safetensors import safe_open

    for i, model in enumerate(models):
        path = folder / f"model{f'_{i}' if i else ''}.safetensors"
        if not path.is_file():
            continue  # accelerate names the problem
        with safe_open(path, "pt") as handle:
            missing = trainable_names(model) - set(handle.keys())
        if missing:
            raise SetupError(
                f"{path} lacks {len(missing)} trainable weight(s) of this run (e.g. "
                f"{sorted(missing)[0]}): resume with the --trainable of the interrupted run"
            )
