"""The run folder (``scratchgpt.training.run_folder``): one run at a time, small checkpoints,
nothing left behind, and every refusal before any training.

A run that must be refused gets ``load_model_and_data`` replaced by a function that raises:
seeing the refusal instead proves it came before the data, the model and the training.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file

from scratchgpt.cli import finetune_main
from scratchgpt.training import loop as train
from scratchgpt.training.run_folder import (
    COMPLETED,
    LOCK_FILE,
    SetupError,
    check_locations,
    lock_run_folder,
)
from tests.helpers import flags, free_port

# Accelerate keeps process-wide singletons: every test here leaves them clean.
pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")

ROOT = Path(__file__).resolve().parents[1]

# Holds the lock of a run folder from another process until its stdin closes. With a pid
# argument it then writes that pid as the holder's: a forked child of a dead run, as it were.
HOLD_LOCK = """
import json, os, socket, sys
from pathlib import Path
from scratchgpt.training.run_folder import lock_run_folder
lock = lock_run_folder(Path(sys.argv[1]))
if len(sys.argv) > 2:
    holder = {"pid": int(sys.argv[2]), "host": socket.gethostname(), "started": "earlier",
              "command": "finetune.py (killed)"}
    os.ftruncate(lock.fd, 0)
    os.pwrite(lock.fd, json.dumps(holder).encode(), 0)
print("locked", flush=True)
sys.stdin.read()
"""


class DataLoaded(RuntimeError):
    """The run got as far as loading its data and model."""


def no_loading(args):
    raise DataLoaded


@contextlib.contextmanager
def lock_held_elsewhere(run_dir: Path, pretend_pid: int | None = None) -> Iterator:
    extra = [str(pretend_pid)] if pretend_pid else []
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- the lock


def test_a_second_run_into_a_busy_run_folder_stops_at_once_naming_the_first(
    tmp_path, model_dir, toy_file, monkeypatch, capsys
):
    monkeypatch.setattr(train, "load_model_and_data", no_loading)
    argv = flags(tmp_path, model_dir, toy_file, "out")
    with lock_held_elsewhere(tmp_path / "out.run") as first:
        assert finetune_main(argv) == 2
        err = capsys.readouterr().err
        busy = f"finetune.py: error: --run-dir {tmp_path / 'out.run'} is in use by another run"
        assert err.startswith(busy)
        assert err.count("\n") == 1  # one line
        assert f"(pid {first.pid} on {socket.gethostname()}, started 20" in err
        assert f" -c {tmp_path / 'out.run'}" in err  # its command
        first.kill()  # SIGKILL: the kernel drops its lock; its details stay in the file
        first.wait()
    train.reset_accelerate_state()
    with pytest.raises(DataLoaded):  # the killed run's lock is taken over
        train.main(argv)
    out = capsys.readouterr().out
    assert f"note: took over the lock of a run that was killed (pid {first.pid} on " in out


def test_a_lock_kept_by_a_child_of_a_dead_run_is_taken_over(
    tmp_path, model_dir, toy_file, monkeypatch, capsys
):
    monkeypatch.setattr(train, "load_model_and_data", no_loading)
    dead = a_dead_pid()
    with lock_held_elsewhere(tmp_path / "out.run", pretend_pid=dead), pytest.raises(DataLoaded):
        train.main(flags(tmp_path, model_dir, toy_file, "out"))
    assert f"took over the lock of a run that was killed (pid {dead} on " in capsys.readouterr().out


def test_every_process_of_a_launch_stops_when_the_run_folder_is_busy(tmp_path, model_dir, toy_file):
    # Only the main process locks; the others learn its answer instead of waiting for it.
    lock = lock_run_folder(tmp_path / "out.run")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--main_process_port", str(free_port()),
              str(ROOT / "scripts" / "finetune.py"),
              *flags(tmp_path, model_dir, toy_file, "out")]  # fmt: skip
    try:
        done = subprocess.run(launch, capture_output=True, text=True, timeout=300)
    finally:
        lock.release()
    assert done.returncode != 0
    assert f"is in use by another run (pid {os.getpid()} on " in done.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- writable


def test_unwritable_locations_are_refused_before_training(
    tmp_path, model_dir, toy_file, monkeypatch, capsys
):
    monkeypatch.setattr(train, "load_model_and_data", no_loading)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    base = flags(tmp_path, model_dir, toy_file, "out")
    assert finetune_main([*base, "--output-dir", str(blocker / "out")]) == 2
    assert capsys.readouterr().err == (
        f"finetune.py: error: --output-dir {blocker / 'out'}: "
        f"cannot write in {blocker} (not a directory)\n"
    )
    assert finetune_main([*base, "--run-dir", str(blocker / "run")]) == 2
    assert capsys.readouterr().err == (
        f"finetune.py: error: --run-dir {blocker / 'run'}: "
        f"cannot write in {blocker} (not a directory)\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # nothing made


def as_unprivileged_user(function: Callable[[], str]) -> str:
    """``function()`` in a child process that runs as ``nobody`` when this one is root (root
    ignores permission bits, and the tests run as root here)."""
    if os.geteuid() != 0:
        return function()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, function().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text


def refusal(output_dir: Path) -> str:
    try:
        check_locations(output_dir, output_dir.with_name(output_dir.name + ".run"))
    except SetupError as err:
        return str(err)
    return "accepted"


def test_a_folder_without_write_permission_is_named_with_the_reason():
    folder = Path(tempfile.mkdtemp())  # in /tmp, which `nobody` can reach
    try:
        folder.chmod(0o555)
        message = as_unprivileged_user(lambda: refusal(folder / "deeper" / "out"))
        expected = f"--output-dir {folder / 'deeper' / 'out'}: cannot write in {folder}"
        assert message == f"{expected} (permission denied)"
        folder.chmod(0o755)
        assert as_unprivileged_user(lambda: refusal(Path(tempfile.gettempdir()) / "x")) == (
            "accepted"
        )
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- what a run leaves


def test_a_finished_job_reruns_without_flags_and_cleans_leftovers(
    tmp_path, model_dir, toy_file, capsys
):
    argv = flags(tmp_path, model_dir, toy_file, "out", "--max-steps", "3", "--save-steps", "2")
    train.main(argv)
    run_dir = tmp_path / "out.run"
    assert not run_dir.exists()  # removed after the successful run
    train.reset_accelerate_state()
    # What killed runs leave: a staging folder, a half-written checkpoint, the output's temps.
    leftovers = [run_dir / ".staging-k1ll3d", run_dir / "checkpoints" / ".step_0000002.tmp",
                 tmp_path / ".out.tmp-k1ll3d", tmp_path / ".out.old-k1ll3d"]  # fmt: skip
    for path in leftovers:
        path.mkdir(parents=True)
    train.main(argv)  # no flag needed
    assert "note: removed 4 leftover(s) of killed runs" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} - {"cache"} == {"out"}


def test_keep_checkpoints_keeps_one_checkpoint_without_the_frozen_weights(
    tmp_path, model_dir, toy_file, capsys
):
    # The book's recipe (last block trainable) over random weights: frozen weights to leave out.
    argv = flags(tmp_path, model_dir, toy_file, "out", "--init", "random", "--recipe", "book",
                 "--epochs", "2", "--keep-checkpoints")  # fmt: skip
    train.main(argv)
    run_dir = tmp_path / "out.run"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [COMPLETED, "checkpoints", "steps.jsonl"]
    )
    (checkpoint,) = (run_dir / "checkpoints").iterdir()
    assert checkpoint.name == "step_0000014"  # 7 steps per epoch; only the newest is kept
    parameters = json.loads((tmp_path / "out" / "training_args.json").read_text())["parameters"]
    saved = load_file(checkpoint / "model.safetensors")
    # The head, the last block and the final norm: what trains, nothing frozen.
    assert sum(t.numel() for t in saved.values()) == parameters["trainable"]
    assert not [name for name in saved if ".blocks.0." in name or "tok_emb" in name]
    assert folder_bytes(checkpoint) < 4 * parameters["total"] / 10
    # The frozen weights are rebuilt from --seed on resume: another seed is refused.
    train.reset_accelerate_state()
    assert finetune_main([*argv, "--seed", "7", "--resume-from-checkpoint", "latest"]) == 2
    err = capsys.readouterr().err
    assert "was trained on top of other frozen weights than this run built" in err
    assert not (run_dir / LOCK_FILE).exists()  # the failed resume released the lock
    # A finished run's kept checkpoints are not an obstacle to running the job again.
    train.reset_accelerate_state()
    train.main(argv)
    assert "note: removed the checkpoints of the finished run" in capsys.readouterr().out
