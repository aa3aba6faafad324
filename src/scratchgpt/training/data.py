"""The trainer's side of the data: which folder tokenizes, and how splits become batches.

Reading, splitting and tokenizing live in ``scratchgpt.data.prepare``; padding and the seeded
length-grouped order in ``scratchgpt.data.collate``. This module only wires them to a model
source and to the two kinds of items the trainer batches (token ids, or cached states).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from accelerate import PartialState
from torch.utils.data import DataLoader, Dataset, Subset

from scratchgpt.data.collate import (
    ClassificationCollator,
    LengthGroupedBatchSampler,
    SortedBatchSampler,
)
from scratchgpt.data.prepare import (
    PreparedData,
    prepare_from_args,
    resolve_model_source,
)
from scratchgpt.folder import check_model_folder
from scratchgpt.training.arguments import FinetuneArguments

__all__ = [
    "load_data",
    "make_eval_loader",
    "make_train_loader",
    "token_collator",
]


def model_source(args: FinetuneArguments) -> str | Path:
    """``--model`` as a folder: presets with ``--init pretrained`` are downloaded/converted once."""
    from scratchgpt_modeling.configuration_scratchgpt import PRESETS

    if args.model in PRESETS and args.init == "pretrained":
        from scratchgpt.download import DownloadError
        from scratchgpt.weights.convert import ensure_pretrained_folder

        try:
            return ensure_pretrained_folder(args.model)
        except DownloadError as err:
            raise DownloadError(
                f"could not fetch OpenAI's {args.model} weights for --init pretrained ({err}). "
                f"Train from random weights with --init random, or pass a converted model "
                "folder with --model FOLDER (scripts/convert_openai_checkpoint.py writes one)"
            ) from err
    return args.model


def load_data(args: FinetuneArguments) -> tuple[PreparedData, Path, str | Path]:
    """Tokenized splits with the model's own vocabulary; also returns the tokenizer folder
    (copied into the output folder) and the resolved model source."""
    source = model_source(args)
    if args.init == "pretrained" and Path(source).is_dir():
        # Headers only, before the data is read: a damaged folder is named in milliseconds.
        check_model_folder(source, new_head=True, pooling=args.pooling)
    tokenizer_folder, context_length = resolve_model_source(source)
    prepared = prepare_from_args(args, tokenizer_folder, context_length)
    if note := prepared.summary.skipped_note():
        PartialState().print(note, file=sys.stderr)  # once, from the main process
    return prepared, tokenizer_folder, source


def token_collator(pad_token_id: int, pad_length: int | None = None) -> Callable:
    """Right padding to the batch's longest message (or ``pad_length``) with a mask."""
    return ClassificationCollator(pad_token_id=pad_token_id, pad_to_length=pad_length)


def _loader_generator(seed: int) -> torch.Generator:
    # Its own generator: creating a loader iterator then draws nothing from the global RNG,
    # so dropout draws after a resume match the uninterrupted run's.
    return torch.Generator().manual_seed(seed)


def make_train_loader(
    dataset: Dataset, lengths: Sequence[int], batch_size: int, seed: int, collate: Callable
) -> DataLoader:
    """Length-grouped, seeded batches: a new order each epoch (``set_epoch``), same on resume."""
    sampler = LengthGroupedBatchSampler(list(lengths), batch_size, seed=seed)
    return DataLoader(
        _model_columns(dataset),
        batch_sampler=sampler,
        collate_fn=collate,
        generator=_loader_generator(seed),
    )


def make_eval_loader(
    dataset: Dataset,
    batch_size: int,
    collate: Callable,
    limit: int | None = None,
    lengths: Sequence[int] | None = None,
) -> DataLoader:
    """Dataset order, so "the first 5 batches" are the same examples at every evaluation;
    ``limit`` keeps only the first ``limit`` examples. With ``lengths``, batches of similar
    length instead (longest first): scoring a whole split then pads almost nothing."""
    dataset = _model_columns(dataset)
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    if lengths is not None:
        return DataLoader(
            dataset,
            batch_sampler=SortedBatchSampler(list(lengths), batch_size),
            collate_fn=collate,
            generator=_loader_generator(0),
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate,
        generator=_loader_generator(0),
    )


def _model_columns(dataset: Dataset) -> Dataset:
    """Only what the collator reads: decoding ``text`` for every item would be wasted work."""
    select = getattr(dataset, "select_columns", None)
    return select(["input_ids", "label"]) if select is not None else dataset
