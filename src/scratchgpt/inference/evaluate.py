"""``scripts/evaluate.py``: score a fine-tuned classifier folder on a split of the data.

The data flags are the trainer's (``scratchgpt.data``), so the same flags give the same test
split; metrics, tables and plots come from ``scratchgpt.metrics.report``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from scratchgpt.data.prepare import prepare_from_args
from scratchgpt.files import atomic_write, check_output_dir
from scratchgpt.inference.arguments import EvaluateArguments
from scratchgpt.inference.classify import (
    label_names,
    load_classifier,
    model_precision,
    pad_token_id,
    predict_probabilities,
    resolve_encoding,
)
from scratchgpt.metrics.report import (
    compute_classification_metrics,
    most_confident_errors,
    plot_confusion_matrix,
    plot_precision_recall,
)


def _model_label_ids(data_names: Sequence[str], model_names: Sequence[str]) -> list[int]:
    """Map the data's class ids onto the model's by name (their orders may differ)."""
    unknown = [name for name in data_names if name not in model_names]
    if unknown:
        raise ValueError(
            f"the data has labels {unknown} that the model does not know "
            f"(model labels: {list(model_names)}); pass --label-names to rename them"
        )
    return [list(model_names).index(name) for name in data_names]


def _select_split(dataset, split: str):
    from datasets import concatenate_datasets

    if split == "all":
        return concatenate_datasets([dataset[name] for name in dataset])
    return dataset[split]


def evaluate(args: EvaluateArguments) -> dict:
    """``evaluate``: score the model on the chosen split; writes the plots and metrics.json
    into ``args.output_dir`` and returns the metrics (``output_dir`` and ``errors`` included)."""
    out = args.output_dir or Path(f"eval-{Path(args.model).name}-{args.split}")
    check_output_dir(out, "--output-dir")  # before the model loads or the data is read
    model, folder = load_classifier(args.model, device=args.device, dtype=args.dtype)
    precision = model_precision(model)
    print(precision.describe(), file=sys.stderr)
    prepared = prepare_from_args(args, folder, int(model.config.context_length), training=False)
    if note := prepared.summary.skipped_note():
        print(note, file=sys.stderr)
    rows = _select_split(prepared.dataset, args.split)
    names = label_names(model)
    to_model = _model_label_ids(prepared.label_names, names)
    references = [to_model[label] for label in rows["label"]]
    pad_id = pad_token_id(model, resolve_encoding(folder))
    probs = predict_probabilities(
        model, rows["input_ids"], pad_id, args.batch_size, progress=True, prepack=args.prepack
    ).numpy()
    metrics = compute_classification_metrics(probs.argmax(axis=1).tolist(), references, names)
    title = f"{Path(folder).name}, {args.split} split"
    plot_confusion_matrix(metrics["confusion_matrix"], names, out / "confusion_matrix.png", title)
    plot_precision_recall(probs, references, names, out / "precision_recall.png", title)
    record = {
        args.split: metrics,
        "model": str(args.model),
        "data": prepared.summary.source,
        "dtype": precision.name,
    }
    _write_json_atomically(out / "metrics.json", record)
    metrics["errors"] = most_confident_errors(probs, references, rows["text"], args.errors)
    metrics["output_dir"] = str(out)
    return metrics


def _write_json_atomically(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")
