"""Settings of the commands that use a model folder: ``classify``, ``generate``, ``evaluate``.

The texts of ``classify`` and the prompt of ``generate`` are positional on the command line and
plain arguments of the Python functions, so they are not fields here. The parsers live here, with
the settings, so a script answers ``--help`` without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scratchgpt.arguments import (
    MAX_SEED,
    ArgumentParser,
    arg,
    as_path,
    check,
    check_choices,
    check_device,
    check_number,
)
from scratchgpt.data.arguments import DataArguments
from scratchgpt.precision import DTYPE_HELP, Dtype

DEFAULT_BATCH_SIZE = 16  # measured: larger batches pad more on small inputs, gain little GEMM speed
DEFAULT_PROMPT = "Every effort moves you"
# Prepack "auto" packs a call of at least this many tokens (scratchgpt.inference.prepack: packing
# costs about a few hundred tokens' forward and saves ~10%, whatever the model size).
AUTO_MIN_TOKENS = 4096
PREPACK_HELP = (
    "do not pack the linear weights for oneDNN on CPU. Packing is on by default for "
    "fp32 CPU models whose linear weights take under a quarter of physical memory, when the "
    f"texts hold at least {AUTO_MIN_TOKENS} tokens (packing costs about a few hundred tokens' "
    "forward pass): ~10%% faster, same probabilities to 1e-6, one extra copy of those weights "
    "while classifying"
)
MODEL_HELP = "model folder, or Hub repo id USER/NAME (downloaded)"


def _check_positive(instance: object, *names: str) -> None:
    for name in names:
        value = getattr(instance, name)
        if value is not None:
            check(value >= 1, name, value, "be >= 1")


@dataclass(kw_only=True)
class ClassifyArguments:
    """``classify``: which model, where texts come from, how the results are printed."""

    model: str = arg(help=MODEL_HELP)
    input: Path | None = arg(
        None, "file with one text per line ('-' reads stdin); empty lines skipped"
    )
    format: Literal["table", "jsonl"] = arg(
        "table",
        "output: a readable table (default) or one JSON object per line with text, "
        "label, score and the probability of every class",
    )
    batch_size: int = arg(DEFAULT_BATCH_SIZE, "texts per forward pass (default: %(default)s)")
    max_length: int | None = arg(
        None, "truncate texts to this many tokens (default and maximum: the model's context)"
    )
    device: str = arg("cpu", "torch device, e.g. cpu, cuda (default: %(default)s)")
    dtype: Dtype = arg("auto", DTYPE_HELP)
    no_prepack: bool = arg(False, PREPACK_HELP)
    revision: str | None = arg(None, "Hub revision (branch, tag or commit)")
    token: str | None = arg(None, "Hub token for private repos")

    def __post_init__(self) -> None:
        check_choices(self)
        self.model = str(self.model)
        self.input = as_path(self.input)
        _check_positive(self, "batch_size", "max_length")
        check_device(self)

    @property
    def prepack(self) -> Literal["auto"] | bool:
        return False if self.no_prepack else "auto"


@dataclass(kw_only=True)
class GenerateArguments:
    """``generate``: which causal-LM folder and how to continue the prompt."""

    model: str = arg(help="causal-LM model folder, or Hub repo id USER/NAME")
    max_new_tokens: int = arg(25, "tokens to add (default: %(default)s)")
    temperature: float = arg(0.0, "0 = greedy (default); > 0 samples, higher = more random")
    top_k: int | None = arg(None, "sample only among the k likeliest tokens")
    seed: int = arg(123, "random seed for sampling (default: %(default)s)")
    num_samples: int = arg(1, "continuations to print (sampling)")
    device: str = arg("cpu", "torch device (default: %(default)s)")

    def __post_init__(self) -> None:
        self.model = str(self.model)
        _check_positive(self, "max_new_tokens", "top_k", "num_samples")
        check_number(self, "temperature", 0)
        check_number(self, "seed", 0, MAX_SEED)
        check_device(self)


@dataclass(kw_only=True)
class EvaluateArguments(DataArguments):
    """``evaluate``: a classifier folder on a split of data prepared as the trainer does."""

    model: str = arg(help=MODEL_HELP)
    split: Literal["train", "validation", "test", "all"] = arg(
        "test",
        "which split of the prepared data to score; 'all' = every row of the data "
        "(default: %(default)s)",
    )
    errors: int = arg(0, "print the N most confident mistakes (default: none)", metavar="N")
    output_dir: Path | None = arg(
        None,
        "where the PNGs and metrics.json go (default: ./eval-<model name>-<split>)",
    )
    batch_size: int = arg(DEFAULT_BATCH_SIZE, "texts per forward pass (default: %(default)s)")
    device: str = arg("cpu", "torch device (default: %(default)s)")
    dtype: Dtype = arg("auto", DTYPE_HELP)
    no_prepack: bool = arg(False, PREPACK_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model = str(self.model)
        self.output_dir = as_path(self.output_dir)
        check(self.errors >= 0, "errors", self.errors, "be >= 0")
        _check_positive(self, "batch_size")
        check_device(self)

    @property
    def prepack(self) -> Literal["auto"] | bool:
        return False if self.no_prepack else "auto"


# ----------------------------------------------------------------------------- command lines


def build_classify_parser() -> ArgumentParser:
    """The flags of ``scripts/classify.py``; the texts stay positional arguments."""
    parser = ArgumentParser(
        ClassifyArguments,
        prog="classify.py",
        description="Classify texts with a fine-tuned scratchgpt model folder or Hub repo. "
        "Texts come from the arguments, from --input (one text a line) or from stdin.",
    )
    parser.add_argument("texts", nargs="*", help="texts to classify (quote each one)")
    return parser


def build_evaluate_parser() -> ArgumentParser:
    """The flags of ``scripts/evaluate.py`` (the data flags are the trainer's), plus
    ``--config``."""
    return ArgumentParser(
        EvaluateArguments,
        config=True,
        prog="evaluate.py",
        description="Evaluate a fine-tuned classifier folder on a data split: metrics table "
        "(accuracy, per-class precision/recall/F1, confusion matrix), a confusion-matrix PNG, a "
        "precision-recall PNG and metrics.json in --output-dir. The data flags are the "
        "trainer's: pass the same ones (seed, dedupe, balance, fractions) to get its test split.",
    )


def build_generate_parser() -> ArgumentParser:
    """The flags of ``scripts/generate.py``; the prompt stays a positional argument."""
    parser = ArgumentParser(
        GenerateArguments,
        prog="generate.py",
        description="Continue a prompt with a causal-LM model folder (e.g. converted GPT-2 "
        "weights): greedy by default, sampling with --temperature/--top-k.",
    )
    parser.add_argument(
        "prompt", nargs="?", default=DEFAULT_PROMPT, help=f"text to continue ('{DEFAULT_PROMPT}')"
    )
    return parser
