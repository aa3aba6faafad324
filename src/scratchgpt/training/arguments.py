"""``finetune``'s settings: one dataclass per part (model, optimisation, evaluation, outputs,
speed) plus the shared :class:`~scratchgpt.data.arguments.DataArguments`, combined into the flat
:class:`FinetuneArguments` that the loop takes (as transformers' ``TrainingArguments``).

``FinetuneArguments(init="random", data_file=..., epochs=1)`` in Python and
``scripts/finetune.py --init random --data-file ... --epochs 1`` are the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scratchgpt.arguments import (
    MAX_SEED,
    ArgumentParser,
    arg,
    as_path,
    check,
    check_input_path,
    check_number,
    check_output_name,
    super_post_init,
    to_config,
)
from scratchgpt.data.arguments import DataArguments
from scratchgpt.precision import MIXED_PRECISION_HELP, MixedPrecision

TRAINABLE = ("last_layer", "last_block", "last_two_blocks", "all", "lora")
# What a run trains with unless a flag says otherwise. The book's chapter-6 recipe is made for
# pre-trained weights: their frozen blocks already read English, so the last block and a new
# head suffice. From random weights those frozen blocks are a fixed random map, and the book's
# recipe learns little beyond message length; the "from-scratch" recipe was chosen by
# measurement on the validation split (benchmarks/recipe_search.py; docs/RECIPES.md).
RECIPES: dict[str, dict[str, object]] = {
    "book": {
        "model": "gpt2-small",
        "trainable": "last_block",
        "pooling": "last",
        "lr": 5e-5,
        "epochs": 5,
        "batch_size": 8,
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "drop_rate": 0.0,
    },
    "from-scratch": {
        "model": "gpt2-mini",
        "trainable": "all",
        "pooling": "mean",
        "lr": 1e-3,
        "epochs": 6,
        "batch_size": 32,
        "lr_schedule": "cosine",
        "warmup_steps": 50,
        "drop_rate": 0.1,
    },
}
RECIPE_FIELDS = tuple(RECIPES["book"])


def recipe_default_help(name: str) -> str:
    book, scratch = RECIPES["book"][name], RECIPES["from-scratch"][name]
    return f"default: {book} with --init pretrained (the book), {scratch} with --init random"


SCHEDULES = ("constant", "linear", "cosine")
DESCRIPTION = (
    "Fine-tune a from-scratch GPT-2 as a text classifier (book ch. 6 recipe), through "
    "accelerate: `python scripts/finetune.py [flags]` (one process) or `accelerate launch "
    "--config_file configs/accelerate.yaml -q scripts/finetune.py [flags]`."
)


@dataclass(kw_only=True)
class ModelArguments:
    _argument_group_name = "model"

    model: str | None = arg(
        None,
        "preset (gpt2-small|medium|large|xl with OpenAI's weights; gpt2-mini, 4 blocks x 256, "
        f"for --init random only) or a model folder ({recipe_default_help('model')})",
    )
    init: Literal["pretrained", "random"] = arg(
        "pretrained",
        "pretrained: OpenAI weights (downloaded and converted once); "
        "random: the preset's shape with fresh weights (works offline)",
    )
    trainable: Literal["last_layer", "last_block", "last_two_blocks", "all", "lora"] | None = arg(
        None,
        "what learns besides the new head: last_layer = head only; "
        "last_block / last_two_blocks = those blocks + final norm; all; lora "
        f"({recipe_default_help('trainable')})",
    )
    lora_r: int = arg(8, "LoRA rank (--trainable lora)")
    lora_alpha: float = arg(16.0, "LoRA scaling alpha")
    lora_dropout: float = arg(0.0, "dropout on LoRA inputs")
    pooling: Literal["last", "mean"] | None = arg(
        None,
        "classify from the last real token or the mean of real tokens "
        f"({recipe_default_help('pooling')})",
    )
    drop_rate: float | None = arg(
        None,
        "dropout in the model; >0 turns the frozen-prefix cache off "
        f"({recipe_default_help('drop_rate')})",
    )
    gradient_checkpointing: bool = arg(
        False,
        "recompute block activations in backward (large presets, full "
        "fine-tuning): less memory, ~30%% more compute",
    )

    def __post_init__(self) -> None:
        if self.model is not None:
            self.model = str(self.model)
        check(self.lora_r >= 1, "lora_r", self.lora_r, "be >= 1")
        check_number(self, "lora_alpha", 0, open_low=True)
        check_number(self, "drop_rate", 0, 1, open_high=True)
        check_number(self, "lora_dropout", 0, 1, open_high=True)
        super_post_init(self, ModelArguments)


@dataclass(kw_only=True)
class OptimizationArguments:
    _argument_group_name = "optimisation"

    epochs: int | None = arg(
        None, f"passes over the training split ({recipe_default_help('epochs')})"
    )
    batch_size: int | None = arg(
        None,
        "global batch size, split evenly across processes, so results do "
        f"not depend on how many processes run ({recipe_default_help('batch_size')})",
    )
    gradient_accumulation_steps: int = arg(
        1, "batches per optimizer step (effective batch = batch size x this)"
    )
    lr: float | None = arg(None, f"AdamW peak learning rate ({recipe_default_help('lr')})")
    weight_decay: float = arg(0.1, "AdamW weight decay")
    lr_schedule: Literal["constant", "linear", "cosine"] | None = arg(
        None,
        "after warmup: constant, linear or cosine decay to 0 "
        f"({recipe_default_help('lr_schedule')})",
    )
    warmup_steps: int | None = arg(
        None, f"linear warmup steps ({recipe_default_help('warmup_steps')})"
    )
    # Measured for the from-scratch recipe, not adopted: 4 epochs gave +0.017 test spam-F1 on
    # two seeds but lower validation and cross-validation F1 (docs/RECIPES.md).
    pretrain_epochs: int = arg(
        0,
        "epochs of next-token pretraining (the book's chapter 5) on the training split's own "
        "texts before fine-tuning, with the same optimiser settings; from random weights it "
        "gives one target per token instead of one per message (on the SMS data it did not "
        "beat plain fine-tuning reliably: docs/RECIPES.md)",
    )
    max_grad_norm: float = arg(0.0, "clip the gradient norm to this (0 = no clipping, as the book)")
    class_weights: Literal["none", "balanced"] = arg(
        "none",
        "weigh the training loss per class: balanced = n / (classes x class count), so a rare "
        "class counts as much as a common one (reported losses stay unweighted)",
    )
    mixed_precision: MixedPrecision = arg("auto", MIXED_PRECISION_HELP)
    cpu: bool = arg(
        False,
        "train on the CPU even if a GPU is present (with no GPU this is automatic, and "
        "`accelerate launch --multi_gpu --num_processes N` then runs N gloo processes)",
    )
    max_steps: int = arg(
        0,
        "stop after this many optimizer steps (0 = run all epochs); for smoke tests and benchmarks",
    )
    seed: int = arg(123, "seed for weights, data and order")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "gradient_accumulation_steps"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "be >= 1")
        for name in (
            "warmup_steps",
            "max_grad_norm",
            "max_steps",
            "weight_decay",
            "pretrain_epochs",
        ):
            check_number(self, name, 0)
        # A rate of 0 or below, nan or inf would only show as a torch error after loading.
        check_number(self, "lr", 0, open_low=True)
        check_number(self, "seed", 0, MAX_SEED)
        super_post_init(self, OptimizationArguments)


@dataclass(kw_only=True)
class EvaluationArguments:
    _argument_group_name = "evaluation"

    eval_freq: int = arg(50, "log train/validation loss every this many optimizer steps")
    eval_iter: int = arg(
        5,
        "batches used for those periodic losses (the book's probe); the per-epoch validation "
        "accuracy and loss always cover the whole split",
    )
    keep_best: bool = arg(
        False,
        "keep the weights of the epoch with the best whole-split validation accuracy "
        "(then loss) instead of the last",
    )

    def __post_init__(self) -> None:
        for name in ("eval_freq", "eval_iter"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "be >= 1")
        super_post_init(self, EvaluationArguments)


@dataclass(kw_only=True)
class OutputArguments:
    _argument_group_name = "outputs and checkpoints"

    output_dir: Path = arg(
        Path("outputs/sms-spam"),
        "final model folder (+ metrics, logs, plots, card), written atomically at the end",
    )
    run_dir: Path | None = arg(
        None,
        "checkpoints and live logs while the run lasts, locked against a second run "
        "(default: <output-dir>.run)",
    )
    save_steps: int = arg(0, "also checkpoint every this many optimizer steps (0 = per epoch only)")
    save_total_limit: int = arg(
        1,
        "newest checkpoints kept while the run lasts (the best one under --keep-best is "
        "always kept too); a checkpoint holds only what trains, not the frozen weights",
    )
    keep_checkpoints: bool = arg(
        False,
        "keep --run-dir (checkpoints, live logs) after a successful run; by default it is "
        "removed once the output folder is written",
    )
    resume_from_checkpoint: str | None = arg(
        None,
        "continue from the newest checkpoint in --run-dir, or from PATH",
        metavar="latest|PATH",
    )
    overwrite: bool = arg(
        False, "start afresh even if --run-dir holds checkpoints of an interrupted run"
    )
    no_tensorboard: bool = arg(
        False, "skip TensorBoard events (the JSONL step log is always written)"
    )

    def __post_init__(self) -> None:
        self.output_dir = as_path(self.output_dir)
        check_output_name(self, "output_dir")
        # Resolved here so the recorded settings name the folder the run really used.
        self.run_dir = as_path(self.run_dir) or default_run_dir(self.output_dir)
        check(self.save_steps >= 0, "save_steps", self.save_steps, "be >= 0")
        check(self.save_total_limit >= 1, "save_total_limit", self.save_total_limit, "be >= 1")
        if self.resume_from_checkpoint is not None:
            self.resume_from_checkpoint = str(self.resume_from_checkpoint)
            if self.resume_from_checkpoint != "latest":  # a path: there before any work
                check_input_path(self, "resume_from_checkpoint", "folder", "checkpoint folder")
        super_post_init(self, OutputArguments)


@dataclass(kw_only=True)
class SpeedArguments:
    _argument_group_name = "speed"

    prefix_cache: Literal["auto", "off"] = arg(
        "auto", "auto: run frozen leading blocks once per message when exact"
    )
    prefix_cache_max_gb: float = arg(
        8.0, "skip the cache if its states would need more memory than this"
    )

    def __post_init__(self) -> None:
        check_number(self, "prefix_cache_max_gb", 0)
        super_post_init(self, SpeedArguments)


@dataclass(kw_only=True)
class FinetuneArguments(
    # Reversed: dataclass fields (and so the --help groups) come from the last base first.
    DataArguments,
    SpeedArguments,
    OutputArguments,
    EvaluationArguments,
    OptimizationArguments,
    ModelArguments,
):
    """Every setting of a fine-tuning run (the flags of ``scripts/finetune.py``)."""

    recipe: Literal["auto", "book", "from-scratch"] = arg(
        "auto",
        "the defaults of --model, --trainable, --pooling, --lr, --epochs, --batch-size, "
        "--lr-schedule, --warmup-steps and --drop-rate (flags given override them): book = the "
        "book's "
        "chapter-6 recipe for pre-trained weights; from-scratch = the recipe measured for "
        "random weights (docs/RECIPES.md); auto = book with "
        "--init pretrained, from-scratch with --init random",
        group="model",
    )
    # One seed for weights, data and batch order; its help is training's, in its group.
    seed: int = arg(123, "seed for weights, data and order", group="optimisation")

    def __post_init__(self) -> None:
        # Before the parts check their fields: those left unset take the recipe's values,
        # and the resolved values are what recipe.yaml records.
        if self.recipe not in ("auto", *RECIPES):
            raise ValueError(
                f"--recipe must be one of auto, {', '.join(RECIPES)}, got {self.recipe!r}"
            )
        if self.mixed_precision is None:  # recipes written before "auto" said null for it
            self.mixed_precision = "auto"
        chosen = RECIPES[resolved_recipe(self.recipe, self.init)]
        for name in RECIPE_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, chosen[name])
        super_post_init(self, FinetuneArguments)


def resolved_recipe(recipe: str, init: str) -> str:
    """``auto`` -> the recipe made for this kind of starting weights."""
    if recipe != "auto":
        return recipe
    return "book" if init == "pretrained" else "from-scratch"


def default_run_dir(output_dir: Path) -> Path:
    return output_dir.with_name(output_dir.name + ".run")


def recipe(args: FinetuneArguments) -> dict:
    """The settings as a run's ``recipe.yaml`` records them. A run folder derived from the
    output folder stays derived (``--output-dir`` alone then moves both), and how a run was
    resumed is not part of what it is."""
    values = to_config(args)
    if args.run_dir == default_run_dir(args.output_dir):
        values["run_dir"] = None
    values["resume_from_checkpoint"] = None
    values["recipe"] = resolved_recipe(args.recipe, args.init)
    return values


def build_parser() -> ArgumentParser:
    """All flags of ``scripts/finetune.py`` (plus ``--config``)."""
    return ArgumentParser(
        FinetuneArguments,
        config="Every run writes its resolved settings to recipe.yaml in its output folder; "
        "configs/finetune/ holds ready recipes",
        prog="finetune.py",
        description=DESCRIPTION,
    )


def parse_args(argv: Sequence[str] | None = None) -> FinetuneArguments:
    """Flags (and ``--config`` recipe) -> :class:`FinetuneArguments`; bad values exit 2."""
    arguments, _ = build_parser().parse(argv)
    return arguments
