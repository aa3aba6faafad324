"""The data pipeline on the real SMS file and on small generated files (every bad-input case)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from datasets import ClassLabel

from scratchgpt.cli import prepare_data_main
from scratchgpt.data import prepare as data
from scratchgpt.data import sources
from scratchgpt.data.arguments import build_prepare_parser as build_parser
from scratchgpt.data.prepare import (
    build_prepared,
    load_prepared,
    save_prepared,
    stratified_split,
    undersample,
)
from scratchgpt.data.sources import BadLinePolicy, DataError, extract_member, read_labelled_file
from scratchgpt.paths import current_umask, gpt2_bpe_dir, sms_spam_file
from scratchgpt.tokenizer import load_hf_tokenizer, load_tiktoken

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sms_raw():
    raw, names = read_labelled_file(sms_spam_file())
    return raw


@pytest.fixture(scope="module")
def deduped(sms_raw, tmp_path_factory):
    """The default pipeline (dedupe, no balancing) on the real file, tokenized."""
    cache = tmp_path_factory.mktemp("cache")
    return build_prepared(
        sms_raw, "sms", BadLinePolicy(), tokenizer_folder=gpt2_bpe_dir(), max_length=1024,
        cache_dir=cache,
    )  # fmt: skip


def _texts(split) -> set[str]:
    return set(split["text"])


# ----------------------------------------------------------------------------- real file


def test_real_file_reads_every_message_with_quoting_disabled(sms_raw):
    assert len(sms_raw) == 5574
    assert isinstance(sms_raw.features["label"], ClassLabel)
    assert sms_raw.features["label"].names == ["ham", "spam"]
    counts = {name: sms_raw["label"].count(i) for i, name in enumerate(["ham", "spam"])}
    assert counts == {"ham": 4827, "spam": 747}
    assert len(set(sms_raw["text"])) == 5171
    # A message with a literal quote stays one message (a quoting CSV reader merges lines here).
    assert any('"' in text for text in sms_raw["text"])


def test_default_split_is_deduped_stratified_and_disjoint(deduped):
    splits = deduped.dataset
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 3619,
        "validation": 517,
        "test": 1035,
    }
    assert deduped.summary.stats.duplicates_dropped == 403
    train, val, test = (_texts(splits[s]) for s in ("train", "validation", "test"))
    assert not train & val and not train & test and not val & test
    spam_share = 747 / 5574  # dedupe changes it a little; stratification keeps splits alike
    shares = [sum(splits[s]["label"]) / len(splits[s]) for s in splits]
    assert max(shares) - min(shares) < 0.01
    assert all(abs(share - spam_share) < 0.03 for share in shares)


def test_tokenized_columns_and_lengths(deduped):
    train = deduped.dataset["train"]
    assert set(train.column_names) == {"text", "label", "input_ids", "length", "truncated"}
    assert isinstance(train.features["label"], ClassLabel)
    encoding = load_tiktoken(gpt2_bpe_dir())
    for row in train.select(range(50)):
        assert row["input_ids"] == encoding.encode(row["text"], allowed_special="all")
        assert row["length"] == len(row["input_ids"])
    stats = deduped.summary.token_lengths["train"]
    assert stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]
    assert stats["max"] == max(train["length"])
    assert deduped.summary.truncated == {"train": 0, "validation": 0, "test": 0}


def test_book_mode_counts(sms_raw):
    stats = data.SplitStats()
    balanced = undersample(sms_raw, seed=123, stats=stats)
    assert balanced["label"].count(0) == balanced["label"].count(1) == 747
    assert stats.undersampled_away == 4827 - 747
    splits = stratified_split(balanced, (0.7, 0.1, 0.2), seed=123)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [1045, 149, 300]


def test_split_is_seeded(sms_raw):
    small = sms_raw.select(range(400))
    first = stratified_split(small, seed=5)["test"]["text"]
    assert stratified_split(small, seed=5)["test"]["text"] == first
    assert stratified_split(small, seed=6)["test"]["text"] != first


def test_ids_equal_transformers_tokenizer(sms_raw):
    texts = random.Random(0).sample(sms_raw["text"], 150)
    texts += ["a <|endoftext|> b", "  leading and   inner spaces ", "emoji 🎉 £1000 é", "&lt;#&gt;"]
    encoding = load_tiktoken(gpt2_bpe_dir())
    hf = load_hf_tokenizer(gpt2_bpe_dir())
    ours = data.TokenizeBatch(gpt2_bpe_dir(), 1024)({"text": texts})["input_ids"]
    assert ours == [hf(text)["input_ids"] for text in texts]
    assert 50256 in ours[-4]  # written <|endoftext|> is the special token, as in transformers
    assert encoding.encode("Every effort moves you") == [6109, 3626, 6100, 345]


def test_truncation_is_counted(sms_raw, tmp_path):
    raw = sms_raw.select(range(300))
    prepared = build_prepared(
        raw, "sms", BadLinePolicy(), tokenizer_folder=gpt2_bpe_dir(), max_length=8,
        cache_dir=None,
    )  # fmt: skip
    encoding = load_tiktoken(gpt2_bpe_dir())
    for split, part in prepared.dataset.items():
        expected = sum(len(encoding.encode(t, allowed_special="all")) > 8 for t in part["text"])
        assert prepared.summary.truncated[split] == expected > 0
        assert max(part["length"]) == 8


def test_tokenization_is_cached(sms_raw, tmp_path, monkeypatch):
    part = sms_raw.select(range(100))
    first = data.tokenize_split(part, gpt2_bpe_dir(), 64, tmp_path, "t")
    assert len(list((tmp_path / "tokenized").glob("*.arrow"))) == 1

    def no_tokenizer(folder):
        raise AssertionError("tokenizer called although the result was cached")

    monkeypatch.setattr(data, "load_tiktoken", no_tokenizer)
    second = data.tokenize_split(part, gpt2_bpe_dir(), 64, tmp_path, "t")
    assert second["input_ids"] == first["input_ids"]
    with pytest.raises(AssertionError, match="cached"):  # other settings are not a cache hit
        data.tokenize_split(part, gpt2_bpe_dir(), 32, tmp_path, "t")


def test_pad_to_longest_train_truncates_eval_splits(sms_raw):
    raw = sms_raw.select(range(600))
    prepared = build_prepared(
        raw, "sms", BadLinePolicy(), tokenizer_folder=gpt2_bpe_dir(), max_length=1024,
        pad_to="longest-train",
    )  # fmt: skip
    longest = max(prepared.dataset["train"]["length"])
    assert prepared.pad_length == longest
    for split in ("validation", "test"):
        assert max(prepared.dataset[split]["length"]) <= longest


# ----------------------------------------------------------------------------- other formats


def test_csv_with_three_string_classes(tmp_path):
    path = tmp_path / "d.csv"
    rows = [("review", "stars")] + [(f'"text, {i}"', c) for i, c in enumerate("abc" * 4)]
    path.write_text("\n".join(f"{t},{c}" for t, c in rows) + "\n", encoding="utf-8")
    raw, names = read_labelled_file(path, text_column="review", label_column="stars")
    assert names == ["a", "b", "c"]
    assert raw[0] == {"text": "text, 0", "label": 0}
    assert raw.features["label"].names == names


def test_jsonl_integer_labels_and_given_names(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"t": f"message {i}", "y": i % 2}) for i in range(6)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw, names = read_labelled_file(path, text_column="t", label_column="y")
    assert names == ["0", "1"] and raw["label"] == [0, 1, 0, 1, 0, 1]
    raw, names = read_labelled_file(
        path, text_column="t", label_column="y", label_names=["neg", "pos"]
    )
    assert names == ["neg", "pos"] and raw.features["label"].int2str(1) == "pos"


def test_byte_order_mark_and_repeated_label_names(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nhello,a\nbye,b\n")
    raw, names = read_labelled_file(path)
    assert raw["text"] == ["hello", "bye"] and names == ["a", "b"]
    with pytest.raises(DataError, match=r"distinct and non-empty, got \['a', 'a'\]"):
        read_labelled_file(path, label_names=["a", "a"])


def test_tsv_keeps_quotes_literal(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text('text\tlabel\nsay "hi\tx\nbye"\ty\n', encoding="utf-8")
    raw, _ = read_labelled_file(path)
    assert raw["text"] == ['say "hi', 'bye"']


def test_hub_path_keeps_classlabel_names_and_rejects_bad_ids(tmp_path, monkeypatch):
    import datasets
    from datasets import Dataset, Features, Value

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    features = Features({"sentence": Value("string"), "y": ClassLabel(names=["neg", "pos"])})
    rows = {"sentence": ["good", "bad", "unlabelled", "great"], "y": [1, 0, -1, 1]}
    (tmp_path / "hub").mkdir()
    Dataset.from_dict(rows, features=features).to_parquet(tmp_path / "hub" / "train.parquet")
    kwargs = {"text_column": "sentence", "label_column": "y"}
    with pytest.raises(DataError, match=r"hub\[train\]:3: unknown label .* -1"):
        sources.read_hub_dataset(str(tmp_path / "hub"), **kwargs)
    with pytest.raises(
        DataError, match=r"hub\[train\]: no text column 'text'; the columns are \['sentence', 'y'\]"
    ):
        sources.read_hub_dataset(str(tmp_path / "hub"), label_column="y")
    policy = BadLinePolicy("skip")
    raw, names = sources.read_hub_dataset(str(tmp_path / "hub"), policy=policy, **kwargs)
    assert names == ["neg", "pos"] and raw["text"] == ["good", "bad", "great"]
    assert raw["label"] == [1, 0, 1] and len(policy.skipped) == 1


# ----------------------------------------------------------------------------- bad input

BAD_SMS_LINES = {
    "no tab": (b"ham no tab here", "no tab", "'ham no tab here'"),
    "empty text": (b"spam\t   ", "empty text", "'   '"),
    "unknown label": (b"eggs\thello", "unknown label", "'eggs'"),
    "undecodable": (b"ham\tbad \xff byte", "not valid UTF-8", "bad \\xff byte"),
}


@pytest.mark.parametrize("case", sorted(BAD_SMS_LINES))
def test_bad_sms_line_errors_or_is_skipped(tmp_path, case):
    bad, reason, value = BAD_SMS_LINES[case]
    path = tmp_path / "sms.txt"
    path.write_bytes(b"ham\tfine one\n" + bad + b"\nspam\tfine two\n")
    with pytest.raises(DataError) as err:
        read_labelled_file(path)
    assert f"{path}:2:" in str(err.value) and reason in str(err.value)
    assert value in str(err.value)
    policy = BadLinePolicy("skip")
    raw, _ = read_labelled_file(path, policy=policy)
    assert raw["text"] == ["fine one", "fine two"]
    assert len(policy.skipped) == 1 and policy.skipped[0].line == 2


def test_missing_csv_column_names_file_and_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,label\nhello,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv:1: no text column 'text'; the columns are \['bo"):
        read_labelled_file(path)


def test_missing_jsonl_key_and_short_csv_row(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"d\.jsonl:2: no label column 'label' \(has \['text'\]; --label-column names it\)",
    ):
        read_labelled_file(jsonl)
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("text,label\na,x\nlonely\n", encoding="utf-8")
    policy = BadLinePolicy("skip")
    raw, _ = read_labelled_file(csv_file, policy=policy)
    assert len(raw) == 1 and "fewer fields" in str(policy.skipped[0])
    assert str(policy.skipped[0]).startswith(f"{csv_file}:3:")


def test_empty_split_after_filtering_is_an_error(tmp_path):
    path = tmp_path / "sms.txt"
    lines = ["ham\tone", "spam\ttwo", "ham\tthree", "nolabel", "spam\tfour", "ham\tone"]
    path.write_text("\n".join(lines), encoding="utf-8")
    policy = BadLinePolicy("skip")
    raw, _ = read_labelled_file(path, policy=policy)
    with pytest.raises(DataError, match="split 'validation' would be empty: 4 rows x 0.1"):
        build_prepared(raw, str(path), policy, tokenizer_folder=gpt2_bpe_dir(), max_length=64)


def test_all_lines_bad_is_an_error(tmp_path):
    path = tmp_path / "sms.txt"
    path.write_text("x\ny\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable rows .2 bad lines skipped"):
        read_labelled_file(path, policy=BadLinePolicy("skip"))


# ----------------------------------------------------------------------------- download


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_download_extracts_and_verifies(tmp_path):
    real = sms_spam_file().read_bytes()
    served = _zip(tmp_path / "served.zip", {"SMSSpamCollection": real, "readme": b"about"})
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(served, dest)
        return Path(dest)

    out = sources.download_sms_spam(tmp_path / "cache", fetch=fake_fetch)
    assert calls == [sources.SMS_ZIP_URL]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sources.SMS_SHA256
    assert sources.sms_spam_path(tmp_path / "cache", fetch=fake_fetch) == out  # cached: no fetch
    assert len(calls) == 1


def test_failed_download_is_a_data_error_with_a_hint(tmp_path):
    from scratchgpt.download import DownloadError

    def offline_fetch(url, dest):
        raise DownloadError(f"cannot reach {url}")

    with pytest.raises(DataError, match="cannot reach https://archive.ics.uci.edu.*--data-file"):
        sources.download_sms_spam(tmp_path, fetch=offline_fetch)


def test_extract_refuses_escapes_oversize_and_wrong_content(tmp_path):
    evil = _zip(tmp_path / "evil.zip", {"../SMSSpamCollection": b"ham\thi\n"})
    with pytest.raises(DataError, match="unsafe paths"):
        extract_member(evil, "SMSSpamCollection", tmp_path / "out" / "f")
    big = _zip(tmp_path / "big.zip", {"SMSSpamCollection": b"ham\tx\n" * 1000})
    with pytest.raises(DataError, match="100-byte cap"):
        extract_member(big, "SMSSpamCollection", tmp_path / "f", max_bytes=100)
    assert not (tmp_path / "f").exists() and not list(tmp_path.glob(".f.*"))
    with pytest.raises(DataError, match="sha256 [0-9a-f]{64} != 0000"):
        extract_member(big, "SMSSpamCollection", tmp_path / "f", expected_sha256="0" * 64)
    assert not (tmp_path / "f").exists() and not list(tmp_path.glob(".f.*"))


# ----------------------------------------------------------------------------- save, CLI


def test_save_and_load_round_trip(deduped, tmp_path):
    out = save_prepared(deduped, tmp_path / "prepared")
    umask = current_umask()  # mkdtemp's 0700 must not survive the rename
    for path in (out, *out.rglob("*")):
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~umask
    loaded = load_prepared(out, gpt2_bpe_dir(), 1024)
    assert loaded.label_names == ["ham", "spam"]
    assert loaded.summary == deduped.summary
    assert loaded.dataset["test"]["input_ids"] == deduped.dataset["test"]["input_ids"]
    with pytest.raises(DataError, match="already exists"):
        save_prepared(deduped, out)
    with pytest.raises(DataError, match="longer than the model's context length 16"):
        load_prepared(out, gpt2_bpe_dir(), 16)
    relaid = tmp_path / "relaid"  # same vocabulary, other JSON layout: still accepted
    relaid.mkdir()
    vocab = json.loads((gpt2_bpe_dir() / "encoder.json").read_text(encoding="utf-8"))
    (relaid / "vocab.json").write_text(json.dumps(dict(reversed(vocab.items())), indent=1))
    shutil.copyfile(gpt2_bpe_dir() / "vocab.bpe", relaid / "merges.txt")
    assert load_prepared(out, relaid, 1024).label_names == ["ham", "spam"]
    other_vocab = tmp_path / "other"
    other_vocab.mkdir()
    vocab["extra"] = len(vocab)
    (other_vocab / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    shutil.copyfile(gpt2_bpe_dir() / "vocab.bpe", other_vocab / "merges.txt")
    with pytest.raises(DataError, match="tokenized with another vocabulary"):
        load_prepared(out, other_vocab, 1024)


def test_cli_writes_dataset_and_summary(tmp_path, capsys):
    path = tmp_path / "small.tsv"
    rows = [f"message number {i} {'win cash' if i % 3 == 0 else 'see you'}" for i in range(40)]
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(40)]
    path.write_text(
        "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(rows, labels, strict=True))
    )
    out = tmp_path / "out"
    argv = ["--data-file", str(path), "--output-dir", str(out), "--cache-dir", str(tmp_path)]
    assert prepare_data_main(argv) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "truncated" in printed and f"saved to {out}" in printed
    loaded = load_prepared(out)
    assert {k: len(v) for k, v in loaded.dataset.items()} == {
        "train": 28,
        "validation": 4,
        "test": 8,
    }
    assert prepare_data_main(argv) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    with path.open("a") as handle:
        handle.write("a line without its label\n")
    assert prepare_data_main(argv + ["--overwrite"]) == 2
    assert f"error: {path}:42: fewer fields" in capsys.readouterr().err
    assert prepare_data_main(argv + ["--overwrite", "--on-bad-line", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "1 bad lines skipped" in printed and f"skipped {path}:42: fewer fields" in printed


def test_format_flag_offers_every_reader_format():
    from typing import get_args

    from scratchgpt.data.arguments import FileFormat
    from scratchgpt.data.sources import FORMATS

    assert get_args(FileFormat) == tuple(FORMATS)


def test_every_flag_has_help(tmp_path):
    from scratchgpt.training.arguments import build_parser as finetune_parser

    for parser in (build_parser(), finetune_parser()):
        for action in parser._actions:
            assert action.help, f"{action.option_strings} has no help"
    # finetune's --seed is the data's seed too (one flag, the trainer's help); --dataset-dir
    # must exist (checked with the flags)
    args, _ = finetune_parser().parse(["--dataset-dir", str(tmp_path), "--seed", "7"])
    assert args.seed == 7 and args.dataset_dir == str(tmp_path)


def test_hub_dataset_offline_is_a_clear_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prepare_data.py"), "--dataset", "someone/x",
         "--output-dir", str(tmp_path / "o"), "--cache-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: could not load Hub dataset someone/x[train] (offline)" in result.stderr
    assert "--data-file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
