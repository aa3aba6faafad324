"""Labelled text -> a tokenized ``datasets.DatasetDict`` (train / validation / test).

Sources: the SMS Spam Collection (UCI zip, downloaded and cached, or ``--data-file``), any local
CSV / TSV / JSONL file with configurable text and label columns, or a Hub dataset id.

Pipeline (every step a ``datasets`` operation on a ``text`` + ``label`` (ClassLabel) dataset):
read with per-line validation -> drop exact duplicate texts (default) -> optionally undersample
to the smallest class -> stratified split -> tokenize with the model folder's vocabulary
(``Dataset.map(batched=True)``, cached) -> ``input_ids``, ``label``, ``length``, ``truncated``,
``text``.

Public API (``finetune.py`` reuses the same flags):
- ``add_data_arguments(parser)``; ``prepare_from_args(args, tokenizer_folder, max_length)``
  -> ``PreparedData`` (``.dataset``, ``.label_names``, ``.summary``, ``.pad_length``);
- ``resolve_model_source(model) -> (tokenizer_folder, context_length)``;
- ``save_prepared(prepared, output_dir)`` / ``load_prepared(dataset_dir)``;
- ``main(argv)``: the ``scripts/prepare_data.py`` command.
Batching (collator, samplers) lives in ``scratchgpt.collate``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk
from tqdm.auto import tqdm

from scratchgpt.download import DownloadError, download_file
from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file
from scratchgpt.tokenizer import find_bpe_files, load_tiktoken

SMS_ZIP_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_MEMBER = "SMSSpamCollection"
SMS_SHA256 = "edc1f2ca36319ca36c6f80fede2f6ae5f81335289352485f3924df077ec20266"
SMS_LABELS = ("ham", "spam")
# The real file is 478 kB; anything far bigger in the zip is not the data set (zip bomb guard).
MAX_EXTRACT_BYTES = 16 * 1024 * 1024
CACHE_ENV = "SCRATCHGPT_CACHE"
PREPARED_META = "scratchgpt_data.json"
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
SPLITS = ("train", "validation", "test")
FORMATS = ("auto", "sms", "csv", "tsv", "jsonl")
MAX_INT_CLASSES = 10_000  # integer labels above this are ids of something else, not classes


class DataError(ValueError):
    """Unusable input data; the message names the file, line (or row) and value."""


@dataclass(frozen=True)
class BadLine:
    """One rejected input line: where it is, why, and what it held."""

    source: str
    line: int
    reason: str
    value: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.value}"


class BadLinePolicy:
    """Raises on a bad line (``"error"``) or records it (``"skip"``): never drops silently."""

    def __init__(self, on_bad_line: str = "error") -> None:
        if on_bad_line not in ("error", "skip"):
            raise ValueError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
        self.on_bad_line = on_bad_line
        self.skipped: list[BadLine] = []

    def __call__(self, source: str, line: int, reason: str, value: object) -> None:
        bad = BadLine(str(source), line, reason, _show(value))
        if self.on_bad_line == "error":
            raise DataError(f"{bad} (use --on-bad-line skip to skip and count such lines)")
        self.skipped.append(bad)


def _show(value: object, limit: int = 80) -> str:
    """A short printable form; undecodable bytes (kept as surrogates) are shown as bytes."""
    if isinstance(value, str) and _has_surrogates(value):
        value = value.encode("utf-8", "surrogateescape")
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


# ----------------------------------------------------------------------------- reading


@dataclass
class RawRecord:
    """A validated text with its label as found in the source (resolved to an id later)."""

    text: str
    label: str | int
    line: int


def _check_text(text: object, source: str, line: int, policy: BadLinePolicy) -> bool:
    if not isinstance(text, str):
        policy(source, line, "text is not a string", text)
    elif _has_surrogates(text):
        policy(source, line, "text is not valid UTF-8", text)
    elif not text.strip():
        policy(source, line, "empty text", text)
    else:
        return True
    return False


def read_sms_lines(path: Path, policy: BadLinePolicy) -> Iterator[RawRecord]:
    """The UCI format: ``label<TAB>text`` per line, no header, no quoting (``"`` is literal)."""
    # surrogateescape keeps undecodable bytes so the bad line can be reported, not the whole
    # file; utf-8-sig drops a byte-order mark (Excel writes one) that would glue onto line 1.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            label, tab, text = line.partition("\t")
            if not tab:
                policy(path, number, "no tab between label and text", line)
            elif _has_surrogates(line):
                policy(path, number, "not valid UTF-8", line)
            elif _check_text(text, str(path), number, policy):
                yield RawRecord(text, label.strip(), number)


def read_table(
    path: Path, text_column: str, label_column: str, delimiter: str, policy: BadLinePolicy
) -> Iterator[RawRecord]:
    """A CSV (quoted fields allowed) or TSV (no quoting, as is usual for TSV) with a header."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter, quoting=quoting, restkey="\0extra")
        header = reader.fieldnames or []
        for column in (text_column, label_column):
            if column not in header:
                raise DataError(f"{path}:1: no column {column!r} in the header {header}")
        for row in reader:
            line = reader.line_num
            if "\0extra" in row:
                policy(path, line, "more fields than the header", row["\0extra"])
            elif row[text_column] is None or row[label_column] is None:
                policy(path, line, f"fewer fields than the header {header}", list(row.values()))
            elif _has_surrogates(row[label_column]):
                policy(path, line, "label is not valid UTF-8", row[label_column])
            elif _check_text(row[text_column], str(path), line, policy):
                yield RawRecord(row[text_column], row[label_column].strip(), line)


def read_jsonl(
    path: Path, text_column: str, label_column: str, policy: BadLinePolicy
) -> Iterator[RawRecord]:
    """One JSON object per line; labels may be strings or integers."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                policy(path, number, "empty line", line)
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                policy(path, number, f"not JSON ({err.msg})", line.rstrip("\n"))
                continue
            if _usable_row(row, text_column, label_column, str(path), number, policy):
                yield RawRecord(row[text_column], row[label_column], number)


def _usable_row(
    row: object, text_column: str, label_column: str, source: str, line: int, policy: BadLinePolicy
) -> bool:
    """Checks a mapping-shaped row (JSONL object or Hub example)."""
    if not isinstance(row, dict):
        policy(source, line, "not a JSON object", row)
        return False
    for column in (text_column, label_column):
        if column not in row:
            policy(source, line, f"missing column {column!r} (has {sorted(row)})", row)
            return False
    label = row[label_column]
    if isinstance(label, bool) or not isinstance(label, str | int):
        policy(source, line, "label must be a string or an integer", label)
        return False
    return _check_text(row[text_column], source, line, policy)


def _int_like(label: str | int) -> bool:
    return isinstance(label, int) or label.isdigit()


def infer_label_names(records: Sequence[RawRecord]) -> list[str]:
    """Integer labels (0..max) keep their ids; string labels are named in sorted order."""
    labels = {r.label for r in records}
    if labels and all(_int_like(label) for label in labels):
        top = max(int(label) for label in labels)
        if top >= MAX_INT_CLASSES:
            raise DataError(
                f"integer label {top} is too large to be a class id; pass --label-names"
            )
        return [str(i) for i in range(top + 1)]
    return sorted(str(label) for label in labels)


def resolve_labels(
    records: Sequence[RawRecord], label_names: Sequence[str], source: str, policy: BadLinePolicy
) -> tuple[list[str], list[int]]:
    """Map each label to its id in ``label_names``; unknown labels are bad lines."""
    if len(set(label_names)) != len(label_names) or not all(label_names):
        raise DataError(f"label names must be distinct and non-empty, got {list(label_names)}")
    to_id = {name: i for i, name in enumerate(label_names)}
    texts, ids = [], []
    for record in records:
        label = record.label
        if isinstance(label, int) or (label not in to_id and label.isdigit()):
            label_id = int(label) if 0 <= int(label) < len(label_names) else None
        else:
            label_id = to_id.get(label)
        if label_id is None:
            policy(
                source, record.line, f"unknown label (expected one of {list(label_names)})", label
            )
            continue
        texts.append(record.text)
        ids.append(label_id)
    return texts, ids


def to_dataset(texts: list[str], ids: list[int], label_names: Sequence[str]) -> Dataset:
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(label_names))})
    return Dataset.from_dict({"text": texts, "label": ids}, features=features)


def detect_format(path: Path) -> str:
    """By extension: .csv, .tsv, .jsonl/.json; anything else is the headerless SMS format."""
    suffix = path.suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "sms")


def read_labelled_file(
    path: str | Path,
    *,
    file_format: str = "auto",
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    policy: BadLinePolicy | None = None,
) -> tuple[Dataset, list[str]]:
    """Read a local file into a ``text`` + ``label`` (ClassLabel) dataset and its label names.

    ``Dataset.from_dict`` rather than ``from_generator``: the generator cache is keyed on its
    arguments, so a cache hit would silently lose the count of skipped lines.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    policy = policy or BadLinePolicy()
    file_format = detect_format(path) if file_format == "auto" else file_format
    if file_format == "sms":
        records = list(read_sms_lines(path, policy))
        label_names = label_names or SMS_LABELS
    elif file_format == "jsonl":
        records = list(read_jsonl(path, text_column, label_column, policy))
    else:
        delimiter = "," if file_format == "csv" else "\t"
        records = list(read_table(path, text_column, label_column, delimiter, policy))
    names = list(label_names) if label_names else infer_label_names(records)
    texts, ids = resolve_labels(records, names, str(path), policy)
    return _nonempty(to_dataset(texts, ids, names), str(path), policy), names


def read_hub_dataset(
    hub_id: str,
    *,
    config: str | None = None,
    split: str = "train",
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    policy: BadLinePolicy | None = None,
) -> tuple[Dataset, list[str]]:
    """A Hub dataset's split, validated row by row like a local file."""
    import datasets  # only here: loading a Hub dataset is the rare path

    policy = policy or BadLinePolicy()
    source = f"{hub_id}[{split}]"
    try:
        raw = datasets.load_dataset(hub_id, config, split=split)
    except Exception as err:  # network, auth and not-found errors all end the same way
        offline = "offline" if datasets.config.HF_HUB_OFFLINE else "unreachable or unknown"
        raise DataError(
            f"could not load Hub dataset {source} ({offline}): {type(err).__name__}: {err}. "
            "Without network access, pass a local copy with --data-file."
        ) from None
    for column in (text_column, label_column):
        if column not in raw.column_names:
            raise DataError(f"{source}: no column {column!r} (has {raw.column_names})")
    feature = raw.features.get(label_column)
    if label_names is None and isinstance(feature, ClassLabel):
        label_names = feature.names
    rows = tqdm(raw, desc=f"Checking {source}", unit=" rows", disable=len(raw) < 10_000)
    records = [
        RawRecord(row[text_column], row[label_column], i)
        for i, row in enumerate(rows, start=1)
        if _usable_row(row, text_column, label_column, source, i, policy)
    ]
    names = list(label_names) if label_names else infer_label_names(records)
    texts, ids = resolve_labels(records, names, source, policy)
    return _nonempty(to_dataset(texts, ids, names), source, policy), names


def _nonempty(dataset: Dataset, source: str, policy: BadLinePolicy) -> Dataset:
    if len(dataset) == 0:
        raise DataError(f"{source}: no usable rows ({len(policy.skipped)} bad lines skipped)")
    return dataset


# ----------------------------------------------------------------------------- SMS download


def default_cache_dir() -> Path:
    """``$SCRATCHGPT_CACHE`` or ``~/.cache/scratchgpt``."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "scratchgpt"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sms_spam_path(
    cache_dir: Path | None = None, fetch: Callable[..., Path] = download_file
) -> Path:
    """The verified SMS file: from the cache, else the shared offline copy, else downloaded."""
    cached = (cache_dir or default_cache_dir()) / "sms_spam_collection" / SMS_MEMBER
    for candidate in (cached, sms_spam_file()):
        if candidate.is_file() and _sha256(candidate) == SMS_SHA256:
            return candidate
    return download_sms_spam(cache_dir or default_cache_dir(), fetch=fetch)


def download_sms_spam(cache_dir: Path, fetch: Callable[..., Path] = download_file) -> Path:
    """Download the UCI zip (resumable, atomic) and extract the data file, verified by sha256."""
    folder = cache_dir / "sms_spam_collection"
    try:
        zip_path = fetch(SMS_ZIP_URL, folder / "sms+spam+collection.zip")
    except DownloadError as err:
        raise DataError(f"{err}. Offline, pass a local copy with --data-file.") from None
    return extract_member(zip_path, SMS_MEMBER, folder / SMS_MEMBER, expected_sha256=SMS_SHA256)


def _unsafe_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts or (bool(parts) and ":" in parts[0])


def extract_member(
    zip_path: Path,
    member: str,
    dest: Path,
    *,
    max_bytes: int = MAX_EXTRACT_BYTES,
    expected_sha256: str | None = None,
) -> Path:
    """Extract the one file named ``member`` (any folder) to ``dest``, atomically.

    Refuses archives with names escaping the target, and stops at ``max_bytes`` of actual
    output (the size in the zip header is not trusted).
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise DataError(f"{zip_path}: not a zip file ({err})") from None
    with archive:
        names = archive.namelist()
        unsafe = [name for name in names if _unsafe_name(name)]
        if unsafe:
            raise DataError(f"{zip_path}: refusing an archive with unsafe paths {unsafe}")
        matches = [name for name in names if PurePosixPath(name).name == member]
        if len(matches) != 1:
            raise DataError(f"{zip_path}: expected one {member!r}, found {matches} in {names}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(matches[0]) as src, _atomic_file(dest) as tmp:
            actual = _copy_capped(src, tmp, max_bytes, f"{zip_path}:{matches[0]}")
            if expected_sha256 and actual != expected_sha256:  # checked before the rename
                raise DataError(f"{zip_path}:{member}: sha256 {actual} != {expected_sha256}")
    return dest


def _copy_capped(src: Any, tmp: Path, max_bytes: int, where: str) -> str:
    """Copy at most ``max_bytes``; return the sha256 of what was copied."""
    written, digest = 0, hashlib.sha256()
    with open(tmp, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            written += len(chunk)
            if written > max_bytes:
                raise DataError(f"{where}: larger than the {max_bytes}-byte cap; not extracted")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


class _atomic_file:
    """Context manager: yields a temp path next to ``dest``; renamed onto it only on success."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        self.tmp = Path(name)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.dest)
        else:
            self.tmp.unlink(missing_ok=True)


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
        raise DataError(f"cannot split {len(dataset)} rows {counts} by label: {err}") from None
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
    vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
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
) -> PreparedData:
    """Dedupe -> balance -> stratified split -> tokenize -> summary."""
    names = raw.features["label"].names
    stats = SplitStats()
    data = drop_duplicates(raw, stats) if dedupe else raw
    data = undersample(data, seed, stats) if balance == "undersample" else data
    splits = stratified_split(data, fractions, seed)
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


def _fixed_pad_length(pad_to: str, tokenized: DatasetDict, max_length: int) -> int | None:
    if pad_to == "batch":
        return None
    if pad_to == "context":
        return max_length
    if pad_to == "longest-train":
        return int(max(tokenized["train"]["length"]))
    raise ValueError(f"pad_to must be batch, longest-train or context, got {pad_to!r}")


def load_source(args: argparse.Namespace, policy: BadLinePolicy) -> tuple[Dataset, str]:
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
    path = Path(args.data_file) if args.data_file else sms_spam_path(_cache_dir(args))
    raw, _ = read_labelled_file(
        path, file_format=args.format, label_names=names, policy=policy, **columns
    )
    return raw, str(path)


def _cache_dir(args: argparse.Namespace) -> Path | None:
    if args.no_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def prepare_from_args(
    args: argparse.Namespace, tokenizer_folder: str | Path, max_length: int
) -> PreparedData:
    """The single entry for scripts: ``max_length`` is the model's context length.

    With ``--dataset-dir`` the prepared data is loaded and checked against the tokenizer.
    """
    if args.max_length is not None and not 1 <= args.max_length <= max_length:
        raise DataError(f"--max-length {args.max_length} must be in 1..{max_length} (context)")
    length = args.max_length or max_length
    if getattr(args, "dataset_dir", None):
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
    )


def resolve_model_source(model: str | Path) -> tuple[Path, int]:
    """``(tokenizer folder, context length)`` for a model folder or a preset name."""
    folder = Path(model)
    if folder.is_dir():
        return folder, _folder_context_length(folder)
    from scratchgpt_modeling.configuration_scratchgpt import PRESETS, ScratchGPTConfig

    if str(model) not in PRESETS:
        raise DataError(f"--model {model!r} is neither a folder nor a preset {sorted(PRESETS)}")
    return gpt2_bpe_dir(), ScratchGPTConfig.from_preset(str(model)).context_length


def _folder_context_length(folder: Path) -> int:
    # config.json of our model folders, of HF GPT-2 folders, or OpenAI's hparams.json.
    keys = ("context_length", "max_position_embeddings", "n_positions", "n_ctx")
    for name in ("config.json", "hparams.json"):
        if (folder / name).is_file():
            config = json.loads((folder / name).read_text(encoding="utf-8"))
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
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        prepared.dataset.save_to_disk(str(tmp))
        meta = {"label_names": prepared.label_names, "summary": prepared.summary.to_dict()}
        (tmp / PREPARED_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
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


# ----------------------------------------------------------------------------- command line


def add_data_arguments(parser: argparse.ArgumentParser, allow_prepared: bool = True) -> None:
    """The data flags shared by ``prepare_data.py`` and ``finetune.py``.

    ``--seed`` is added only if the parser has none yet (training may define its own).
    """
    group = parser.add_argument_group("data")
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--data-file",
        metavar="FILE",
        help="local labelled file: SMS format (label<TAB>text, no header; the default for files "
        "without .csv/.tsv/.jsonl), CSV, TSV (no quoting) or JSONL. Default: the SMS Spam "
        "Collection (cache, else the shared copy, else downloaded from UCI)",
    )
    source.add_argument(
        "--dataset",
        metavar="HUB_ID",
        help="a Hugging Face Hub dataset id, loaded with datasets.load_dataset (needs network)",
    )
    if allow_prepared:
        source.add_argument(
            "--dataset-dir",
            metavar="DIR",
            help="a folder written by scripts/prepare_data.py; all other data flags are ignored",
        )
    group.add_argument("--dataset-config", metavar="NAME", help="Hub dataset configuration name")
    group.add_argument(
        "--dataset-split",
        default="train",
        metavar="SPLIT",
        help="Hub split(s) to read, e.g. train or train+test; we split it ourselves "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="file format of --data-file; auto goes by extension (default: %(default)s)",
    )
    group.add_argument(
        "--text-column",
        default="text",
        help="column holding the text in CSV/TSV/JSONL/Hub data (default: %(default)s)",
    )
    group.add_argument(
        "--label-column",
        default="label",
        help="column holding the label, string or integer (default: %(default)s)",
    )
    group.add_argument(
        "--label-names",
        metavar="A,B,...",
        help="comma-separated class names, id order; integer labels index them, other labels "
        "must be one of them. Default: ham,spam for SMS files, a Hub ClassLabel's names, else "
        "sorted distinct string labels (or 0..max for integer labels)",
    )
    group.add_argument(
        "--on-bad-line",
        choices=("error", "skip"),
        default="error",
        help="a malformed line stops with an error naming file:line:value, or is skipped and "
        "counted in the summary (default: %(default)s)",
    )
    group.add_argument(
        "--balance",
        choices=("none", "undersample"),
        default="none",
        help="undersample every class to the smallest one, as the book does (default: %(default)s)",
    )
    group.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="keep exact duplicate texts (the book's behaviour); by default only the first copy "
        "is kept, so no text appears in two splits",
    )
    group.add_argument(
        "--split-fractions",
        nargs=3,
        type=float,
        default=list(DEFAULT_FRACTIONS),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions, stratified by label; train = int(n*TRAIN), validation = "
        "int(n*VAL), test = the rest (default: 0.7 0.1 0.2)",
    )
    group.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="truncate messages to N tokens (counted in the summary); default: the model's "
        "context length",
    )
    group.add_argument(
        "--pad-to",
        choices=("batch", "longest-train", "context"),
        default="batch",
        help="batch: pad each batch to its own longest message; longest-train: the book's fixed "
        "padding to the longest training message (validation/test truncated to it); context: "
        "pad to --max-length (default: %(default)s)",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"download and tokenization cache (default: ${CACHE_ENV} or ~/.cache/scratchgpt)",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="tokenize in memory without writing cache files"
    )
    # The calling script may define --seed already; prepare_from_args reads args.seed either way.
    with contextlib.suppress(argparse.ArgumentError):
        group.add_argument(
            "--seed",
            type=int,
            default=123,
            help="seed for undersampling, splitting and batch order (default: %(default)s)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prepare_data.py",
        description="Read labelled text, split it (stratified) into train/validation/test, "
        "tokenize it with a model folder's vocabulary and save it with save_to_disk.",
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        metavar="DIR",
        help="where to write the DatasetDict (written to a temp folder, then renamed)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --output-dir if it exists"
    )
    parser.add_argument(
        "--model",
        default="gpt2-small",
        metavar="FOLDER_OR_PRESET",
        help="model folder (its vocab.json/merges.txt and context length) or a preset name "
        "gpt2-small|medium|large|xl (GPT-2's vocabulary, context 1024) (default: %(default)s)",
    )
    add_data_arguments(parser, allow_prepared=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/prepare_data.py``: prepare, save, print the summary; 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        if Path(args.output_dir).exists() and not args.overwrite:
            raise DataError(f"{args.output_dir} already exists (pass --overwrite to replace it)")
        tokenizer_folder, context_length = resolve_model_source(args.model)
        prepared = prepare_from_args(args, tokenizer_folder, context_length)
        save_prepared(prepared, args.output_dir, overwrite=args.overwrite)
    except (DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(prepared.summary.format())
    print(f"saved to {args.output_dir}")
    return 0
