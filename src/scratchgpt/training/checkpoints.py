"""Checkpoints of a fine-tuning run: save (atomically, every process), prune, find, resume.

``accelerator.save_state`` folders under ``<run-dir>/checkpoints/step_NNNNNNN``; the progress
(``TrainState``) is registered with accelerate, so it travels inside them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scratchgpt.training.state import Run

CHECKPOINTS = "checkpoints"


def checkpoint_dir(run: Run) -> Path:
    return run.args.run_dir / CHECKPOINTS / f"step_{run.state.global_step:07d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (incomplete ones are hidden ``.tmp`` folders)."""
    folder = run_dir / CHECKPOINTS
    found = folder.glob("step_*") if folder.is_dir() else []
    return sorted((p for p in found if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))


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
    run.accelerator.load_state(str(path))
    run.accelerator.print(
        f"resumed from {path}: epoch {run.state.epoch + 1}, step {run.state.global_step}, "
        f"{run.state.batches_in_epoch} batches into the epoch"
    )
