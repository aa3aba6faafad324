"""classify_texts vs pipeline() and one-text-at-a-time calls; the classify and generate CLIs."""

from __future__ import annotations

import io
import json
import warnings

import pytest
import torch
from transformers import pipeline

from scratchgpt.cli import classify_main, generate_main
from scratchgpt.folder import save_model_folder
from scratchgpt.inference.classify import (
    HubDownloadError,
    TruncationWarning,
    classify_texts,
    length_sorted_batches,
    load_classifier,
    pad_batch,
    resolve_encoding,
)
from scratchgpt.inference.generate import generate_text, load_language_model


@pytest.fixture(scope="module")
def decisive_dir(tiny_classifier_dir, tmp_path_factory, bpe_dir):
    """The tiny classifier with a scaled-up head, so its labels vary and are far from ties."""
    model, _ = load_classifier(tiny_classifier_dir)
    with torch.no_grad():
        model.classifier.weight.mul_(40)
    return save_model_folder(model, tmp_path_factory.mktemp("decisive") / "clf", bpe_dir)


@pytest.fixture(scope="module")
def mixed_texts(sms_texts):
    # Short, long and in-between messages, in an order unrelated to their length.
    picked = sms_texts[:30] + [t for t in sms_texts if len(t) > 250][:3] + ["ok", "Call me"]
    return picked


def one_at_a_time(model, folder, texts):
    encoding = resolve_encoding(folder)
    probs = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([encoding.encode(text)[: model.config.context_length]])
            probs.append(model(input_ids=ids).logits.softmax(-1)[0])
    return torch.stack(probs)


def test_classify_matches_pipeline_and_single_calls(decisive_dir, mixed_texts):
    model, folder = load_classifier(decisive_dir)
    short = [t for t in mixed_texts if len(resolve_encoding(folder).encode(t)) <= 64]
    ours = classify_texts(model, folder, short, batch_size=4)
    ours_probs = torch.tensor([[r["scores"]["ham"], r["scores"]["spam"]] for r in ours])

    single = one_at_a_time(model, folder, short)
    torch.testing.assert_close(ours_probs, single, atol=1e-5, rtol=1e-4)

    clf = pipeline("text-classification", model=str(decisive_dir), trust_remote_code=True)
    piped = clf(short, batch_size=1)
    assert [r["label"] for r in ours] == [r["label"] for r in piped]
    assert [r["score"] for r in ours] == pytest.approx([r["score"] for r in piped], abs=1e-5)
    assert {r["label"] for r in ours} == {"ham", "spam"}  # the comparison covers both classes


def test_results_keep_input_order_for_any_batching(decisive_dir, mixed_texts):
    model, folder = load_classifier(decisive_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        reference = classify_texts(model, folder, mixed_texts, batch_size=1)
        assert [r["text"] for r in reference] == mixed_texts
        for batch_size in (3, 64):
            again = classify_texts(model, folder, mixed_texts, batch_size=batch_size)
            assert [r["label"] for r in again] == [r["label"] for r in reference]
            assert [r["score"] for r in again] == pytest.approx(
                [r["score"] for r in reference], abs=1e-5
            )
        reversed_results = classify_texts(model, folder, mixed_texts[::-1], batch_size=5)
    assert [r["text"] for r in reversed_results] == mixed_texts[::-1]
    assert [r["label"] for r in reversed_results[::-1]] == [r["label"] for r in reference]


def test_long_texts_are_truncated_with_a_counted_warning(decisive_dir):
    model, folder = load_classifier(decisive_dir)
    long_text = "spam offer " * 100  # ~200 tokens, context is 64
    texts = [long_text, "hello", long_text + "x"]
    with pytest.warns(TruncationWarning, match="2 of 3 texts are longer than 64 tokens"):
        results = classify_texts(model, folder, texts)
    expected = one_at_a_time(model, folder, [long_text])[0]  # first 64 tokens
    assert results[0]["scores"]["spam"] == pytest.approx(float(expected[1]), abs=1e-5)
    with pytest.warns(TruncationWarning, match="truncated to their first 8 tokens"):
        classify_texts(
            model, folder, ["one two three four five six seven eight nine"], max_length=8
        )


def test_bad_arguments_raise_clear_errors(decisive_dir):
    model, folder = load_classifier(decisive_dir)
    with pytest.raises(ValueError, match="text 1 is ''"):
        classify_texts(model, folder, ["fine", ""])
    with pytest.raises(ValueError, match=r"max_length must be in 1..64"):
        classify_texts(model, folder, ["fine"], max_length=65)
    assert classify_texts(model, folder, []) == []
    with pytest.raises(FileNotFoundError, match="neither an existing model folder nor a Hub"):
        load_classifier("no/such/folder/here")
    empty = decisive_dir.parent / "not-a-model"
    empty.mkdir(exist_ok=True)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_classifier(empty)
    with pytest.raises(HubDownloadError, match="could not download model repo 'someone/absent'"):
        load_classifier("someone/absent")  # HF_HUB_OFFLINE=1 in conftest: fails without network


def test_batches_are_length_sorted_and_right_padded():
    batches = length_sorted_batches([3, 9, 1, 5, 7], batch_size=2)
    assert batches == [[1, 4], [3, 0], [2]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_sorted_batches([1], 0)


def test_classify_cli_jsonl_table_and_empty_input(decisive_dir, capsys, tmp_path):
    assert classify_main(["--model", str(decisive_dir), "--format", "jsonl", "hi", "WIN now"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["hi", "WIN now"]
    assert all(set(r["scores"]) == {"ham", "spam"} and r["label"] in r["scores"] for r in rows)

    source = tmp_path / "texts.txt"
    source.write_text("first message\n\n   \nsecond message\n", encoding="utf-8")
    assert classify_main(["--model", str(decisive_dir), "--input", str(source)]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 empty line(s): 2, 3" in captured.err
    table = captured.out.splitlines()
    assert table[0].split() == ["#", "label", "ham", "spam", "text"]
    assert table[1].endswith("first message") and table[2].endswith("second message")

    assert classify_main(["--model", str(decisive_dir)], stdin=io.StringIO("\n\n")) == 2
    assert "no text to classify: all 2 input line(s) are empty" in capsys.readouterr().err


def test_greedy_generation_matches_argmax_loop(tiny_lm_dir):
    model, folder = load_language_model(tiny_lm_dir)
    encoding = resolve_encoding(folder)
    ids = encoding.encode("Every effort moves you")
    with torch.no_grad():
        for _ in range(6):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    assert generate_text(model, folder, "Every effort moves you", max_new_tokens=6) == [
        encoding.decode(ids)
    ]
    top1 = generate_text(model, folder, "Every effort moves you", 6, temperature=1.0, top_k=1)
    assert top1 == [encoding.decode(ids)]  # top-k 1 sampling is greedy


def test_sampling_is_seeded_and_cli_reports_bad_lengths(tiny_lm_dir, capsys):
    model, folder = load_language_model(tiny_lm_dir)
    first = generate_text(model, folder, "Hello", 8, temperature=2.0, seed=7, num_samples=3)
    again = generate_text(model, folder, "Hello", 8, temperature=2.0, seed=7, num_samples=3)
    assert first == again and len(set(first)) > 1
    assert generate_main(["--model", str(tiny_lm_dir), "--max-new-tokens", "70"]) == 2
    assert "exceeds the context length 64" in capsys.readouterr().err
    assert generate_main(["--model", str(tiny_lm_dir), "--max-new-tokens", "3", "Hi"]) == 0
    assert capsys.readouterr().out.startswith("Hi")
