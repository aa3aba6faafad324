"""Settings of ``convert`` (``scripts/convert_openai_checkpoint.py``)."""

from __future__ import annotations

import re
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
    check_input_path,
    check_number,
    check_output_name,
)
from scratchgpt.paths import CACHE_ENV, DEFAULT_MAX_SHARD_SIZE

SANITY_PROMPT = "Every effort moves you"
# What save_pretrained's max_shard_size takes: bytes, or a number with a unit.
SHARD_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)?", re.IGNORECASE)


def comma_list(text: str | list[str]) -> list[str]:
    """``"ham, spam"`` -> ``["ham", "spam"]`` (a list passes through, cleaned)."""
    names = text.split(",") if isinstance(text, str) else text
    return [name.strip() for name in names if name.strip()]


@dataclass(kw_only=True)
class ConvertArguments:
    """Which weights to read (or download), and what model folder to write from them."""

    model_size: Literal["124M", "355M", "774M", "1558M"] | None = arg(
        None,
        "OpenAI release to download (required with --download); otherwise checked against "
        "the input's dimensions",
    )
    download: bool = arg(
        False,
        "fetch OpenAI's files for --model-size into --checkpoint-dir first (resumes and "
        "skips complete files)",
    )
    checkpoint_dir: Path | None = arg(
        None,
        "the input: an OpenAI checkpoint folder, a transformers GPT-2 folder or a book .pth "
        f"file; with --download, where the files go (default ${CACHE_ENV}/openai/SIZE)",
        metavar="PATH",
    )
    output_dir: Path = arg(help="model folder to write (replaced if present)", metavar="DIR")
    source_format: Literal["openai", "hf", "book"] | None = arg(
        None, "input format (default: detected from the files)", flags=["--from"]
    )
    num_labels: int | None = arg(
        None,
        "write a sequence-classification folder with a new seeded head of N labels (a "
        "fine-tuned classifier input keeps its own head; N must then match it)",
        metavar="N",
    )
    labels: list[str] | None = arg(
        None,
        "like --num-labels, naming the labels in id order, e.g. ham,spam",
        metavar="A,B,...",
        type=comma_list,
        nargs=None,
    )
    n_heads: int | None = arg(
        None, "attention heads of a book state_dict whose width is not an OpenAI size", metavar="N"
    )
    tokenizer_dir: Path | None = arg(
        None,
        "folder with vocab.json+merges.txt, tokenizer.json or encoder.json+vocab.bpe "
        "(default: the input's own files, else the shared GPT-2 BPE files)",
        metavar="DIR",
    )
    seed: int = arg(123, "seed of a new classification head (default: %(default)s)")
    max_shard_size: str = arg(
        DEFAULT_MAX_SHARD_SIZE,
        "largest safetensors file before the weights are split into shards with an index "
        "(default: %(default)s)",
    )
    no_sample: bool = arg(False, "skip the greedy generation sanity check")

    def __post_init__(self) -> None:
        check_choices(self)
        check_output_name(self, "output_dir")
        self.output_dir = as_path(self.output_dir)
        self.checkpoint_dir = as_path(self.checkpoint_dir)
        self.tokenizer_dir = as_path(self.tokenizer_dir)
        if self.labels is not None:
            self.labels = comma_list(self.labels)
        if self.labels is not None and self.num_labels is not None:
            raise ValueError("--num-labels and --labels are alternatives: pass one")
        if self.num_labels is not None:
            check(self.num_labels >= 1, "num_labels", self.num_labels, "be >= 1")
        check_number(self, "seed", 0, MAX_SEED)
        if self.n_heads is not None:
            check(self.n_heads >= 1, "n_heads", self.n_heads, "be >= 1")
        if not self.download:
            check_input_path(self, "checkpoint_dir", "any")
        check_input_path(self, "tokenizer_dir", "folder")
        check(
            bool(SHARD_SIZE.fullmatch(str(self.max_shard_size).strip())),
            "max_shard_size",
            self.max_shard_size,
            "be a size such as 2GB, 500MB or a number of bytes",
        )


def build_convert_parser() -> ArgumentParser:
    """The flags of ``scripts/convert_openai_checkpoint.py``."""
    return ArgumentParser(
        ConvertArguments,
        prog="convert_openai_checkpoint.py",
        description="Convert GPT-2 weights (OpenAI TensorFlow checkpoint, transformers GPT-2 "
        "folder, or the book's GPTModel state_dict) into a scratchgpt model folder, then print a "
        f"greedy continuation of {SANITY_PROMPT!r} as a sanity check.",
    )
