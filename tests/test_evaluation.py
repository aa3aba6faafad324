"""Metrics against hand-computed values, offline evaluate loading, tables and plots."""

from __future__ import annotations

import json

import pytest

from scratchgpt.metrics import load_metric, metric_path
from scratchgpt.metrics.report import (
    compute_classification_metrics,
    format_metrics_table,
    format_splits_table,
    plot_confusion_matrix,
    plot_precision_recall,
    precision_recall_curve,
)

# 3 classes, 8 examples. Confusion matrix (rows true, cols predicted), counted by hand:
#   a: [2, 1, 0]   b: [0, 2, 1]   c: [1, 0, 1]
PREDICTIONS = [0, 0, 1, 1, 1, 2, 0, 2]
REFERENCES = [0, 0, 0, 1, 1, 1, 2, 2]
NAMES = ["a", "b", "c"]


def test_metrics_match_hand_computed_values():
    m = compute_classification_metrics(PREDICTIONS, REFERENCES, NAMES)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    # precision = diagonal / column sum; recall = diagonal / row sum.
    expected = {
        "a": (2 / 3, 2 / 3, 3),
        "b": (2 / 3, 2 / 3, 3),
        "c": (1 / 2, 1 / 2, 2),
    }
    for name, (precision, recall, support) in expected.items():
        row = m["per_class"][name]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert row["support"] == support
    assert m["precision_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["num_examples"] == 8
    assert m["label_names"] == NAMES
    json.dumps(m)  # goes straight into metrics.json


def test_class_never_predicted_scores_zero_not_nan():
    m = compute_classification_metrics([0, 0, 0], [0, 1, 0], ["ham", "spam"])
    assert m["per_class"]["spam"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["ham"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["ham"]["recall"] == 1.0


def test_metric_module_loads_offline_by_path_and_accumulates_batches():
    metric = load_metric()
    metric.add_batch(predictions=PREDICTIONS[:4], references=REFERENCES[:4])
    metric.add_batch(predictions=PREDICTIONS[4:], references=REFERENCES[4:])
    assert metric.compute(num_labels=3)["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="outside 0..1"):
        compute_classification_metrics([0, 2], [0, 1], ["ham", "spam"])
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        compute_classification_metrics([0, 1, 1], [0, 1], ["ham", "spam"])
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        metric_path("bleu")


def test_precision_recall_curve_handles_ties_like_a_single_threshold():
    # Ranked: 0.9 pos, 0.8 pos+neg tie, 0.1 neg -> points (R, P): (.5, 1), (1, 2/3), (1, .5).
    precision, recall, ap = precision_recall_curve([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
    assert recall.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.5])
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_tables_show_every_class_and_the_matrix():
    m = compute_classification_metrics(PREDICTIONS, REFERENCES, NAMES)
    table = format_metrics_table(m, title="test")
    assert "accuracy 0.6250" in table
    assert "macro avg" in table
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[3:6]}
    assert rows == {
        "a": ["0.6667", "0.6667", "0.6667", "3"],
        "b": ["0.6667", "0.6667", "0.6667", "3"],
        "c": ["0.5000", "0.5000", "0.5000", "2"],
    }
    summary = format_splits_table({"validation": m, "test": m})
    assert summary.splitlines()[2].split() == ["test", "8", "0.6250", "0.6111", "0.6111", "0.6111"]


def test_plots_are_written_as_png(tmp_path):
    m = compute_classification_metrics(PREDICTIONS, REFERENCES, NAMES)
    cm = plot_confusion_matrix(m["confusion_matrix"], NAMES, tmp_path / "cm.png")
    scores = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]] * 2
    pr = plot_precision_recall(scores, REFERENCES, NAMES, tmp_path / "pr.png")
    for path in (cm, pr):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "pr.png"]  # no temp files
    with pytest.raises(ValueError, match=r"scores shape \(8, 3\) should be"):
        plot_precision_recall(scores, REFERENCES, ["a", "b"], tmp_path / "bad.png")


def test_evaluate_cli_agrees_with_classify_texts(tiny_classifier_dir, tmp_path, capsys):
    from scratchgpt.cli import evaluate_main
    from scratchgpt.inference.classify import classify_texts, load_classifier
    from scratchgpt.paths import current_umask, sms_spam_file

    lines = sms_spam_file().read_text(encoding="utf-8").splitlines()
    ham = [line for line in lines if line.startswith("ham\t")][:30]
    spam = [line for line in lines if line.startswith("spam\t")][:10]
    data = tmp_path / "sample.txt"
    data.write_text("\n".join(ham + spam) + "\n", encoding="utf-8")
    out = tmp_path / "eval"
    argv = ["--model", str(tiny_classifier_dir), "--data-file", str(data), "--split", "all"]
    argv += ["--keep-duplicates", "--no-cache", "--errors", "3", "--output-dir", str(out)]
    assert evaluate_main(argv) == 0
    printed = capsys.readouterr().out

    # Independent path: classify the same texts directly and count by hand.
    model, folder = load_classifier(tiny_classifier_dir)
    texts = [line.split("\t", 1)[1] for line in ham + spam]
    truth = [0] * len(ham) + [1] * len(spam)
    predicted = [r["label_id"] for r in classify_texts(model, folder, texts)]
    matrix = [[0, 0], [0, 0]]
    for t, p in zip(truth, predicted, strict=True):
        matrix[t][p] += 1
    saved = json.loads((out / "metrics.json").read_text())["all"]
    assert saved["confusion_matrix"] == matrix
    assert saved["num_examples"] == 40
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png",
        "metrics.json",
        "precision_recall.png",
    ]
    # written through mkstemp, yet readable by others as a plain open() leaves them (umask 022)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~current_umask()}
    mistakes = sum(t != p for t, p in zip(truth, predicted, strict=True))
    assert f"{min(3, mistakes)} most confident mistakes" in printed
