"""What the browser app does, without the page: one loaded classifier, its card facts, and the
three answers (a message's scores, the words that decided, a file of messages).

Every answer goes through ``scratchgpt.inference.classify.TextClassifier``, the same code as
``classify.py``. The model is loaded once and its linear weights packed once for the life of
the service (``TextClassifier.packed``): per message, repacking would cost more than the
forward pass. A lock lets one forward pass run at a time: the model is shared by every visitor
(gradio's queue runs events in threads) and two passes would only split the same CPU cores.
Bad input raises ``ValueError`` with a message meant for the person at the page.
"""

from __future__ import annotations

import csv
import io
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel

from scratchgpt.app.arguments import AppArguments
from scratchgpt.app.attribution import Attribution, leave_one_out
from scratchgpt.hub.card import (
    METRICS_FILE,
    CardError,
    base_model_id,
    card_settings,
    dataset_info,
    metric_splits,
    read_json,
    read_run_record,
)
from scratchgpt.inference.classify import TextClassifier, load_for_inference, model_precision
from scratchgpt.run_record import RUN_RECORD_FILE, RunRecord

TEXT_COLUMNS = ("text", "message", "sms", "sentence")  # a CSV's text column, by header name


@dataclass(frozen=True)
class Answer:
    """One message's result (``TextClassifier.classify``'s dict) and a note for the page."""

    result: dict
    notice: str  # "" unless the message was cut to the model's context


class DemoService:
    """The loaded model and the app's answers; build it once per process."""

    def __init__(self, args: AppArguments) -> None:
        model, folder = load_for_inference(
            args.model, args.revision, args.token, args.device, args.dtype
        )
        print(model_precision(model).describe(), file=sys.stderr)
        self.classifier = TextClassifier(model, folder, args.batch_size, prepack=args.prepack)
        self.folder = folder
        self.name = args.model if not Path(args.model).exists() else Path(args.model).name
        self.max_rows = args.max_rows
        self.facts = model_facts(folder, model)
        self._lock = threading.Lock()
        self._resources = ExitStack()
        self.packed = self._resources.enter_context(self.classifier.packed())

    def close(self) -> None:
        """Give back the packed weights (the model stays usable, unpacked)."""
        self._resources.close()

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    def classify(self, text: str) -> Answer:
        """Scores of one message, with a notice when it was longer than the context."""
        text = require_text(text)
        with self._lock:
            result = self.classifier.classify([text], warn=False)[0]
        return Answer(result, truncation_notice(result["num_tokens"], self.classifier.max_length))

    def explain(self, text: str) -> Attribution:
        """Leave-one-out attribution of the prediction on one message."""
        text = require_text(text)
        with self._lock:
            return leave_one_out(self.classifier, text)

    def classify_many(self, texts: list[str], progress: bool = False) -> list[dict]:
        """Scores of many messages (length-sorted batches), input order."""
        with self._lock:  # the page reports truncation itself (notice, table column)
            return self.classifier.classify(texts, progress, warn=False)


def require_text(text: str | None) -> str:
    if text is None or not text.strip():
        raise ValueError("Type or paste a message first: the box is empty.")
    return text


def truncation_notice(num_tokens: int, max_length: int) -> str:
    if num_tokens <= max_length:
        return ""
    return (
        f"This message is {num_tokens:,} tokens long; the model reads at most {max_length:,}, "
        f"so only its first {max_length:,} tokens were classified."
    )


# ------------------------------------------------------------------------- reading a file


def read_messages(path: str | Path, max_rows: int) -> tuple[list[str], list[int]]:
    """The messages of an uploaded ``.txt`` (one a line) or ``.csv`` (a header row naming a
    ``text`` column, or a single column), with their line numbers; empty lines are skipped.
    Raises ``ValueError`` naming the file for anything else or for more than ``max_rows``."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path.name} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    if path.suffix.lower() == ".csv":
        rows = csv_texts(content, path.name)
    elif path.suffix.lower() == ".txt":
        rows = list(enumerate(content.splitlines(), start=1))
    else:
        raise ValueError(f"{path.name}: upload a .txt (one message a line) or a .csv file")
    rows = [(number, text) for number, text in rows if text.strip()]
    if not rows:
        raise ValueError(f"{path.name} holds no message (every line is empty)")
    if len(rows) > max_rows:
        raise ValueError(
            f"{path.name} holds {len(rows):,} messages; this page classifies at most "
            f"{max_rows:,} at a time. Split the file, or run scripts/classify.py --input "
            f"{path.name} (no limit)."
        )
    return [text for _, text in rows], [number for number, _ in rows]


def csv_texts(content: str, name: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of a CSV's text column (the header is line 1)."""
    # A message may be as long as the file: the csv module's default cap (128 KiB a field)
    # would refuse a long one that the model simply truncates to its context.
    csv.field_size_limit(max(csv.field_size_limit(), len(content) + 1))
    reader = csv.reader(io.StringIO(content))
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise ValueError(f"{name}: line 1: not valid CSV ({err})") from None
    if header is None:
        return []
    names = [h.strip().lower() for h in header]
    column = next((names.index(n) for n in TEXT_COLUMNS if n in names), None)
    if column is None and len(header) == 1:
        column = 0
    if column is None:
        raise ValueError(
            f"{name}: no text column: name one of its header cells 'text' (found {header})"
        )
    try:
        return [
            (reader.line_num, row[column] if column < len(row) else "")
            for row in reader  # reader.line_num: the file line this row ended on
        ]
    except csv.Error as err:  # an unclosed quote, a NUL byte, ...
        raise ValueError(f"{name}: line {reader.line_num}: not valid CSV ({err})") from None


def results_table(results: list[dict], lines: list[int], max_length: int) -> list[list]:
    """Rows of the page's table and of the downloadable CSV (see ``table_header``)."""
    return [
        [
            line,
            row["label"],
            round(row["score"], 6),
            *(round(p, 6) for p in row["scores"].values()),
            row["num_tokens"] > max_length,
            row["text"],
        ]
        for line, row in zip(lines, results, strict=True)
    ]


def table_header(labels: list[str]) -> list[str]:
    return ["line", "label", "score", *(f"p({name})" for name in labels), "truncated", "text"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------- the card facts


def model_facts(folder: Path, model: PreTrainedModel) -> list[tuple[str, str]]:
    """``(name, value)`` rows for the page's "about this model" panel, from ``config.json``,
    ``training_args.json`` and ``metrics.json`` (a bare converted folder has only the first)."""
    config = model.config
    size = sum(p.numel() for p in model.parameters())
    precision = model_precision(model)
    facts = [
        ("architecture", f"{config.n_layers} blocks x {config.emb_dim} wide, {size / 1e6:.1f}M "
         f"parameters, context {config.context_length} tokens"),
        ("labels", ", ".join(str(config.id2label[i]) for i in range(config.num_labels))),
        ("precision", f"{precision.name} ({precision.reason})"),
    ]  # fmt: skip
    try:
        metrics = read_json(folder / METRICS_FILE)
        splits = metric_splits(metrics, folder / METRICS_FILE)
    except CardError:
        return [*facts, ("training", f"not recorded (no valid {METRICS_FILE} in the folder)")]
    try:
        record = read_run_record(folder / RUN_RECORD_FILE)
    except CardError:
        record = RunRecord()
    settings = card_settings(record, splits)
    facts += training_facts(settings)
    split = "test" if "test" in splits else "validation"
    scores = splits[split]
    facts += [
        (f"{split} accuracy", f"{scores['accuracy']:.4f} ({scores['num_examples']:,} messages)"),
        (f"{split} F1 (macro)", f"{scores['f1_macro']:.4f}"),
    ]
    return facts


def training_facts(settings: dict) -> list[tuple[str, str]]:
    init = settings.get("init")
    base = base_model_id(settings)
    if init == "random":
        start = "random (no pre-trained weights)"
    elif init is None:
        start = "not recorded"
    else:
        start = f"pretrained ({base or settings.get('base_model')})"
    _, data_name, _, _ = dataset_info(settings) if settings.get("dataset") else (0, "", 0, 0)
    train = settings["num_train_examples"]
    data = f"{data_name}, {train:,} training messages" if isinstance(train, int) else data_name
    return [("initialisation", start), ("training data", data or "not recorded")]
