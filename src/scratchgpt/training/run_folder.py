"""The run folder (``--run-dir``) through a run's life: claimed, settled, finished.

What lives in it: ``checkpoints/step_NNNNNNN`` (``checkpoints.py``), the live step log, the
TensorBoard ``logs/``, ``run.lock`` while a run holds it, and ``completed.json`` once a run
kept with ``--keep-checkpoints`` has finished.

- **Claimed** before any training, by the main process only (the others learn the outcome, so
  a refusal stops every process at once instead of leaving them waiting): the output and run
  locations must be writable; then an exclusive ``flock`` on ``run.lock``, held open for the
  whole run, refuses a second run into the same folder, naming the first (the file records its
  pid, host, start time and command). The kernel drops the lock of a process however it dies
  (SIGKILL included), so the lock of a killed run is simply taken over; one still held by a
  forked child of a dead process on this host is taken over by replacing the file.
- **Leftovers** of killed runs are removed under the lock: ``.staging-*`` (the output being
  assembled), ``checkpoints/.step_*.tmp`` (a checkpoint being written) and the output's hidden
  ``.<name>.tmp-*``/``.<name>.old-*`` siblings (``folder.atomic_dir``). One output folder is
  assumed to be written through one run folder.
- **Settled**: an interrupted run (its newest checkpoint is not the one ``completed.json``
  names) asks for ``--resume-from-checkpoint latest`` or ``--overwrite``; what a finished run
  left is cleared.
- **Finished**: once the output folder is written, the run folder is removed, or marked
  completed with ``--keep-checkpoints``.

Only the entries named here are ever deleted, so a ``--run-dir`` that holds other files keeps
them. ``flock`` needs a Unix; elsewhere runs are not locked.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scratchgpt.files import OutputPathError, UsageError, check_output_dir
from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt_modeling.configuration_scratchgpt import PRESETS, SCRATCH_PRESETS

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

CHECKPOINTS = "checkpoints"
LOGS = "logs"
STEP_LOG = "steps.jsonl"
LOCK_FILE = "run.lock"
COMPLETED = "completed.json"
RUN_ENTRIES = (CHECKPOINTS, LOGS, STEP_LOG, COMPLETED)  # what clearing a run folder removes


class SetupError(UsageError):  # a ValueError: one line at the command line
    """The flags cannot work together in this launch, or the run cannot start where asked."""


class RunFolderBusy(SetupError):
    """Another live run holds the run folder."""


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (incomplete ones are hidden ``.tmp`` folders)."""
    folder = run_dir / CHECKPOINTS
    found = folder.glob("step_*") if folder.is_dir() else []
    return sorted((p for p in found if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))


# ----------------------------------------------------------------------------- writability


def check_writable(flag: str, path: Path, target: Path) -> None:
    """Raise ``SetupError`` ``"<flag> <path>: cannot write in <dir> (<reason>)"`` unless a file
    can be created in ``target`` or, where it does not exist yet, its nearest existing parent.

    A real file is created and removed: permission bits say nothing for root, and nothing about
    read-only mounts.
    """
    existing = target
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise SetupError(f"{flag} {path}: cannot write in {existing} ({reason})") from None


def check_locations(output_dir: Path, run_dir: Path, model_bytes: int = 0) -> None:
    """Both places a run writes, before it spends any time training: folders (a user's file
    there is refused, never replaced), writable, with room for the model (output) and for
    checkpoints of weights plus AdamW's two moments (run folder)."""
    # The output folder is written as a sibling and renamed: its parent must take new entries.
    check_writable("--output-dir", output_dir, output_dir.parent)
    check_writable("--run-dir", run_dir, run_dir)
    try:
        check_output_dir(output_dir, "--output-dir", model_bytes, replaces="config.json")
        check_output_dir(run_dir, "--run-dir", 3 * model_bytes)
    except OutputPathError as err:
        raise SetupError(str(err)) from None


def estimated_model_bytes(model: str | None) -> int:
    """fp32 bytes of the weights a run writes: a folder's weight files, or a preset's size."""
    if model and Path(model).is_dir():
        return sum(file.stat().st_size for file in Path(model).glob("*.safetensors"))
    shape = {**PRESETS, **SCRATCH_PRESETS}.get(str(model))
    if shape is None:
        return 0
    width, layers = shape["emb_dim"], shape["n_layers"]
    # Embeddings (GPT-2 vocabulary and context) plus 12 d^2 per block.
    return 4 * ((50257 + 1024) * width + 12 * layers * width * width)


# ----------------------------------------------------------------------------- the lock


@dataclass
class RunLock:
    """The held lock of a run folder (``path is None`` on processes that do not hold one)."""

    path: Path | None = None
    fd: int | None = None
    created: list[Path] = field(default_factory=list)  # folders made for it, outermost first
    notes: list[str] = field(default_factory=list)  # what claiming found, for the console

    def release(self) -> None:
        """Unlock; remove the lock file and the folders made for it if they were left empty.
        Safe to call twice, and on processes without the lock."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if same_file(self.fd, self.path):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: a failed start leaves no empty folders


def holder_info() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }


def describe(holder: dict) -> str:
    if not holder:
        return "a run that is starting (no details written yet)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
        f"{holder.get('command')}"
    )


def read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode("utf-8", "replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def dead_here(holder: dict) -> bool:
    """The holder ran on this host and its process is gone."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p``, returning the folders it created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def lock_run_folder(run_dir: Path) -> RunLock:
    """Take ``<run_dir>/run.lock`` for this process, or raise :class:`RunFolderBusy`."""
    created = make_dirs(run_dir)
    lock = RunLock(run_dir / LOCK_FILE, created=created)
    if fcntl is None:
        return lock
    for _ in range(5):
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
            if not dead_here(holder):
                lock.release()
                raise RunFolderBusy(
                    f"--run-dir {run_dir} is in use by another run ({describe(holder)}); wait "
                    "for it to finish, or give this run another --output-dir or --run-dir"
                ) from None
            # A forked child outlived the run that locked: the lock is stale. A new file
            # (another inode) is a new lock; the orphan keeps the old, unlinked one.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock.path)
            lock.notes.append(f"took over the lock of a run that was killed ({describe(holder)})")
            continue
        if not same_file(fd, lock.path):  # released and removed between open and flock
            os.close(fd)
            continue
        if (previous := read_holder(fd)) and not lock.notes:
            lock.notes.append(f"took over the lock of a run that was killed ({describe(previous)})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode(), 0)
        lock.fd = fd
        return lock
    raise RunFolderBusy(f"--run-dir {run_dir}: could not take {LOCK_FILE} (it keeps changing)")


# ----------------------------------------------------------------------------- claim and finish


def remove_leftovers(output_dir: Path, run_dir: Path) -> list[Path]:
    """Temporary folders of killed runs (the caller holds the lock); returns what it removed."""
    name = glob.escape(output_dir.name)
    places = [
        (run_dir, ".staging-*"),
        (run_dir / CHECKPOINTS, ".step_*.tmp"),
        (output_dir.parent, f".{name}.tmp-*"),
        (output_dir.parent, f".{name}.old-*"),
    ]
    removed = []
    for folder, pattern in places:
        for path in folder.glob(pattern) if folder.is_dir() else []:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def clear_run_folder(run_dir: Path) -> None:
    """Remove what a run writes in ``run_dir`` (nothing else, and not the lock)."""
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def settle_previous_run(run_dir: Path, resume: bool, overwrite: bool) -> list[str]:
    """Refuse to mix with an interrupted run; clear a finished one. Returns notes to print."""
    checkpoints = list_checkpoints(run_dir)
    if resume:
        return []
    completed = bool(checkpoints) and finished_at(run_dir) == checkpoints[-1].name
    if checkpoints and not completed and not overwrite:
        raise FileExistsError(
            f"{run_dir / CHECKPOINTS} holds checkpoints of an interrupted run (newest: "
            f"{checkpoints[-1].name}): pass --resume-from-checkpoint latest to continue it, "
            "--overwrite to start afresh, or another --run-dir"
        )
    clear_run_folder(run_dir)
    if completed:
        return [f"removed the checkpoints of the finished run in {run_dir}"]
    return []


def finished_at(run_dir: Path) -> str | None:
    """The newest checkpoint when a kept run finished (a resumed run that saved more and died
    is interrupted again)."""
    try:
        return json.loads((run_dir / COMPLETED).read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return None


def claim_run_folder(args: FinetuneArguments, accelerator) -> RunLock:
    """Check, lock, clean and settle the run folder on the main process; every process raises
    the main process's error if it had one."""
    from accelerate.utils import broadcast_object_list

    lock, outcome = RunLock(), [None]
    if accelerator.is_main_process:
        try:
            lock = claim(args)
        except Exception as err:  # shared with the other processes, re-raised
            outcome = [err]
    broadcast_object_list(outcome)  # also the barrier: nobody starts before the claim
    if outcome[0] is not None:
        raise outcome[0]
    for note in lock.notes:
        print(f"note: {note}")
    return lock


def claim(args: FinetuneArguments) -> RunLock:
    check_locations(args.output_dir, args.run_dir, estimated_model_bytes(args.model))
    lock = lock_run_folder(args.run_dir)
    try:
        removed = remove_leftovers(args.output_dir, args.run_dir)
        if removed:
            lock.notes.append(
                f"removed {len(removed)} leftover(s) of killed runs: "
                + ", ".join(str(p) for p in removed)
            )
        lock.notes += settle_previous_run(
            args.run_dir, bool(args.resume_from_checkpoint), args.overwrite
        )
    except BaseException:
        lock.release()
        raise
    return lock


def finish_run_folder(args: FinetuneArguments, accelerator, lock: RunLock) -> str:
    """After a successful run (the output folder is written): remove the run folder, or mark it
    completed with ``--keep-checkpoints``; release the lock. Returns a line for the console."""
    accelerator.wait_for_everyone()  # every process is done writing in it
    if accelerator.is_main_process:
        if args.keep_checkpoints:
            newest = list_checkpoints(args.run_dir)[-1:]
            done = {
                "output_dir": str(args.output_dir),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                "checkpoint": newest[0].name if newest else None,
            }
            (args.run_dir / COMPLETED).write_text(json.dumps(done) + "\n")
        else:
            clear_run_folder(args.run_dir)
    lock.release()
    if accelerator.is_main_process and not args.keep_checkpoints:
        with contextlib.suppress(OSError):
            args.run_dir.rmdir()  # if nothing but our entries was in it
    if args.keep_checkpoints:
        return f"checkpoints kept in {args.run_dir / CHECKPOINTS}"
    return f"removed {args.run_dir} (--keep-checkpoints keeps it)"
