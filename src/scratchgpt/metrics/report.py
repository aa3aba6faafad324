"""Classification metrics, tables and plots shared by the trainer (``scratchgpt.training``) and the
evaluate command (``scratchgpt.inference.evaluate``).

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

This is the per-split value the trainer stores in ``metrics.json`` (see ``scratchgpt.hub.card``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# A bare Figure, not pyplot: saving needs no display, and importing the library does not switch
# a notebook's plotting backend (pyplot's global state) to Agg behind the user's back.
from matplotlib.figure import Figure

from scratchgpt.files import atomic_file
from scratchgpt.metrics import load_metric

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


def _save_figure_atomically(fig: Figure, path: str | Path) -> Path:
    """Write to a temp file next to ``path`` then rename, so a crash leaves no half PNG."""
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
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
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
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
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
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
