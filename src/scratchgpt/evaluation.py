"""Classification metrics, tables and plots shared by the trainer and ``scripts/evaluate.py``.

Metrics go through ``evaluate`` with our offline metric module
(``scratchgpt/metrics/classification.py``): the stock ``evaluate.load("accuracy")`` needs the Hub.

``compute_classification_metrics`` returns one JSON-ready dict per split::

    {
      "accuracy": 0.98, "precision_macro": 0.97, "recall_macro": 0.95, "f1_macro": 0.96,
      "per_class": {"ham": {"precision": .., "recall": .., "f1": .., "support": 966}, ...},
      "confusion_matrix": [[960, 6], [12, 137]],   # rows = true class, columns = predicted
      "label_names": ["ham", "spam"],
      "num_examples": 1115,
    }

This is the per-split value the trainer stores in ``metrics.json`` (see ``scratchgpt.card``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scratchgpt.metrics import load_metric  # noqa: E402
from scratchgpt.paths import make_readable  # noqa: E402

SUMMARY_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


@functools.lru_cache(maxsize=1)
def _classification_metric():
    return load_metric("classification")


def compute_classification_metrics(
    predictions: Sequence[int], references: Sequence[int], label_names: Sequence[str]
) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, support and confusion matrix."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references: one each needed"
        )
    if not label_names:
        raise ValueError("label_names is empty: need one name per class id")
    raw = _classification_metric().compute(
        predictions=[int(p) for p in predictions],
        references=[int(r) for r in references],
        num_labels=len(label_names),
    )
    per_class = {
        name: {
            "precision": raw["precision"][i],
            "recall": raw["recall"][i],
            "f1": raw["f1"][i],
            "support": int(raw["support"][i]),
        }
        for i, name in enumerate(label_names)
    }
    return {
        **{key: raw[key] for key in SUMMARY_KEYS},
        "per_class": per_class,
        "confusion_matrix": raw["confusion_matrix"],
        "label_names": list(label_names),
        "num_examples": len(predictions),
    }


def format_metrics_table(metrics: Mapping, title: str | None = None) -> str:
    """One split's metrics as a plain-text table: per-class rows, macro row, confusion matrix."""
    names = list(metrics["label_names"])
    width = max(9, *(len(n) for n in names))
    header = f"{'class':<{width}}  precision  recall     f1  support"
    lines = [title] if title else []
    lines += [f"accuracy {metrics['accuracy']:.4f}  ({metrics['num_examples']} examples)", header]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}"
            f"  {row['support']:7d}"
        )
    lines.append(
        f"{'macro avg':<{width}}  {metrics['precision_macro']:9.4f}  "
        f"{metrics['recall_macro']:6.4f}  {metrics['f1_macro']:.4f}  {metrics['num_examples']:7d}"
    )
    lines += ["", "confusion matrix (rows = true, columns = predicted)"]
    lines += _matrix_lines(metrics["confusion_matrix"], names)
    return "\n".join(lines)


def _matrix_lines(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> list[str]:
    cell = max(6, *(len(n) for n in names), *(len(str(v)) for row in matrix for v in row))
    lines = [" " * cell + "".join(f" {n:>{cell}}" for n in names)]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:>{cell}}" + "".join(f" {v:>{cell}d}" for v in row))
    return lines


def format_splits_table(metrics_by_split: Mapping[str, Mapping]) -> str:
    """Summary table with one row per split (train/validation/test...)."""
    lines = [f"{'split':<12}{'examples':>9}{'accuracy':>10}{'precision':>11}{'recall':>8}{'F1':>8}"]
    for split, m in metrics_by_split.items():
        lines.append(
            f"{split:<12}{m['num_examples']:>9d}{m['accuracy']:>10.4f}"
            f"{m['precision_macro']:>11.4f}{m['recall_macro']:>8.4f}{m['f1_macro']:>8.4f}"
        )
    return "\n".join(lines)


def _save_figure_atomically(fig: plt.Figure, path: str | Path) -> Path:
    """Write to a temp file next to ``path`` then rename, so a crash leaves no half PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        make_readable(tmp)  # mkstemp's 0600 would hide the plot from other users
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], label_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Confusion-matrix heat map with counts in each cell (PNG or PDF by suffix)."""
    counts = np.asarray(matrix)
    if counts.shape != (len(label_names), len(label_names)):
        raise ValueError(
            f"confusion matrix shape {counts.shape} does not match {len(label_names)} label names"
        )
    size = 2.5 + 0.6 * len(label_names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix")
    threshold = counts.max() / 2 if counts.size else 0
    for (row, col), value in np.ndenumerate(counts):
        color = "white" if value > threshold else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=color)
    return _save_figure_atomically(fig, path)


def precision_recall_curve(
    scores: Sequence[float], positives: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision and recall at every score threshold, and average precision (step-wise area).

    Thresholds run from the highest score down, so recall rises from 0 to 1; tied scores are
    one threshold (they cannot be separated).
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    total_positive = positives.sum()
    if total_positive == 0:
        return np.array([1.0]), np.array([0.0]), 0.0
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order]
    # The last index of each run of equal scores is where a threshold takes effect.
    cut = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    true_pos = np.cumsum(positives)[cut]
    precision = true_pos / (cut + 1)
    recall = true_pos / total_positive
    average_precision = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[1.0, precision], np.r_[0.0, recall], average_precision


def plot_precision_recall(
    scores: Sequence[Sequence[float]],
    references: Sequence[int],
    label_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """One-vs-rest precision–recall curve per class from class probabilities ``[N, C]``."""
    probs = np.asarray(scores, dtype=np.float64)
    refs = np.asarray(references)
    if probs.ndim != 2 or probs.shape != (refs.size, len(label_names)):
        raise ValueError(
            f"scores shape {probs.shape} should be (num_examples={refs.size}, "
            f"num_labels={len(label_names)})"
        )
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for class_id, name in enumerate(label_names):
        precision, recall, ap = precision_recall_curve(probs[:, class_id], refs == class_id)
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.05)
    ax.set_title(title or "Precision–recall (one class vs rest)")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _save_figure_atomically(fig, path)


# ---------------------------------------------------------------- command line (evaluate.py)

EVAL_SPLITS = ("train", "validation", "test", "all")


def most_confident_errors(
    probabilities: np.ndarray, references: Sequence[int], texts: Sequence[str], count: int
) -> list[dict]:
    """The ``count`` wrong predictions with the highest predicted-class probability."""
    probs = np.asarray(probabilities)
    refs = np.asarray(references)
    predicted = probs.argmax(axis=1)
    wrong = np.nonzero(predicted != refs)[0]
    confidence = probs[wrong, predicted[wrong]]
    ranked = wrong[np.argsort(-confidence, kind="stable")][:count]
    return [
        {
            "index": int(i),
            "text": texts[i],
            "true": int(refs[i]),
            "predicted": int(predicted[i]),
            "score": float(probs[i, predicted[i]]),
        }
        for i in ranked
    ]


def format_errors(errors: Sequence[dict], label_names: Sequence[str], width: int = 70) -> str:
    if not errors:
        return "no mistakes"
    lines = [f"{'#':>5}  {'true':<10} {'predicted':<10} {'score':>6}  text"]
    for e in errors:
        text = " ".join(e["text"].split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(
            f"{e['index']:>5}  {label_names[e['true']]:<10} {label_names[e['predicted']]:<10} "
            f"{e['score']:6.4f}  {text}"
        )
    return "\n".join(lines)


def build_evaluate_parser() -> argparse.ArgumentParser:
    from scratchgpt.data import add_data_arguments
    from scratchgpt.inference import DEFAULT_BATCH_SIZE, add_prepack_argument, positive_int

    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Evaluate a fine-tuned classifier folder on a data split: metrics table "
        "(accuracy, per-class precision/recall/F1, confusion matrix), a confusion-matrix PNG, a "
        "precision-recall PNG and metrics.json in --output-dir. The data flags are the "
        "trainer's: pass the same ones (seed, dedupe, balance, fractions) to get its test split.",
    )
    parser.add_argument(
        "--model", required=True, help="model folder, or Hub repo id USER/NAME (downloaded)"
    )
    parser.add_argument(
        "--split",
        choices=EVAL_SPLITS,
        default="test",
        help="which split of the prepared data to score; 'all' = every row of the data "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="N",
        help="print the N most confident mistakes (default: none)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the PNGs and metrics.json go (default: ./eval-<model name>-<split>)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="texts per forward pass (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_prepack_argument(parser)
    add_data_arguments(parser, allow_prepared=True)
    return parser


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


def run_evaluation(args: argparse.Namespace) -> dict:
    """Score the model on the chosen split; writes the plots and metrics.json, returns metrics."""
    from scratchgpt.data import prepare_from_args
    from scratchgpt.inference import (
        label_names,
        load_classifier,
        pad_token_id,
        predict_probabilities,
        resolve_encoding,
    )

    model, folder = load_classifier(args.model, device=args.device)
    prepared = prepare_from_args(args, folder, int(model.config.context_length))
    rows = _select_split(prepared.dataset, args.split)
    names = label_names(model)
    to_model = _model_label_ids(prepared.label_names, names)
    references = [to_model[label] for label in rows["label"]]
    pad_id = pad_token_id(model, resolve_encoding(folder))
    probs = predict_probabilities(
        model, rows["input_ids"], pad_id, args.batch_size, progress=True, prepack=args.prepack
    ).numpy()
    metrics = compute_classification_metrics(probs.argmax(axis=1).tolist(), references, names)
    out = args.output_dir or Path(f"eval-{Path(folder).name}-{args.split}")
    title = f"{Path(folder).name}, {args.split} split"
    plot_confusion_matrix(metrics["confusion_matrix"], names, out / "confusion_matrix.png", title)
    plot_precision_recall(probs, references, names, out / "precision_recall.png", title)
    record = {args.split: metrics, "model": str(args.model), "data": prepared.summary.source}
    _write_json_atomically(out / "metrics.json", record)
    metrics["errors"] = most_confident_errors(probs, references, rows["text"], args.errors)
    metrics["output_dir"] = str(out)
    return metrics


def _write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    make_readable(tmp)
    os.replace(tmp, path)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/evaluate.py``; returns the exit status."""
    from scratchgpt.inference import HubDownloadError

    parser = build_evaluate_parser()
    args = parser.parse_args(argv)
    if args.errors < 0 or args.batch_size < 1:
        parser.error(
            f"--errors must be >= 0 and --batch-size >= 1, got {args.errors}, {args.batch_size}"
        )
    try:
        metrics = run_evaluation(args)
    except (ValueError, FileNotFoundError, HubDownloadError) as err:
        parser.exit(2, f"evaluate.py: error: {err}\n")
    print(format_metrics_table(metrics, title=f"{args.model} — {args.split} split"))
    if args.errors:
        print(f"\n{len(metrics['errors'])} most confident mistakes:")
        print(format_errors(metrics["errors"], metrics["label_names"]))
    print(
        f"\nwrote {metrics['output_dir']}/confusion_matrix.png, precision_recall.png, metrics.json"
    )
    return 0
