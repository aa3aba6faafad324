"""Expected failures end in one line ``<script>: error: ...`` naming the file, line, flag or
value, exit status 2, no traceback, and leave nothing behind (issue 11, item 6).

The commands run in this process through ``scratchgpt.cli`` (what ``scripts/*.py`` call); two
tests run the real scripts in a subprocess, to see exactly what a user's terminal shows.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from scratchgpt.cli import (
    classify_main,
    evaluate_main,
    finetune_main,
    generate_main,
    prepare_data_main,
    push_main,
)

ROOT = Path(__file__).resolve().parents[1]
QKV = "gpt.blocks.1.att.qkv.weight"


def error_line(stderr: str, prog: str) -> str:
    """The only thing on stderr must be one ``prog: error: ...`` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prog}: error: "), stderr
    return lines[0]


@pytest.fixture
def truncated_dir(tiny_classifier_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "truncated"))
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)  # an interrupted copy
    return folder


@pytest.fixture
def misshaped_dir(tiny_classifier_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "misshaped"))
    tensors = load_file(folder / "model.safetensors")
    rows, cols = tensors[QKV].shape
    tensors[QKV] = tensors[QKV].new_zeros(rows + 3, cols)  # written by another config
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def run_command(command: str, folder: Path, tmp_path: Path, toy_file: Path) -> int:
    model = ["--model", str(folder)]
    if command == "classify":
        return classify_main([*model, "WIN cash now"])
    if command == "generate":
        return generate_main([*model, "Hello"])
    out = ["--output-dir", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "cache")]
    return evaluate_main([*model, "--data-file", str(toy_file), *out])


@pytest.mark.parametrize("command", ["classify", "evaluate", "generate"])
def test_truncated_weights_are_named(command, truncated_dir, tmp_path, toy_file, capsys):
    assert run_command(command, truncated_dir, tmp_path, toy_file) == 2
    line = error_line(capsys.readouterr().err, f"{command}.py")
    assert f"{truncated_dir / 'model.safetensors'} is damaged (truncated" in line
    assert not (tmp_path / "eval").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("command", ["classify", "evaluate", "generate"])
def test_misshaped_tensor_is_named(command, misshaped_dir, tmp_path, toy_file, capsys):
    assert run_command(command, misshaped_dir, tmp_path, toy_file) == 2
    line = error_line(capsys.readouterr().err, f"{command}.py")
    assert f"tensor '{QKV}' has shape [99, 32]" in line and "needs [96, 32]" in line
    assert str(misshaped_dir / "config.json") in line


@pytest.mark.parametrize("damage", ["truncated_dir", "misshaped_dir"])
def test_push_check_names_damaged_weights(damage, request, capsys):
    folder = request.getfixturevalue(damage)
    assert push_main(["--model", str(folder), "--repo-id", "me/x", "--dry-run"]) == 2
    captured = capsys.readouterr()
    problems = [line for line in captured.out.splitlines() if line.startswith("PROBLEM: ")]
    assert any(p.startswith(f"PROBLEM: {folder / 'model.safetensors'}") for p in problems)
    assert "Traceback" not in captured.out
    assert "not pushing" in error_line(captured.err, "push_to_hub.py")


def test_classify_script_prints_one_line_and_no_traceback(truncated_dir):
    script = ROOT / "scripts" / "classify.py"
    result = subprocess.run(
        [sys.executable, str(script), "--model", str(truncated_dir), "hello"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "is damaged" in error_line(result.stderr, "classify.py")


def test_classify_input_that_is_not_utf8_names_file_line_and_column(tmp_path, capsys):
    source = tmp_path / "messages.txt"
    source.write_bytes("ok\nsee you at 6\nwin a £100 pr".encode() + b"\xffize\n")
    model = str(tmp_path / "no-model-needed")  # the input is read before any model
    assert classify_main(["--model", model, "--input", str(source)]) == 2
    line = error_line(capsys.readouterr().err, "classify.py")
    assert f"--input {source}: line 3, column 14: byte 0xff is not UTF-8" in line
    stdin = io.TextIOWrapper(io.BytesIO(source.read_bytes()), encoding="utf-8")
    assert classify_main(["--model", model], stdin=stdin) == 2
    assert "stdin: line 3, column 14" in error_line(capsys.readouterr().err, "classify.py")


def test_finetune_reports_the_lines_it_skips(tmp_path, toy_file, model_dir, capsys):
    from scratchgpt.training.arguments import parse_args
    from scratchgpt.training.data import load_data
    from scratchgpt.training.loop import reset_accelerate_state

    lines = toy_file.read_text().splitlines()
    lines[10:10] = ["a line without its label"]
    lines[30:30] = ["spam"]
    bad = tmp_path / "with-bad-lines.txt"
    bad.write_text("\n".join(lines) + "\n")
    flags = ["--model", str(model_dir), "--data-file", str(bad), "--on-bad-line", "skip"]
    args = parse_args([*flags, "--cache-dir", str(tmp_path / "cache")])
    try:
        data, _, _ = load_data(args)
    finally:
        reset_accelerate_state()
    assert len(data.summary.bad_lines) == 2
    err = capsys.readouterr().err
    assert "skipped 2 bad lines (--on-bad-line skip)" in err
    assert f"{bad}:11: no tab between label and text: 'a line without its label'" in err
    assert f"{bad}:31: no tab" in err


@pytest.mark.parametrize(
    ("suffix", "header", "missing", "flag"),
    [
        (".csv", "message,label", "text", "--text-column"),
        (".tsv", "message\tlabel", "text", "--text-column"),
        (".csv", "text,category", "label", "--label-column"),
    ],
)
def test_missing_column_names_the_flag_and_the_columns(
    suffix, header, missing, flag, tmp_path, capsys
):
    sep = "\t" if suffix == ".tsv" else ","
    data = tmp_path / f"reviews{suffix}"
    data.write_text(f"{header}\nwin cash now{sep}spam\nsee you{sep}ham\n")
    out, cache = tmp_path / "prepared", tmp_path / "cache"
    argv = ["--data-file", str(data), "--output-dir", str(out), "--cache-dir", str(cache)]
    assert prepare_data_main(argv) == 2
    line = error_line(capsys.readouterr().err, "prepare_data.py")
    assert f"no {missing} column '{missing}'" in line and flag in line
    assert str(header.split(sep)) in line  # the columns it has
    assert not out.exists() and not cache.exists()


def test_offline_finetune_suggests_its_own_flags_and_leaves_no_folder(
    tmp_path, toy_file, monkeypatch, capsys
):
    from scratchgpt import download

    def no_network(request, timeout):  # what an offline machine's DNS lookup gives
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SCRATCHGPT_CACHE", str(cache))
    out = tmp_path / "out"
    argv = ["--data-file", str(toy_file), "--output-dir", str(out), "--no-tensorboard"]
    assert finetune_main(argv) == 2  # --model gpt2-small --init pretrained: the defaults
    line = error_line(capsys.readouterr().err, "finetune.py")
    assert "seems offline" in line and "--init random" in line and "--model FOLDER" in line
    assert "--checkpoint-dir" not in line  # a flag of another script
    assert not cache.exists()  # no empty cache/openai/124M left behind
    assert not out.exists() and not out.with_name("out.run").exists()


def test_accelerate_launch_with_the_shipped_config_is_quiet(tmp_path):
    """The README's command: one ``error:`` line, no accelerate warning or traceback."""
    missing = tmp_path / "missing.tsv"
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    config = ["--config_file", str(ROOT / "configs" / "accelerate.yaml"), "-q"]
    script = [str(ROOT / "scripts" / "finetune.py"), "--init", "random"]
    result = subprocess.run(
        [*launch, *config, *script, "--data-file", str(missing)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode != 0, result.stdout
    line = error_line(result.stderr, "finetune.py")
    assert line == f"finetune.py: error: --data-file {missing}: no such file"
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder started
