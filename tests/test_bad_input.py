"""Every bad input gets one clear error and nothing is lost (issue 20).

One test (or a few) per class of failure: a mis-shaped tensor in a folder being trained, an
output path that is a user's file, data with one class, an invalid ``config.json``, a bad YAML
recipe, an output that cannot be written, a full disk, an interrupt, a busy port, an odd
``--input``; and a walk over every script's flags with out-of-range values. Each expects one
``<script>: error: ...`` (or ``interrupted: ...``) line on stderr, exit status 2 (130), no
traceback, and the user's files as they were.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from scratchgpt import cli
from scratchgpt.cli import (
    app_main,
    classify_main,
    convert_main,
    evaluate_main,
    finetune_main,
    prepare_data_main,
)
from tests.conftest import toy_messages

ROOT = Path(__file__).resolve().parents[1]
TF_FIXTURE = Path(__file__).parent / "fixtures" / "tiny_gpt2_tf"
QKV = "gpt.blocks.1.att.qkv.weight"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """finetune resets accelerate's singletons itself; be sure after a failed start too."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def one_line(stderr: str, prog: str, kind: str = "error") -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prog}: {kind}: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def train_flags(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--init", "pretrained", "--data-file", str(data),
        "--output-dir", str(out), "--cache-dir", str(out.parent / "cache"), "--no-tensorboard",
        "--epochs", "1", "--eval-freq", "2", "--eval-iter", "2", "--lr", "1e-3", *extra,
    ]  # fmt: skip


def write_data(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- shapes


@pytest.fixture
def misshaped_dir(model_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(model_dir, tmp_path / "misshaped"))
    tensors = load_file(folder / "model.safetensors")
    rows, cols = tensors[QKV].shape
    tensors[QKV] = tensors[QKV].new_zeros(rows + 3, cols)  # written by another config
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_finetune_refuses_a_misshaped_tensor_instead_of_reinitialising_it(
    misshaped_dir, toy_file, tmp_path, capsys
):
    out = tmp_path / "out"
    assert finetune_main(train_flags(misshaped_dir, toy_file, out)) == 2
    line = one_line(capsys.readouterr().err, "finetune.py")
    assert f"tensor '{QKV}' has shape [99, 32]" in line and "needs [96, 32]" in line
    assert not out.exists()


def test_a_new_head_is_the_only_tensor_replaced_and_it_is_named(model_dir, capsys):
    from scratchgpt.weights.convert import build_model

    labels = {0: "a", 1: "b", 2: "c"}
    model = build_model(model_dir, num_labels=3, id2label=labels)  # the folder has 2 labels
    assert model.classifier.weight.shape[0] == 3
    err = capsys.readouterr().err
    assert "classifier.weight" in err and "re-initialised" in err
    assert QKV not in err


# ----------------------------------------------------------------------------- output paths


@pytest.fixture
def user_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a model\n")
    return path


def assert_untouched(user_file: Path) -> None:
    assert user_file.read_text() == "my notes, not a model\n"
    assert not [p for p in user_file.parent.iterdir() if p.name.startswith(f".{user_file.name}")]


def test_convert_refuses_an_output_dir_that_is_a_file(user_file, capsys):
    argv = ["--checkpoint-dir", str(TF_FIXTURE), "--output-dir", str(user_file), "--no-sample"]
    assert convert_main(argv) == 2
    line = one_line(capsys.readouterr().err, "convert_openai_checkpoint.py")
    assert f"--output-dir {user_file}: a file of that name exists" in line
    assert_untouched(user_file)


def test_finetune_refuses_an_output_dir_that_is_a_file(model_dir, toy_file, user_file, capsys):
    assert finetune_main(train_flags(model_dir, toy_file, user_file)) == 2
    line = one_line(capsys.readouterr().err, "finetune.py")
    assert f"--output-dir {user_file}: a file of that name exists" in line
    assert_untouched(user_file)
    assert not user_file.with_name("notes.txt.run").exists()


def test_atomic_dir_never_replaces_a_file(user_file):
    from scratchgpt.files import OutputPathError, atomic_dir

    with pytest.raises(OutputPathError, match="a file of that name exists"), atomic_dir(user_file):
        pass
    assert_untouched(user_file)


@pytest.mark.parametrize("command", ["evaluate", "prepare_data"])
def test_file_shaped_output_is_refused_before_any_work(
    command, tiny_classifier_dir, toy_file, user_file, tmp_path, capsys, monkeypatch
):
    from scratchgpt.data import prepare

    def no_work(*args, **kwargs):
        raise AssertionError("the data was read before the output was checked")

    monkeypatch.setattr(prepare, "resolve_model_source", no_work)
    if command == "evaluate":
        from scratchgpt.inference import evaluate

        monkeypatch.setattr(evaluate, "load_classifier", no_work)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    argv = ["--data-file", str(toy_file), "--output-dir", str(user_file), *cache]
    main = evaluate_main if command == "evaluate" else prepare_data_main
    model = ["--model", str(tiny_classifier_dir)]
    assert main([*model, *argv]) == 2
    line = one_line(capsys.readouterr().err, f"{command}.py")
    assert f"--output-dir {user_file}" in line
    assert_untouched(user_file)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["evaluate", "prepare_data"])
def test_read_only_output_is_refused_before_any_work(
    command, tiny_classifier_dir, toy_file, tmp_path, capsys
):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = ["--model", str(tiny_classifier_dir), "--data-file", str(toy_file)]
        argv += ["--output-dir", str(locked / "out"), "--cache-dir", str(tmp_path / "cache")]
        main = evaluate_main if command == "evaluate" else prepare_data_main
        assert main(argv) == 2
        assert "is not writable" in one_line(capsys.readouterr().err, f"{command}.py")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("command", ["evaluate", "prepare_data"])
def test_unwritable_output_is_refused_even_as_root(
    command, tiny_classifier_dir, toy_file, tmp_path, monkeypatch, capsys
):
    """As the test above where root would write anyway: the check asks ``os.access``."""
    from scratchgpt import files

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        files.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    argv = ["--model", str(tiny_classifier_dir), "--data-file", str(toy_file)]
    argv += ["--output-dir", str(locked / "out"), "--cache-dir", str(tmp_path / "cache")]
    main = evaluate_main if command == "evaluate" else prepare_data_main
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err, f"{command}.py")
    assert f"{locked} is not writable" in line
    assert not (tmp_path / "cache").exists()


def test_not_enough_space_is_said_before_any_work(model_dir, toy_file, tmp_path, monkeypatch):
    from scratchgpt import files

    class Usage:
        free = 1000

    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(files.OutputPathError, match="needs about .* only 1,000 bytes is free"):
        files.check_output_dir(tmp_path / "out", "--output-dir", need_bytes=10**6)


# ----------------------------------------------------------------------------- data sanity


def test_one_class_training_data_is_an_error_naming_the_counts(tmp_path, capsys):
    rows = [("ham", text) for _, text in toy_messages(40)]
    data = write_data(tmp_path / "ham-only.txt", rows)
    out = tmp_path / "prepared"
    argv = ["--data-file", str(data), "--output-dir", str(out)]
    assert prepare_data_main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 2
    line = one_line(capsys.readouterr().err, "prepare_data.py")
    assert "training split has rows of 1 class(es) ['ham']" in line and "train: ham 28" in line
    assert not out.exists()


def test_one_class_finetune_is_refused(model_dir, tmp_path, capsys):
    data = write_data(tmp_path / "ham.txt", [("ham", t) for _, t in toy_messages(40)])
    out = tmp_path / "out"
    assert finetune_main(train_flags(model_dir, data, out)) == 2
    assert "needs at least two" in one_line(capsys.readouterr().err, "finetune.py")
    assert not out.exists()


def test_a_class_missing_from_a_split_is_a_warning(tmp_path):
    from scratchgpt.data.prepare import check_classes
    from scratchgpt.data.sources import DataWarning

    splits = {"train": {"label": [0, 1, 1]}, "validation": {"label": [0]}, "test": {"label": [1]}}
    with pytest.warns(DataWarning, match=r"no rows of 'spam' in validation, 'ham' in test"):
        check_classes(splits, ["ham", "spam"], "data.tsv")


# ----------------------------------------------------------------------------- damaged files


@pytest.fixture
def bad_config_dir(tiny_classifier_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "bad-config"))
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])  # an interrupted copy
    return folder


@pytest.mark.parametrize("command", ["classify", "evaluate", "finetune"])
def test_invalid_config_json_is_named_with_its_line(
    command, bad_config_dir, toy_file, tmp_path, capsys
):
    out = ["--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    if command == "classify":
        code = classify_main(["--model", str(bad_config_dir), "hello"])
    elif command == "evaluate":
        code = evaluate_main(["--model", str(bad_config_dir), "--data-file", str(toy_file), *out])
    else:
        code = finetune_main(train_flags(bad_config_dir, toy_file, tmp_path / "out"))
    assert code == 2
    line = one_line(capsys.readouterr().err, f"{command}.py")
    assert f"{bad_config_dir / 'config.json'}: line " in line and "not valid JSON" in line
    assert not (tmp_path / "out").exists()


def test_app_with_invalid_config_json_is_one_line(bad_config_dir, capsys):
    pytest.importorskip("gradio")
    assert app_main(["--model", str(bad_config_dir)]) == 2
    assert "not valid JSON" in one_line(capsys.readouterr().err, "app.py")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n_layers": 1}, "belongs to no block of the model"),  # the file has 2 blocks
        ({"n_layers": -1}, "n_layers must be a positive integer, got -1"),
        ({"n_heads": 3}, "emb_dim (32) must be divisible by n_heads (3)"),
        ({"emb_dim": "wide"}, "emb_dim must be a positive integer, got 'wide'"),
    ],
)
def test_a_config_that_does_not_fit_its_weights_is_named(
    change, expected, tiny_classifier_dir, tmp_path, capsys
):
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "edited"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    assert classify_main(["--model", str(folder), "hello"]) == 2
    assert expected in one_line(capsys.readouterr().err, "classify.py")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr: [1\nepochs: 2\n", "line 2, column 7: not valid YAML"),
        ("lr: [1, 2]\n", "lr must be a number, got [1, 2]"),
        ("\ufeffepochs: 0\n", "--epochs must be >= 1, got 0"),  # BOM dropped, value checked
        ("- a list\n", "expected a mapping"),
    ],
)
def test_bad_yaml_recipe_is_one_line(text, expected, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        finetune_main(["--config", str(recipe)])
    assert exit_info.value.code == 2
    assert expected in one_line(capsys.readouterr().err, "finetune.py")


# ----------------------------------------------------------------------------- disk and signals


def test_full_disk_while_writing_removes_the_partial_folder(tiny_classifier_dir, tmp_path):
    from scratchgpt.files import atomic_dir

    out = tmp_path / "out"
    shutil.copytree(tiny_classifier_dir, out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OSError, match="No space"), atomic_dir(out) as tmp:
        (tmp / "half").write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "half"))
    assert sorted(p.name for p in out.iterdir()) == before  # the old folder, whole
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no hidden partial sibling


def test_full_disk_in_finetune_keeps_checkpoints_and_says_how_to_resume(
    model_dir, toy_file, tmp_path, monkeypatch, capsys
):
    from scratchgpt.training import loop

    def disk_full(run, metrics, raw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run.args.output_dir))

    monkeypatch.setattr(loop, "write_outputs", disk_full)
    out = tmp_path / "out"
    flags = train_flags(model_dir, toy_file, out, "--max-steps", "2", "--save-steps", "1")
    assert finetune_main(flags) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("finetune.py: error: ") and "the disk is full" in line
    assert "checkpoint(s) kept in" in line and "--resume-from-checkpoint latest" in line
    assert not out.exists()
    assert list((tmp_path / "out.run" / "checkpoints").iterdir())


def test_interrupted_training_is_one_line_saying_what_was_kept(
    model_dir, toy_file, tmp_path, monkeypatch, capsys
):
    from scratchgpt.training import loop

    def ctrl_c(run):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "evaluate_splits", ctrl_c)  # after the epoch's checkpoint
    out = tmp_path / "out"
    flags = train_flags(model_dir, toy_file, out, "--max-steps", "2", "--save-steps", "1")
    assert finetune_main(flags) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("finetune.py: interrupted: ") and "checkpoint(s) kept in" in line
    assert "--resume-from-checkpoint latest" in line
    assert not out.exists()


def test_sigterm_ends_a_command_as_ctrl_c_does(capsys):
    parser = cli.build_classify_parser()

    def work() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    assert cli.guarded(parser, work) == 130
    assert "nothing was written" in one_line(capsys.readouterr().err, "classify.py", "interrupted")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_ctrl_c_in_a_script_prints_no_traceback(tmp_path):
    """A real SIGINT to a real script (reading a pipe that never ends)."""
    script = ROOT / "scripts" / "classify.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--model", str(tmp_path), "--input", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc.stdin.write("hello\n")
        proc.stdin.flush()
        import time

        time.sleep(3)  # imports done, blocked reading stdin
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    one_line(err, "classify.py", "interrupted")


# ----------------------------------------------------------------------------- inputs


def test_input_reads_devices_pipes_and_stdin_and_names_folders(tmp_path, capsys):
    from scratchgpt.inference.classify import read_input_texts

    no_tty = io.StringIO("")
    with pytest.raises(ValueError, match="all 0 input line"):
        read_input_texts([], Path("/dev/null"), no_tty)  # a device, read as an empty file
    read, write = os.pipe()  # what <(printf ...) gives: a /dev/fd path
    os.write(write, b"from a pipe\n")
    os.close(write)
    assert read_input_texts([], Path(f"/dev/fd/{read}"), no_tty)[0] == ["from a pipe"]
    os.close(read)
    stdin = io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbffrom stdin\n"), encoding="utf-8")
    assert read_input_texts([], Path("-"), stdin)[0] == ["from stdin"]
    assert classify_main(["--model", str(tmp_path / "m"), "--input", str(tmp_path)]) == 2
    assert "is a folder" in one_line(capsys.readouterr().err, "classify.py")


def test_a_utf8_bom_never_reaches_the_first_text(tmp_path):
    from scratchgpt.inference.classify import read_input_texts

    source = tmp_path / "windows.txt"
    source.write_bytes(b"\xef\xbb\xbfWIN cash now\r\nsee you\r\n")
    assert read_input_texts([], source, io.StringIO(""))[0] == ["WIN cash now", "see you"]


def test_utf16_input_is_named_as_such(tmp_path, capsys):
    source = tmp_path / "notepad.txt"
    source.write_text("WIN cash now\nsee you\n", encoding="utf-16")
    assert classify_main(["--model", str(tmp_path / "m"), "--input", str(source)]) == 2
    assert "UTF-16" in one_line(capsys.readouterr().err, "classify.py")


def test_config_json_with_a_bom_is_named(tiny_classifier_dir, tmp_path, capsys):
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "bom"))
    config = folder / "config.json"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())  # saved by Windows Notepad
    assert classify_main(["--model", str(folder), "hello"]) == 2
    assert "byte-order mark" in one_line(capsys.readouterr().err, "classify.py")


def test_a_bom_is_dropped_from_every_text_file_we_read(tmp_path):
    from scratchgpt.weights.sources import _read_json

    hparams = tmp_path / "hparams.json"
    hparams.write_bytes(b"\xef\xbb\xbf" + json.dumps({"n_ctx": 8}).encode())
    assert _read_json(hparams, "hparams")["n_ctx"] == 8


def test_uploaded_csv_with_a_huge_field_is_read(tmp_path):
    pytest.importorskip("gradio")
    from scratchgpt.app.service import read_messages

    upload = tmp_path / "long.csv"
    upload.write_text("text\n" + "spam " * 40_000 + "\nok\n", encoding="utf-8")
    texts, lines = read_messages(upload, max_rows=10)
    assert len(texts) == 2 and len(texts[0]) == 200_000 and lines == [2, 3]


def test_app_refuses_a_busy_port_before_loading_the_model(tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        missing = tmp_path / "not-loaded"  # a model load would fail differently
        assert app_main(["--model", str(missing), "--port", str(port)]) == 2
    line = one_line(capsys.readouterr().err, "app.py")
    assert f"--port {port}" in line and "choose another --port" in line


# ----------------------------------------------------------------------------- every flag

BASE_ARGS = {
    "classify": ["--model", "m", "hello"],
    "evaluate": ["--model", "m"],
    "generate": ["--model", "m"],
    "convert": ["--output-dir", "out"],
    "prepare_data": ["--output-dir", "out"],
    "finetune": [],
    "app": ["--model", "m"],
    "push": ["--model", ".", "--repo-id", "me/x"],
    "space": ["--space", "me/s", "--model-repo", "me/m", "--no-app-check"],
}
PARSERS = {
    "classify": cli.build_classify_parser,
    "evaluate": cli.build_evaluate_parser,
    "generate": cli.build_generate_parser,
    "convert": cli.build_convert_parser,
    "prepare_data": cli.build_prepare_parser,
    "finetune": cli.build_finetune_parser,
    "app": cli.build_app_parser,
    "push": cli.build_push_parser,
    "space": cli.build_space_parser,
}
# Out of range for every numeric flag (a negative seed too: numpy refuses one).
BAD_NUMBERS = ("-1", "nan", "inf", "-inf", "1e999", "x")


def numeric_flags(parser) -> list[tuple[str, type]]:
    found = []
    for action in parser._actions:
        if action.option_strings and action.type in (int, float) and action.nargs is None:
            found.append((action.option_strings[0], action.type))
    return found


def walk_cases():
    for name, build in PARSERS.items():
        for flag, _kind in numeric_flags(build()):
            for value in BAD_NUMBERS:
                yield pytest.param(name, flag, value, id=f"{name}{flag}={value}")
        for flag in ("--device",):
            if any(flag in a.option_strings for a in build()._actions):
                for value in ("gpu", "cuda:99", "cpu:x", ""):
                    yield pytest.param(name, flag, value, id=f"{name}{flag}={value}")
        for action in build()._actions:
            dest = action.dest
            if action.option_strings and dest in ("data_file", "dataset_dir", "input"):
                yield pytest.param(name, action.option_strings[0], "/no/such", id=f"{name}-{dest}")


@pytest.mark.parametrize(("script", "flag", "value"), list(walk_cases()))
def test_every_flag_refuses_an_out_of_range_value_in_one_line(
    script, flag, value, capsys, monkeypatch
):
    if flag == "--device" and value.startswith("cuda"):
        import torch

        if torch.cuda.device_count() > 99:  # pragma: no cover
            pytest.skip("a machine with 100 GPUs")
    parser = PARSERS[script]()
    argv = [*BASE_ARGS[script], flag, value]
    if script == "classify":
        argv = [flag, value, *BASE_ARGS[script]]
    try:
        parsed, _ = parser.parse(argv)
    except SystemExit as exit_info:
        assert exit_info.code == 2
        line = one_line(capsys.readouterr().err, parser.prog)
        assert flag in line or "invalid" in line, line
        return
    value_set = getattr(parsed, flag.lstrip("-").replace("-", "_"))
    if flag == "--input":
        # read when the command runs, after the flags: one line then too
        code = classify_main(["--model", "m", "--input", value])
        assert code == 2 and "no such file" in one_line(capsys.readouterr().err, "classify.py")
        return
    pytest.fail(f"{parser.prog} {flag} {value!r} was accepted as {value_set!r}")


def test_flag_errors_are_one_line_in_a_real_script():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "finetune.py"), "--lr", "-0.001"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert one_line(result.stderr, "finetune.py") == (
        "finetune.py: error: --lr must be > 0, got -0.001"
    )


def test_typed_errors_for_the_python_api(tmp_path):
    from scratchgpt.files import InputFileError, MissingInputError, UsageError
    from scratchgpt.inference.classify import read_input_texts

    with pytest.raises(MissingInputError, match="no such file") as info:
        read_input_texts([], tmp_path / "missing.txt", io.StringIO(""))
    assert isinstance(info.value, FileNotFoundError | UsageError)
    with pytest.raises(InputFileError, match="is a folder"):
        read_input_texts([], tmp_path, io.StringIO(""))
    from scratchgpt.training.arguments import FinetuneArguments

    with pytest.raises(UsageError, match=r"^--lr must be > 0, got -1$"):  # the CLI's text
        FinetuneArguments(lr=-1)


def test_a_real_bug_still_shows_its_traceback():
    parser = cli.build_classify_parser()

    def bug() -> int:
        raise RuntimeError("a bug in scratchgpt")

    with pytest.raises(RuntimeError, match="a bug in scratchgpt"):
        cli.guarded(parser, bug)


def test_app_refuses_a_host_it_cannot_serve_on(tmp_path, capsys):
    argv = ["--model", str(tmp_path / "not-loaded"), "--host", "no.such.host.invalid"]
    assert app_main(argv) == 2
    assert "--host no.such.host.invalid" in one_line(capsys.readouterr().err, "app.py")


@pytest.mark.parametrize("command", ["convert", "finetune", "prepare_data"])
def test_a_folder_of_the_users_own_files_is_not_replaced(
    command, model_dir, toy_file, tmp_path, capsys
):
    own = tmp_path / "Documents"
    own.mkdir()
    (own / "thesis.tex").write_text("years of work\n")
    if command == "convert":
        argv = ["--checkpoint-dir", str(TF_FIXTURE), "--output-dir", str(own), "--no-sample"]
        code, prog = convert_main(argv), "convert_openai_checkpoint.py"
    elif command == "finetune":
        code, prog = finetune_main(train_flags(model_dir, toy_file, own)), "finetune.py"
    else:
        argv = ["--data-file", str(toy_file), "--output-dir", str(own), "--overwrite"]
        code = prepare_data_main([*argv, "--cache-dir", str(tmp_path / "cache")])
        prog = "prepare_data.py"
    assert code == 2
    assert "it would be replaced" in one_line(capsys.readouterr().err, prog)
    assert [p.name for p in own.iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize("command", ["classify", "evaluate"])
def test_a_language_model_folder_is_not_scored_with_a_random_head(
    command, tiny_lm_dir, toy_file, tmp_path, capsys
):
    if command == "classify":
        code = classify_main(["--model", str(tiny_lm_dir), "hello"])
    else:
        out = ["--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
        code = evaluate_main(["--model", str(tiny_lm_dir), "--data-file", str(toy_file), *out])
    assert code == 2
    line = one_line(capsys.readouterr().err, f"{command}.py")
    assert "no trained classification head" in line and "scripts/finetune.py" in line
