"""What a fine-tuning run writes: the step log and the final output folder.

The live step log goes to ``--run-dir`` (checkpoints too: ``checkpoints.py``); the output
folder is assembled in a staging folder and written atomically at the end, so a run that dies
never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from scratchgpt.arguments import save_config, to_config
from scratchgpt.folder import save_model_folder
from scratchgpt.metrics import report
from scratchgpt.run_record import RESOLVED_FLAGS, RunRecord, write_run_record
from scratchgpt.training.arguments import recipe
from scratchgpt.training.fsdp import gather_full_model, is_fsdp
from scratchgpt.training.plots import Series, plot_series
from scratchgpt.training.run_folder import LOGS, STEP_LOG
from scratchgpt.training.state import Run

RECIPE = "recipe.yaml"


# ----------------------------------------------------------------------------- logging


def log_record(run: Run, record: dict) -> None:
    """One line in the JSONL step log and the same scalars in TensorBoard (main process)."""
    if run.accelerator.is_main_process and run.step_log is not None:
        with open(run.step_log, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    scalars = {k: v for k, v in record.items() if isinstance(v, float)}
    if not run.args.no_tensorboard:
        run.accelerator.log(scalars, step=record["step"])


def open_step_log(run: Run) -> None:
    """On resume, drop the lines the interrupted run wrote after its checkpoint."""
    run.step_log = run.args.run_dir / STEP_LOG
    if not run.accelerator.is_main_process:
        return
    run.step_log.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if run.args.resume_from_checkpoint and run.step_log.exists():
        for line in run.step_log.read_text().splitlines():
            record = json.loads(line)
            if record["step"] <= run.state.global_step:
                kept.append(line)
    run.step_log.write_text("".join(f"{line}\n" for line in kept))


def init_trackers(run: Run) -> None:
    if run.args.no_tensorboard:
        return
    # TensorBoard's hparams accept only scalars and strings.
    config = {
        k: v if isinstance(v, int | float | str | bool) else str(v)
        for k, v in to_config(run.args).items()
    }
    run.accelerator.init_trackers("finetune", config=config)


# ----------------------------------------------------------------------------- outputs


def final_model(run: Run) -> torch.nn.Module | None:
    """A plain ScratchGPT classifier with the trained weights (LoRA merged). Under FSDP every
    process must call this (the weights are gathered), and only the main one gets the model."""
    if is_fsdp(run.accelerator):
        return gather_full_model(run.module)  # None on the other processes
    model = run.accelerator.unwrap_model(run.module).model
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def write_outputs(run: Run, metrics: dict, raw: dict) -> Path:
    """Assemble every file in a staging folder, then write the model folder atomically."""
    model = final_model(run)
    if not run.accelerator.is_main_process:
        return run.args.output_dir
    with tempfile.TemporaryDirectory(dir=run.args.run_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        model.config.to_json_file(staging / "config.json")  # for the card; save_pretrained
        write_reports(run, metrics, raw, staging)  # writes the real one
        extra = {p.name: p.read_bytes() for p in staging.iterdir() if p.name != "config.json"}
        save_model_folder(
            model, run.args.output_dir, tokenizer_source=run.tokenizer_folder, extra_files=extra
        )
    return run.args.output_dir


def write_reports(run: Run, metrics: dict, raw: dict, staging: Path) -> None:
    """metrics.json, training_args.json, recipe.yaml, the step log, TensorBoard events, plots
    and card."""
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_run_record(run_record(run), staging)
    save_config(recipe(run.args), staging / RECIPE)  # --config of this file reproduces the run
    shutil.copy(run.step_log, staging / STEP_LOG)
    # Flat copies: the folder is the Hub repo, which finds event files at any depth.
    for events in (run.args.run_dir / LOGS).rglob("events.out.tfevents*"):
        shutil.copy(events, staging / events.name)
    write_plots(run, metrics, raw, staging)
    from scratchgpt.hub.card import write_model_card

    write_model_card(staging)


def epoch_axis(epochs: list[dict]) -> tuple[list[float], list[int]]:
    return [float(r["epoch"]) for r in epochs], [r["examples_seen"] for r in epochs]


def epoch_series(epochs: list[dict], metric: str, train_label: str) -> list[Series]:
    """Per-epoch ``train_<metric>`` (over the epoch's batches) and ``val_<metric>`` (over the
    whole validation split, its last value printed)."""
    n_val = epochs[-1].get("val_examples", "all")
    at = epoch_axis(epochs)[0]
    return [
        Series(train_label, at, [r[f"train_{metric}"] for r in epochs], marker="o"),
        Series(f"validation, whole split ({n_val} messages)", at,
               [r[f"val_{metric}"] for r in epochs], style="-.", marker="o", annotate_last=True),
    ]  # fmt: skip


def plot_loss(run: Run, evals: list[dict], epochs: list[dict], stem: Path) -> None:
    """The book's periodic probe losses, and the per-epoch losses over whole splits."""
    series = epoch_series(epochs, "loss", "training, mean over the epoch's batches")
    if evals:
        batches, at_steps = run.args.eval_iter, [r["epoch_float"] for r in evals]
        series += [
            Series(f"training, first {batches} batches (every {run.args.eval_freq} steps)",
                   at_steps, [r["train_loss"] for r in evals], style=":"),
            Series(f"validation, first {batches} batches", at_steps,
                   [r["val_loss"] for r in evals], style=":"),
        ]  # fmt: skip
    plot_series(series, epoch_axis(epochs), "Loss", "Cross-entropy loss during fine-tuning", stem)


def plot_accuracy(epochs: list[dict], stem: Path) -> None:
    """Per-epoch accuracy: validation over the whole split, training over the epoch's batches."""
    series = epoch_series(epochs, "accuracy", "training, running over the epoch's batches")
    plot_series(series, epoch_axis(epochs), "Accuracy", "Accuracy after each epoch", stem)


def run_record(run: Run) -> RunRecord:
    """The settings and facts of this run, each under one name (``training_args.json``)."""
    # The flags a fact resolves are recorded as resolved; recipe.yaml keeps them as given.
    settings = {k: v for k, v in to_config(run.args).items() if k not in RESOLVED_FLAGS}
    return RunRecord(
        settings=settings,
        model_name=run.args.output_dir.name,
        label_names=run.label_names,
        global_steps=run.state.global_step,
        epochs_completed=run.state.epoch,
        examples_seen=run.state.examples_seen,
        train_seconds=round(run.state.elapsed_s, 2),
        best=run.state.best,
        **run.info,
    )


def write_plots(run: Run, metrics: dict, raw: dict, staging: Path) -> None:
    """Loss and accuracy curves (legends say what each point covers), confusion matrix, PR."""
    evals, epochs = run.state.evals, run.state.epochs
    if epochs:
        plot_loss(run, evals, epochs, staging / "loss-plot")
        plot_accuracy(epochs, staging / "accuracy-plot")
    test = metrics["test"]
    report.plot_confusion_matrix(
        test["confusion_matrix"],
        run.label_names,
        staging / "confusion_matrix.png",
        title="Test split",
    )
    report.plot_precision_recall(
        raw["test"]["probabilities"],
        raw["test"]["references"],
        run.label_names,
        staging / "precision_recall.png",
        title="Test split",
    )
