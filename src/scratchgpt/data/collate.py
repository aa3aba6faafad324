"""Batching without waste: per-batch right padding and length-grouped batch order.

SMS messages average ~23 tokens; the book pads every one to the longest training message
(~120). Padding each batch only to its own longest message, and putting messages of similar
length in the same batch, removes most of that padding. Right padding keeps GPT-2's position
ids of the real tokens unchanged, and the classifier pools the last real token (by
``attention_mask``), so padding does not change a message's logits.

- ``ClassificationCollator``: features with ``input_ids`` (and ``label``) -> ``input_ids``,
  ``attention_mask``, ``labels`` tensors.
- ``LengthGroupedBatchSampler``: seeded, shuffled buckets of similar length for training;
  works as a ``DataLoader(batch_sampler=...)`` under ``accelerate``'s ``prepare``.
- ``SortedBatchSampler``: longest-first order for evaluation and inference.
- ``make_dataloader``: a ``DataLoader`` over a tokenized split with the right pieces.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|>, also the model config's pad_token_id


def right_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to ``width`` (default: the longest): ``(input_ids,
    attention_mask)``, both (B, T). The one padding routine of training, caching and inference."""
    width = width if width is not None else max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


@dataclass
class ClassificationCollator:
    """Right-pads a batch to its longest message (or a fixed ``pad_to_length``).

    ``pad_to_multiple_of`` rounds the padded length up (tensor-core friendly shapes).
    Only ``input_ids`` and ``label``/``labels`` are read; other columns are ignored.
    """

    pad_token_id: int = PAD_TOKEN_ID
    pad_to_multiple_of: int | None = None
    pad_to_length: int | None = None

    def __post_init__(self) -> None:
        for name in ("pad_to_multiple_of", "pad_to_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {value}")

    def padded_length(self, longest: int) -> int:
        """The batch's padded length for its longest message."""
        if self.pad_to_length is not None:
            if longest > self.pad_to_length:
                raise ValueError(
                    f"a message of {longest} tokens exceeds pad_to_length={self.pad_to_length}; "
                    "prepare the data with --max-length or --pad-to longest-train"
                )
            return self.pad_to_length
        if self.pad_to_multiple_of:
            return math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of
        return longest

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        sequences = [list(f["input_ids"]) for f in features]
        empty = [i for i, seq in enumerate(sequences) if not seq]
        if empty:
            raise ValueError(f"batch positions {empty} have no input_ids (empty message)")
        width = self.padded_length(max(len(seq) for seq in sequences))
        input_ids, attention_mask = right_pad(sequences, self.pad_token_id, width)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        labels = _labels(features)
        if labels is not None:
            batch["labels"] = labels
        return batch


def _labels(features: Sequence[Mapping[str, Any]]) -> torch.Tensor | None:
    key = "labels" if "labels" in features[0] else "label" if "label" in features[0] else None
    if key is None:
        return None
    missing = [i for i, f in enumerate(features) if key not in f]
    if missing:
        raise ValueError(f"batch positions {missing} lack the {key!r} that the others have")
    return torch.tensor([int(f[key]) for f in features], dtype=torch.long)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Training batches of similar-length messages, in a seeded random order.

    Each epoch: shuffle all indices (seed, epoch), cut them into buckets of
    ``batch_size * bucket_batches``, sort each bucket by length, cut batches, shuffle the
    batches. Same seed and epoch -> same batches, on every process (no global RNG). The epoch
    advances after each full pass and can be set with ``set_epoch`` (accelerate calls it).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int = 123,
        bucket_batches: int = 50,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError(f"batch_size {batch_size}, bucket_batches {bucket_batches}: need >= 1")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size  # accelerate reads these two attributes when sharding
        self.drop_last = drop_last
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.epoch = 0
        # accelerate, when sharding over processes, wraps this object and forwards
        # ``set_epoch`` only to ``.sampler``: expose the index order there.
        self.sampler = _EpochIndices(self)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches, computed without touching ``self.epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        bucket_size = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), bucket_size):
            bucket = order[start : start + bucket_size]
            bucket = bucket[np.argsort(self.lengths[bucket], kind="stable")]
            batches += [
                bucket[i : i + self.batch_size] for i in range(0, len(bucket), self.batch_size)
            ]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return [batches[i].tolist() for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)
        self.epoch += 1

    def __len__(self) -> int:
        full_buckets, rest = divmod(len(self.lengths), self.batch_size * self.bucket_batches)
        last = rest // self.batch_size if self.drop_last else math.ceil(rest / self.batch_size)
        return full_buckets * self.bucket_batches + last


class _EpochIndices(Sampler[int]):
    """The indices of the owner's current epoch, batch after batch; ``set_epoch`` forwards."""

    def __init__(self, owner: LengthGroupedBatchSampler) -> None:
        self.owner = owner

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return (i for batch in self.owner.batches(self.owner.epoch) for i in batch)

    def __len__(self) -> int:
        return len(self.owner.lengths)


class SortedBatchSampler(Sampler[list[int]]):
    """Longest-first batches for evaluation/inference: least padding, memory peak up front."""

    def __init__(self, lengths: Sequence[int], batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.drop_last = False
        order = np.argsort(-np.asarray(lengths), kind="stable").tolist()
        self._batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches

    def __len__(self) -> int:
        return len(self._batches)


def make_dataloader(
    split: Any,
    batch_size: int,
    *,
    train: bool,
    seed: int = 123,
    collator: ClassificationCollator | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over a tokenized split (needs ``input_ids``, ``length``, ``label``)."""
    lengths = split["length"]
    sampler: Sampler[list[int]] = (
        LengthGroupedBatchSampler(lengths, batch_size, seed=seed)
        if train
        else SortedBatchSampler(lengths, batch_size)
    )
    return DataLoader(
        split.select_columns(["input_ids", "label"]),
        batch_sampler=sampler,
        collate_fn=collator or ClassificationCollator(),
        num_workers=num_workers,
    )
