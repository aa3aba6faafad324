"""The data settings shared by ``finetune``, ``prepare_data`` and ``evaluate`` (one dataclass,
the same flags everywhere), and ``prepare_data``'s own."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    super_post_init,
)
from scratchgpt.paths import CACHE_ENV

# The readers' FORMATS (data/sources.py), spelled out so that parsing flags does not import
# ``datasets``; tests/test_data.py checks the two agree.
FileFormat = Literal["auto", "sms", "csv", "tsv", "jsonl"]
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass(kw_only=True)
class DataArguments:
    """Where the labelled text comes from and how it becomes tokenized splits."""

    _argument_group_name = "data"

    data_file: str | None = arg(
        None,
        "local labelled file: SMS format (label<TAB>text, no header; the default for files "
        "without .csv/.tsv/.jsonl), CSV, TSV (no quoting) or JSONL. Default: the SMS Spam "
        "Collection (cache, else the shared copy, else downloaded from UCI)",
        metavar="FILE",
    )
    dataset: str | None = arg(
        None,
        "a Hugging Face Hub dataset id, loaded with datasets.load_dataset (needs network)",
        metavar="HUB_ID",
    )
    dataset_dir: str | None = arg(
        None,
        "a folder written by scripts/prepare_data.py; all other data flags are ignored",
        metavar="DIR",
    )
    dataset_config: str | None = arg(None, "Hub dataset configuration name", metavar="NAME")
    dataset_split: str = arg(
        "train",
        "Hub split(s) to read, e.g. train or train+test; we split it ourselves "
        "(default: %(default)s)",
        metavar="SPLIT",
    )
    format: FileFormat = arg(
        "auto",
        "file format of --data-file; auto goes by extension (default: %(default)s)",
    )
    text_column: str = arg(
        "text", "column holding the text in CSV/TSV/JSONL/Hub data (default: %(default)s)"
    )
    label_column: str = arg(
        "label", "column holding the label, string or integer (default: %(default)s)"
    )
    label_names: str | None = arg(
        None,
        "comma-separated class names, id order; integer labels index them, other labels "
        "must be one of them. Default: ham,spam for SMS files, a Hub ClassLabel's names, else "
        "sorted distinct string labels (or 0..max for integer labels)",
        metavar="A,B,...",
    )
    on_bad_line: Literal["error", "skip"] = arg(
        "error",
        "a malformed line stops with an error naming file:line:value, or is skipped and "
        "counted in the summary (default: %(default)s)",
    )
    balance: Literal["none", "undersample"] = arg(
        "none",
        "undersample every class to the smallest one, as the book does (default: %(default)s)",
    )
    keep_duplicates: bool = arg(
        False,
        "keep exact duplicate texts (the book's behaviour); by default only the first copy "
        "is kept, so no text appears in two splits",
    )
    split_fractions: list[float] = arg(
        list(DEFAULT_FRACTIONS),
        "split fractions, stratified by label; train = int(n*TRAIN), validation = "
        "int(n*VAL), test = the rest (default: 0.7 0.1 0.2)",
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
    )
    max_length: int | None = arg(
        None,
        "truncate messages to N tokens (counted in the summary); default: the model's "
        "context length",
        metavar="N",
    )
    pad_to: Literal["batch", "longest-train", "context"] = arg(
        "batch",
        "batch: pad each batch to its own longest message; longest-train: the book's fixed "
        "padding to the longest training message (validation/test truncated to it); context: "
        "pad to --max-length (default: %(default)s)",
    )
    cache_dir: str | None = arg(
        None,
        f"download and tokenization cache (default: ${CACHE_ENV} or ~/.cache/scratchgpt)",
        metavar="DIR",
    )
    no_cache: bool = arg(False, "tokenize in memory without writing cache files")
    seed: int = arg(123, "seed for undersampling, splitting and batch order (default: %(default)s)")

    def __post_init__(self) -> None:
        check_choices(self)  # every Literal field of the whole dataclass (finetune's too)
        sources = [f"--{n.replace('_', '-')}" for n in self._source_fields() if getattr(self, n)]
        if len(sources) > 1:
            raise ValueError(f"{' and '.join(sources)} are alternatives: pass one")
        check(
            len(self.split_fractions) == 3,
            "split_fractions",
            self.split_fractions,
            "be three numbers TRAIN VAL TEST",
        )
        self.split_fractions = [float(f) for f in self.split_fractions]
        train, val = self.split_fractions[:2]
        check(
            all(0 < f < 1 for f in self.split_fractions) and train + val < 1,
            "split_fractions",
            self.split_fractions,
            "be three fractions in (0, 1), TRAIN + VAL below 1 (TEST gets the rest)",
        )
        if self.max_length is not None:
            check(self.max_length >= 1, "max_length", self.max_length, "be >= 1")
        check_number(self, "seed", 0, MAX_SEED)
        check_input_path(self, "data_file", "file")
        check_input_path(self, "dataset_dir", "folder")
        for name in ("data_file", "dataset_dir", "cache_dir"):
            value = getattr(self, name)
            if isinstance(value, Path):
                setattr(self, name, str(value))
        super_post_init(self, DataArguments)

    def _source_fields(self) -> tuple[str, ...]:
        return ("data_file", "dataset", "dataset_dir")


@dataclass(kw_only=True)
class PrepareDataArguments(DataArguments):
    """``prepare_data``: read, split, tokenize and save (no prepared folder as input)."""

    output_dir: str = arg(
        help="where to write the DatasetDict (written to a temp folder, then renamed)",
        metavar="DIR",
    )
    overwrite: bool = arg(False, "replace --output-dir if it exists")
    model: str = arg(
        "gpt2-small",
        "model folder (its vocab.json/merges.txt and context length) or a preset name "
        "gpt2-small|medium|large|xl (GPT-2's vocabulary, context 1024) (default: %(default)s)",
        metavar="FOLDER_OR_PRESET",
    )
    # Not an input of prepare_data: it writes such folders.
    dataset_dir: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_output_name(self, "output_dir")
        self.output_dir = str(as_path(self.output_dir))
        self.model = str(self.model)

    def _source_fields(self) -> tuple[str, ...]:
        return ("data_file", "dataset")


def build_prepare_parser() -> ArgumentParser:
    """The flags of ``scripts/prepare_data.py`` (plus ``--config``)."""
    return ArgumentParser(
        PrepareDataArguments,
        config=True,
        prog="prepare_data.py",
        description="Read labelled text, split it (stratified) into train/validation/test, "
        "tokenize it with a model folder's vocabulary and save it with save_to_disk.",
    )
