"""The TF-IDF baseline benchmark: it scores on the trainer's own splits, its fresh messages are
unseen, and one run prints and writes the comparison table."""

from __future__ import annotations

import json

import pytest

from benchmarks.baseline_tfidf import (
    FRESH_FILE,
    README_EXAMPLES,
    check_unseen,
    load_splits,
    main,
    read_fresh,
)
from scratchgpt.paths import sms_spam_file
from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.data import load_data


def test_splits_are_the_trainers_and_follow_its_flags(toy_file):
    splits = load_splits(toy_file, ["--seed", "7", "--no-cache"])
    args = FinetuneArguments(init="random", data_file=str(toy_file), seed=7, no_cache=True)
    trainer = load_data(args)[0].dataset
    for split in ("train", "validation", "test"):
        assert splits.texts[split] == list(trainer[split]["text"])
        assert splits.labels[split] == list(trainer[split]["label"])
    default = load_splits(toy_file, ["--no-cache"])
    assert default.texts["test"] != splits.texts["test"]  # --seed reached the trainer's split


def test_fresh_messages_are_balanced_unseen_and_hold_the_readme_examples():
    texts, labels = read_fresh(FRESH_FILE, ["ham", "spam"])
    assert sorted(labels) == [0] * 20 + [1] * 20
    truth = dict(zip(texts, labels, strict=True))
    assert {text: ["ham", "spam"][truth[text]] for text in README_EXAMPLES} == README_EXAMPLES
    check_unseen(texts, sms_spam_file())
    copied = sms_spam_file().read_text(encoding="utf-8").splitlines()[0].split("\t", 1)[1]
    with pytest.raises(ValueError, match="occur in"):
        check_unseen([*texts, f"  {copied.upper()} "], sms_spam_file())


def test_one_run_compares_baseline_and_model(toy_file, tiny_classifier_dir, tmp_path, capsys):
    out = tmp_path / "baseline.json"
    argv = ["--data-file", str(toy_file), "--model", str(tiny_classifier_dir), "--json", str(out)]
    assert main([*argv, "--no-cache"]) == 0
    printed = capsys.readouterr().out
    record = json.loads(out.read_text(encoding="utf-8"))
    baseline, model = record["results"]
    # The toy task's classes use disjoint words: the baseline gets every test message right.
    assert baseline["test"]["accuracy"] == 1.0
    for result in (baseline, model):
        assert list(result["readme_examples"]) == list(README_EXAMPLES)
        assert set(result["readme_examples"].values()) <= {"ham", "spam"}
    assert model["name"] == str(tiny_classifier_dir)
    assert model["fresh_total"] == baseline["fresh_total"] == 40
    assert record["split_sizes"] == {"train": 56, "validation": 8, "test": 16}
    rows = [
        [cell.strip() for cell in line.split("|")] for line in printed.splitlines() if " | " in line
    ]
    assert [row[:2] for row in rows] == [
        ["model", "test acc"],
        ["tfidf+logreg", "1.0000"],
        [str(tiny_classifier_dir), f"{model['test']['accuracy']:.4f}"],
    ]
    assert "recipe.yaml is missing" in printed


def test_a_folder_that_is_no_model_stops_before_any_work(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err == f"error: --model {tmp_path / 'nope'}: not a model folder (no config.json)\n"
    )
    assert captured.out == ""
