"""Raw labelled data -> a ``datasets.Dataset`` with ``text`` + ``label`` (ClassLabel).

The reading half of the data pipeline (``scratchgpt.data.prepare`` builds on it):
- ``read_labelled_file``: the UCI SMS format (``label<TAB>text``), CSV, TSV or JSONL, validated
  line by line; ``read_hub_dataset``: a Hub dataset's split, validated row by row;
- ``BadLinePolicy``: a bad line raises ``DataError`` naming file:line:value, or is skipped and
  recorded (``BadLine``) for the summary, never dropped silently;
- ``sms_spam_path``: the SMS Spam Collection from the cache, the shared copy, or downloaded from
  UCI, extracted and verified by sha256.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from datasets import ClassLabel, Dataset, Features, Value
from tqdm.auto import tqdm

from scratchgpt.download import DownloadError, download_file
from scratchgpt.files import UsageError, atomic_file
from scratchgpt.paths import cache_dir as default_cache_dir
from scratchgpt.paths import sms_spam_file

SMS_ZIP_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_MEMBER = "SMSSpamCollection"
SMS_SHA256 = "edc1f2ca36319ca36c6f80fede2f6ae5f81335289352485f3924df077ec20266"
SMS_LABELS = ("ham", "spam")
# The real file is 478 kB; anything far bigger in the zip is not the data set (zip bomb guard).
MAX_EXTRACT_BYTES = 16 * 1024 * 1024
FORMATS = ("auto", "sms", "csv", "tsv", "jsonl")
MAX_INT_CLASSES = 10_000  # integer labels above this are ids of something else, not classes


class DataError(UsageError):  # a ValueError: one line at the command line
    """Unusable input data; the message names the file, line (or row) and value."""


class DataWarning(UserWarning):
    """Usable data with a gap worth knowing (a class missing from a split)."""


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
        _require_columns(f"{path}:1", header, text_column, label_column)
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


def _require_columns(where: str, found: Sequence[str], text_column: str, label_column: str) -> None:
    """A header (or Hub dataset) must hold both columns; the error lists what it has and
    names the flag that picks another column."""
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in found:
            raise DataError(
                f"{where}: no {role} column {column!r}; the columns are {list(found)}: "
                f"name the {role} column with --{role}-column COLUMN"
            )


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
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in row:
            reason = f"no {role} column {column!r} (has {sorted(row)}; --{role}-column names it)"
            policy(source, line, reason, row)
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
    if not path.exists() or path.is_dir():  # a device or a pipe reads as a file does
        raise DataError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
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
    return _labelled_dataset(records, label_names, str(path), policy)


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
    policy = policy or BadLinePolicy()
    source = f"{hub_id}[{split}]"
    raw = _load_hub_split(hub_id, config, split, source)
    _require_columns(source, raw.column_names, text_column, label_column)
    feature = raw.features.get(label_column)
    if label_names is None and isinstance(feature, ClassLabel):
        label_names = feature.names
    rows = tqdm(raw, desc=f"Checking {source}", unit=" rows", disable=len(raw) < 10_000)
    records = [
        RawRecord(row[text_column], row[label_column], i)
        for i, row in enumerate(rows, start=1)
        if _usable_row(row, text_column, label_column, source, i, policy)
    ]
    return _labelled_dataset(records, label_names, source, policy)


def _load_hub_split(hub_id: str, config: str | None, split: str, source: str) -> Dataset:
    import datasets  # only here: loading a Hub dataset is the rare path

    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as err:  # network, auth and not-found errors all end the same way
        offline = "offline" if datasets.config.HF_HUB_OFFLINE else "unreachable or unknown"
        raise DataError(
            f"could not load Hub dataset {source} ({offline}): {type(err).__name__}: {err}. "
            "Without network access, pass a local copy with --data-file."
        ) from None


def _labelled_dataset(
    records: Sequence[RawRecord],
    label_names: Sequence[str] | None,
    source: str,
    policy: BadLinePolicy,
) -> tuple[Dataset, list[str]]:
    """Name the classes, map labels to ids, build the dataset; none left is an error."""
    names = list(label_names) if label_names else infer_label_names(records)
    texts, ids = resolve_labels(records, names, source, policy)
    dataset = to_dataset(texts, ids, names)
    if len(dataset) == 0:
        raise DataError(f"{source}: no usable rows ({len(policy.skipped)} bad lines skipped)")
    return dataset, names


# ----------------------------------------------------------------------------- SMS download


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
        with archive.open(matches[0]) as src, atomic_file(dest, "wb") as out:
            actual = _copy_capped(src, out, max_bytes, f"{zip_path}:{matches[0]}")
            if expected_sha256 and actual != expected_sha256:  # checked before the rename
                raise DataError(f"{zip_path}:{member}: sha256 {actual} != {expected_sha256}")
    return dest


def _copy_capped(src: Any, out: Any, max_bytes: int, where: str) -> str:
    """Copy at most ``max_bytes``; return the sha256 of what was copied."""
    written, digest = 0, hashlib.sha256()
    for chunk in iter(lambda: src.read(1 << 20), b""):
        written += len(chunk)
        if written > max_bytes:
            raise DataError(f"{where}: larger than the {max_bytes}-byte cap; not extracted")
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()
