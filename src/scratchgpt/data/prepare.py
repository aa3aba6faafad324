"""The data pipeline: labelled text -> a tokenized ``datasets.DatasetDict`` (train / validation /
test).

Reading (SMS / CSV / TSV / JSONL files, Hub datasets, the SMS download, per-line validation)
lives in ``scratchgpt.data.sources``; this module builds on its ``text`` + ``label`` (ClassLabel)
dataset: drop exact duplicate texts (default) -> optionally undersample to the smallest class ->
stratified split -> tokenize with the model folder's vocabulary (``Dataset.map(batched=True)``,
cached) -> ``input_ids``, ``label``, ``length``, ``truncated``, ``text``.

Public API (``finetune.py`` reuses the same flags):
- ``DataArguments`` (the flags); ``prepare_from_args(args, tokenizer_folder, max_length)``
  -> ``PreparedData`` (``.dataset``, ``.label_names``, ``.summary``, ``.pad_length``,
  ``.id2label``);
- ``resolve_model_source(model) -> (tokenizer_folder, context_length)``;
- ``save_prepared(prepared, output_dir)`` /
  ``load_prepared(dataset_dir, tokenizer_folder=None, context_length=None)``;
- ``prepare_data(PrepareDataArguments)``, and ``main(argv)``: ``scripts/prepare_data.py``.
The reading API (``DataError``, ``BadLinePolicy``, ``read_labelled_file``, ...) lives in
``scratchgpt.data.sources``; batching (collator, samplers) in ``scratchgpt.data.collate``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, load_from_disk

from scratchgpt.data.arguments import DEFAULT_FRACTIONS, DataArguments, PrepareDataArguments
from scratchgpt.data.sources import (
    BadLinePolicy,
    DataError,
    DataWarning,
    read_hub_dataset,
    read_labelled_file,
    sms_spam_path,
)
from scratchgpt.files import atomic_dir, atomic_write, check_output_dir, tree_size
from scratchgpt.paths import cache_dir as default_cache_dir
from scratchgpt.paths import gpt2_bpe_dir
from scratchgpt.tokenizer import find_bpe_files, load_tiktoken

__all__ = [
    "DataSummary",
    "PreparedData",
    "SplitStats",
    "TokenizeBatch",
    "DataArguments",
    "PrepareDataArguments",
    "build_prepared",
    "drop_duplicates",
    "length_stats",
    "load_prepared",
    "load_source",
    "prepare_data",
    "prepare_from_args",
    "resolve_model_source",
    "save_prepared",
    "split_sizes",
    "stratified_split",
    "tokenize_split",
    "undersample",
    "vocab_fingerprint",
]

PREPARED_META = "scratchgpt_data.json"
SPLITS = ("train", "validation", "test")


# ----------------------------------------------------------------------------- splitting


@dataclass
class SplitStats:
    """What the dedupe/balance steps removed (reported, never silent)."""

    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0
    undersampled_away: int = 0


def drop_duplicates(dataset: Dataset, stats: SplitStats) -> Dataset:
    """Keep the first occurrence of each exact text, so no text lands in two splits."""
    first_label: dict[str, int] = {}
    keep = []
    for index, (text, label) in enumerate(zip(dataset["text"], dataset["label"], strict=True)):
        if text not in first_label:
            first_label[text] = label
            keep.append(index)
        elif first_label[text] != label:
            stats.conflicting_duplicates += 1
    stats.duplicates_dropped = len(dataset) - len(keep)
    return dataset.select(keep)


def undersample(dataset: Dataset, seed: int, stats: SplitStats) -> Dataset:
    """Randomly keep as many rows of every class as the smallest class has (the book's balance)."""
    labels = np.asarray(dataset["label"])
    counts = np.bincount(labels, minlength=dataset.features["label"].num_classes)
    present = counts[counts > 0]
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(labels == label), size=present.min(), replace=False)
        for label in np.flatnonzero(counts)
    ]
    indices = np.sort(np.concatenate(keep))
    stats.undersampled_away = len(dataset) - len(indices)
    return dataset.select(indices.tolist())


def split_sizes(n_rows: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """The book's arithmetic: train = int(n * f0), validation = int(n * f1), test = the rest."""
    if len(fractions) != 3 or any(not 0 < f < 1 for f in fractions):
        raise DataError(f"split fractions must be three numbers in (0, 1), got {list(fractions)}")
    if abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions must sum to 1, got {list(fractions)} = {sum(fractions)}")
    n_train, n_val = int(n_rows * fractions[0]), int(n_rows * fractions[1])
    sizes = (n_train, n_val, n_rows - n_train - n_val)
    for name, size, fraction in zip(SPLITS, sizes, fractions, strict=True):
        if size == 0:
            raise DataError(
                f"split {name!r} would be empty: {n_rows} rows x {fraction} after filtering"
            )
    return sizes


def stratified_split(
    dataset: Dataset, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 123
) -> DatasetDict:
    """Train/validation/test with the same label mix in each (``stratify_by_column``)."""
    _, n_val, n_test = split_sizes(len(dataset), fractions)
    try:
        rest_test = dataset.train_test_split(
            test_size=n_test, stratify_by_column="label", seed=seed
        )
        train_val = rest_test["train"].train_test_split(
            test_size=n_val, stratify_by_column="label", seed=seed
        )
    except ValueError as err:
        counts = dict(Counter(dataset.features["label"].int2str(dataset["label"])))
        raise DataError(
            f"cannot split {len(dataset)} rows {counts} by label: {err} Add rows of the rarest "
            "classes or remove them from the data"
        ) from None
    return DatasetDict(
        train=train_val["train"], validation=train_val["test"], test=rest_test["test"]
    )


# ----------------------------------------------------------------------------- tokenizing


class TokenizeBatch:
    """``Dataset.map`` function: tiktoken ids, right-truncated to ``max_length``.

    A small picklable object (the folder, not the Encoding) so ``datasets`` can hash it.
    ``<|endoftext|>`` written in a text maps to its special id, as the transformers tokenizer
    does, so training ids equal inference ids.
    """

    def __init__(self, tokenizer_folder: str | Path, max_length: int) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.tokenizer_folder = str(tokenizer_folder)
        self.max_length = max_length

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        encoding = load_tiktoken(self.tokenizer_folder)
        ids = encoding.encode_batch(batch["text"], allowed_special="all")
        return {
            "input_ids": [seq[: self.max_length] for seq in ids],
            "length": [min(len(seq), self.max_length) for seq in ids],
            "truncated": [len(seq) > self.max_length for seq in ids],
        }


def vocab_fingerprint(tokenizer_folder: str | Path) -> str:
    """sha256 of the vocabulary's content (token -> id), not of the file's bytes: a folder
    whose vocab.json differs only in JSON layout or key order tokenizes identically."""
    vocab_file, _ = find_bpe_files(tokenizer_folder)
    resolved = vocab_file.resolve()
    return _vocab_fingerprint_cached(str(resolved), resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _vocab_fingerprint_cached(vocab_file: str, mtime_ns: int) -> str:
    vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8-sig"))
    canonical = json.dumps(vocab, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _content_key(dataset: Dataset, *parts: object) -> str:
    """A cache key from the rows themselves plus settings (in-memory fingerprints are random)."""
    digest = hashlib.sha256(repr(parts).encode())
    for text, label in zip(dataset["text"], dataset["label"], strict=True):
        digest.update(f"{label}\x00{text}\x01".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def tokenize_split(
    dataset: Dataset, tokenizer_folder: Path, max_length: int, cache_dir: Path | None, desc: str
) -> Dataset:
    """Tokenize one split through ``Dataset.map(batched=True)``, cached under ``cache_dir``."""
    key = _content_key(dataset, vocab_fingerprint(tokenizer_folder), max_length, "v1")
    cache_file = None
    if cache_dir is not None:
        (cache_dir / "tokenized").mkdir(parents=True, exist_ok=True)
        cache_file = str(cache_dir / "tokenized" / f"{key}.arrow")
    return dataset.map(
        TokenizeBatch(tokenizer_folder, max_length),
        batched=True,
        batch_size=1000,
        cache_file_name=cache_file,
        new_fingerprint=key,
        desc=f"Tokenizing {desc}",
    )


# ----------------------------------------------------------------------------- summary


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    values = np.asarray(lengths)
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 2),
        "p95": float(np.percentile(values, 95)),
        "max": int(values.max()),
    }


@dataclass
class DataSummary:
    """Everything a user should see about the prepared data (printed and saved as JSON)."""

    source: str
    label_names: list[str]
    rows_read: int
    max_length: int
    pad_to: str
    pad_length: int | None
    stats: SplitStats
    vocab_sha256: str = ""
    bad_lines: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    token_lengths: dict[str, dict[str, float]] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSummary:
        return cls(**{**data, "stats": SplitStats(**data["stats"])})

    def _table_rows(self) -> list[list[str]]:
        header = ["split", "rows", *self.label_names, "min", "median", "p95", "max", "truncated"]
        rows = [header]
        for split, counts in self.rows.items():
            stats = self.token_lengths[split]
            rows.append(
                [split, str(sum(counts.values()))]
                + [str(counts[name]) for name in self.label_names]
                + [f"{stats[key]:g}" for key in ("min", "median", "p95", "max")]
                + [str(self.truncated[split])]
            )
        return rows

    def skipped_note(self, shown: int = 3) -> str:
        """One line for the console when ``--on-bad-line skip`` dropped lines: how many, and
        the first ``shown`` of them (file:line: reason: value); ``""`` when none were."""
        if not self.bad_lines:
            return ""
        count = len(self.bad_lines)
        more = f"; and {count - shown} more" if count > shown else ""
        return (
            f"skipped {count} bad line{'s' if count > 1 else ''} (--on-bad-line skip): "
            + "; ".join(self.bad_lines[:shown])
            + more
        )

    def format(self, max_bad_lines: int = 10) -> str:
        """Human-readable summary; token lengths are in tokens after truncation."""
        lines = [
            f"source: {self.source}  ({self.rows_read} rows read, "
            f"{len(self.bad_lines)} bad lines skipped)",
            f"duplicates dropped: {self.stats.duplicates_dropped} "
            f"({self.stats.conflicting_duplicates} with a different label); "
            f"undersampled away: {self.stats.undersampled_away}",
            f"max length: {self.max_length} tokens; padding: {self.pad_to}"
            + (f" ({self.pad_length} tokens)" if self.pad_length else ""),
        ]
        lines += _table(self._table_rows())
        lines += [f"  skipped {bad}" for bad in self.bad_lines[:max_bad_lines]]
        if len(self.bad_lines) > max_bad_lines:
            lines.append(f"  ... and {len(self.bad_lines) - max_bad_lines} more bad lines")
        return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _fill_split_summary(summary: DataSummary, dataset: DatasetDict) -> None:
    for split, part in dataset.items():
        counts = Counter(part["label"])
        summary.rows[split] = {n: counts.get(i, 0) for i, n in enumerate(summary.label_names)}
        summary.token_lengths[split] = length_stats(part["length"])
        summary.truncated[split] = int(sum(part["truncated"]))


# ----------------------------------------------------------------------------- preparing


@dataclass
class PreparedData:
    """The tokenized splits plus what training needs to know about them."""

    dataset: DatasetDict
    label_names: list[str]
    summary: DataSummary

    @property
    def pad_length(self) -> int | None:
        """Fixed padding length (``--pad-to longest-train|context``), None for per-batch."""
        return self.summary.pad_length

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))


def build_prepared(
    raw: Dataset,
    source: str,
    policy: BadLinePolicy,
    *,
    tokenizer_folder: str | Path,
    max_length: int,
    dedupe: bool = True,
    balance: str = "none",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 123,
    pad_to: str = "batch",
    cache_dir: Path | None = None,
    training: bool = True,
) -> PreparedData:
    """Dedupe -> balance -> stratified split -> check classes -> tokenize -> summary.

    ``training``: a training split with fewer than two classes is an error (``DataError``
    naming the counts), as nothing can be learnt from it; off (evaluation), it is a warning.
    """
    names = raw.features["label"].names
    stats = SplitStats()
    data = drop_duplicates(raw, stats) if dedupe else raw
    data = undersample(data, seed, stats) if balance == "undersample" else data
    splits = stratified_split(data, fractions, seed)
    check_classes(splits, list(names), source, training)
    folder = Path(tokenizer_folder)
    tokenized = DatasetDict(
        {s: tokenize_split(part, folder, max_length, cache_dir, s) for s, part in splits.items()}
    )
    pad_length = _fixed_pad_length(pad_to, tokenized, max_length)
    if pad_length is not None and pad_length < max_length:
        # The book truncates validation/test to the longest training message; so do we here.
        for split in ("validation", "test"):
            tokenized[split] = tokenize_split(splits[split], folder, pad_length, cache_dir, split)
    summary = DataSummary(source, list(names), len(raw), max_length, pad_to, pad_length, stats)
    summary.vocab_sha256 = vocab_fingerprint(folder)
    summary.bad_lines = [str(bad) for bad in policy.skipped]
    _fill_split_summary(summary, tokenized)
    return PreparedData(tokenized, list(names), summary)


def check_classes(
    splits: dict[str, Dataset], names: list[str], source: str, training: bool = True
) -> None:
    """A training split needs rows of at least two classes; a class missing from a split is
    worth a warning (its scores there mean nothing). Both name the counts per split."""
    counts = {split: Counter(part["label"]) for split, part in splits.items()}
    table = "; ".join(
        f"{split}: " + ", ".join(f"{name} {found.get(i, 0)}" for i, name in enumerate(names))
        for split, found in counts.items()
    )
    present = [name for i, name in enumerate(names) if counts["train"].get(i, 0)]
    if len(present) < 2:
        message = (
            f"{source}: the training split has rows of {len(present)} class(es) "
            f"{present} ({table}); a classifier needs at least two: check --label-column "
            "and the data file"
        )
        if training:
            raise DataError(message)
        warnings.warn(message, DataWarning, stacklevel=3)
        return
    missing = [
        f"{name!r} in {split}"
        for split, found in counts.items()
        for i, name in enumerate(names)
        if not found.get(i, 0)
    ]
    if missing:
        warnings.warn(
            f"{source}: no rows of {', '.join(missing)} ({table}); those scores will be "
            "empty: add rows of that class or change --split-fractions",
            DataWarning,
            stacklevel=3,
        )


def _fixed_pad_length(pad_to: str, tokenized: DatasetDict, max_length: int) -> int | None:
    if pad_to == "batch":
        return None
    if pad_to == "context":
        return max_length
    if pad_to == "longest-train":
        return int(max(tokenized["train"]["length"]))
    raise ValueError(f"pad_to must be batch, longest-train or context, got {pad_to!r}")


def load_source(args: DataArguments, policy: BadLinePolicy) -> tuple[Dataset, str]:
    """The raw ``text``/``label`` dataset named by ``--data-file`` / ``--dataset`` / default SMS."""
    names = [n.strip() for n in args.label_names.split(",")] if args.label_names else None
    columns = {"text_column": args.text_column, "label_column": args.label_column}
    if args.dataset:
        raw, _ = read_hub_dataset(
            args.dataset,
            config=args.dataset_config,
            split=args.dataset_split,
            label_names=names,
            policy=policy,
            **columns,
        )
        return raw, f"{args.dataset}[{args.dataset_split}]"
    if args.data_file and not Path(args.data_file).exists():  # a device or a pipe is fine
        raise DataError(f"--data-file {args.data_file}: no such file")
    path = Path(args.data_file) if args.data_file else sms_spam_path(_cache_dir(args))
    raw, _ = read_labelled_file(
        path, file_format=args.format, label_names=names, policy=policy, **columns
    )
    return raw, str(path)


def _cache_dir(args: DataArguments) -> Path | None:
    if args.no_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def prepare_from_args(
    args: DataArguments, tokenizer_folder: str | Path, max_length: int, training: bool = True
) -> PreparedData:
    """The single entry for scripts: ``max_length`` is the model's context length.

    With ``--dataset-dir`` the prepared data is loaded and checked against the tokenizer.
    """
    if args.max_length is not None and not 1 <= args.max_length <= max_length:
        raise DataError(f"--max-length {args.max_length} must be in 1..{max_length} (context)")
    length = args.max_length or max_length
    if args.dataset_dir:
        return load_prepared(args.dataset_dir, tokenizer_folder, max_length)
    policy = BadLinePolicy(args.on_bad_line)
    raw, source = load_source(args, policy)
    return build_prepared(
        raw,
        source,
        policy,
        tokenizer_folder=tokenizer_folder,
        max_length=length,
        dedupe=not args.keep_duplicates,
        balance=args.balance,
        fractions=args.split_fractions,
        seed=args.seed,
        pad_to=args.pad_to,
        cache_dir=_cache_dir(args),
        training=training,
    )


def resolve_model_source(model: str | Path) -> tuple[Path, int]:
    """``(tokenizer folder, context length)`` for a model folder or a preset name."""
    folder = Path(model)
    if folder.is_dir():
        return folder, _folder_context_length(folder)
    from scratchgpt_modeling.configuration_scratchgpt import (
        PRESETS,
        SCRATCH_PRESETS,
        ScratchGPTConfig,
    )

    shapes = [*PRESETS, *SCRATCH_PRESETS]  # every shape has GPT-2's vocabulary
    if str(model) not in shapes:
        raise DataError(f"--model {model!r} is neither a folder nor a preset {shapes}")
    return gpt2_bpe_dir(), ScratchGPTConfig.from_preset(str(model)).context_length


def _folder_context_length(folder: Path) -> int:
    # config.json of our model folders, of HF GPT-2 folders, or OpenAI's hparams.json.
    keys = ("context_length", "max_position_embeddings", "n_positions", "n_ctx")
    for name in ("config.json", "hparams.json"):
        if (folder / name).is_file():
            config = json.loads((folder / name).read_text(encoding="utf-8-sig"))
            for key in keys:
                if isinstance(config.get(key), int):
                    return config[key]
            raise DataError(f"{folder / name}: none of {list(keys)} gives the context length")
    raise DataError(f"{folder}: no config.json or hparams.json to read the context length from")


def save_prepared(prepared: PreparedData, output_dir: str | Path, overwrite: bool = False) -> Path:
    """``save_to_disk`` plus ``scratchgpt_data.json``, written to a temp sibling then renamed."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise DataError(f"{output_dir} already exists (pass --overwrite to replace it)")
    with atomic_dir(output_dir) as tmp:  # the old folder stays until the new one is whole
        prepared.dataset.save_to_disk(str(tmp))
        meta = {"label_names": prepared.label_names, "summary": prepared.summary.to_dict()}
        atomic_write(tmp / PREPARED_META, json.dumps(meta, indent=2))
    return output_dir


def load_prepared(
    dataset_dir: str | Path,
    tokenizer_folder: str | Path | None = None,
    context_length: int | None = None,
) -> PreparedData:
    """Load what ``save_prepared`` wrote; check it fits the model's vocabulary and context."""
    dataset_dir = Path(dataset_dir)
    meta_file = dataset_dir / PREPARED_META
    if not meta_file.is_file():
        raise DataError(f"{dataset_dir}: not a prepared data folder (no {PREPARED_META})")
    meta = json.loads(meta_file.read_text(encoding="utf-8-sig"))
    summary = DataSummary.from_dict(meta["summary"])
    if context_length is not None and summary.max_length > context_length:
        raise DataError(
            f"{dataset_dir}: prepared with max length {summary.max_length}, "
            f"longer than the model's context length {context_length}"
        )
    if tokenizer_folder is not None:
        vocab_sha256 = vocab_fingerprint(tokenizer_folder)
        if summary.vocab_sha256 != vocab_sha256:
            raise DataError(
                f"{dataset_dir}: tokenized with another vocabulary (sha256 "
                f"{summary.vocab_sha256 or 'unknown'}) than {tokenizer_folder} ({vocab_sha256})"
            )
    dataset = load_from_disk(str(dataset_dir))
    return PreparedData(dataset, meta["label_names"], summary)


# ----------------------------------------------------------------------------- command


def prepare_data(args: PrepareDataArguments) -> PreparedData:
    """``prepare_data``: read, split, tokenize and save as ``args`` says; returns the data
    (its ``.summary`` says what happened). Raises ``DataError`` on bad input."""
    # Before any reading or tokenizing; token ids (int64) take about 4x the text's bytes.
    need = 4 * tree_size(args.data_file) if args.data_file else 0
    check_output_dir(args.output_dir, "--output-dir", need, replaces=PREPARED_META)
    if Path(args.output_dir).exists() and not args.overwrite:
        raise DataError(f"{args.output_dir} already exists (pass --overwrite to replace it)")
    tokenizer_folder, context_length = resolve_model_source(args.model)
    prepared = prepare_from_args(args, tokenizer_folder, context_length)
    save_prepared(prepared, args.output_dir, overwrite=args.overwrite)
    return prepared
