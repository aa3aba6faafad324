"""Classification metrics as an offline ``evaluate`` module.

``evaluate.load("accuracy")`` fetches its script from the Hugging Face Hub at run time, which
fails without a network. This file is a self-contained ``evaluate.Metric`` that computes, in
one pass over a confusion matrix, everything a text classifier report needs: accuracy,
per-class and macro-averaged precision / recall / F1, per-class support and the matrix itself.

Load it by path (``scratchgpt.metrics.load_metric()`` does this)::

    metric = evaluate.load(".../scratchgpt/metrics/classification.py")
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_labels=2)

evaluate copies this file into its module cache and scans its imports line by line (one
import per line: its scanner misreads ``import a, b``), so it must not import sibling files.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy, per-class and macro precision/recall/F1, support and the confusion matrix of
integer class predictions against integer references. A class that is never predicted
(or never present) gets precision (or recall) 0, as scikit-learn's zero_division=0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_labels (int, optional): number of classes; default 1 + the largest id seen.
Returns:
    accuracy (float), precision_macro, recall_macro, f1_macro (float),
    precision, recall, f1 (list of float, one per class), support (list of int),
    confusion_matrix (list of list of int; rows = true class, columns = predicted class).
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that yields 0 where the denominator is 0 (undefined ratio)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def confusion_matrix(
    predictions: np.ndarray, references: np.ndarray, num_labels: int
) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (references, predictions), 1)
    return matrix


def scores_from_matrix(matrix: np.ndarray) -> dict:
    """All metrics from a confusion matrix (rows = truth, columns = prediction)."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    total = matrix.sum()
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion_matrix": matrix.tolist(),
    }


def _check_ids(name: str, values: np.ndarray, num_labels: int) -> None:
    bad = values[(values < 0) | (values >= num_labels)]
    if bad.size:
        raise ValueError(
            f"{name} holds class id {int(bad[0])}, outside 0..{num_labels - 1} "
            f"(num_labels={num_labels})"
        )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    """Accuracy, precision, recall, F1 (per class and macro) and the confusion matrix."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_labels=None) -> dict:
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        if predictions.size == 0:
            raise ValueError("no predictions to score: got an empty list")
        if num_labels is None:
            num_labels = int(max(predictions.max(), references.max())) + 1
        _check_ids("predictions", predictions, num_labels)
        _check_ids("references", references, num_labels)
        return scores_from_matrix(confusion_matrix(predictions, references, num_labels))
