"""Reading a user's files and writing ours, so that a bad path gets one clear error before any
work starts and nothing a user owns is ever replaced, hidden or left half-written.

- :func:`atomic_write` / :func:`atomic_file`: a file appears complete or not at all (a hidden
  temporary sibling, renamed into place), with a plain ``open``'s mode; ``folder.atomic_dir``
  does the same for folders.
- :func:`check_output_dir` / :func:`check_output_file`: before a command loads a model or
  trains, its output location must be (or be creatable as) the right kind of thing, writable,
  with room for what will be written.
- :func:`read_input_bytes` / :func:`read_text` / :func:`decode_text`: any readable file, device
  or pipe; ``-`` is stdin; a folder, a missing file and bad UTF-8 each get their own message; a
  UTF-8 byte-order mark is dropped (it would otherwise become part of the first text).
- :func:`resolve_local_model_folder` / :func:`is_model_folder`: the folder checks every command
  shares (no torch, no transformers: ``classify`` starts in about a second).

Standard library only (layer 0): every other module may use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from scratchgpt.paths import make_readable

BOM = "\ufeff"
# Room kept free beyond the estimate: logs, plots, the card, the filesystem's own overhead.
SPACE_MARGIN = 16 * 2**20


class UsageError(ValueError):
    """An input, flag or place that a command cannot use; the message names it and says what
    to do. Commands print it as one line; the Python API raises it as is."""


class OutputPathError(UsageError):
    """An output location that is not a folder, not writable, or too small."""


class InputFileError(UsageError):
    """An input that cannot be read: missing, a folder, unreadable, or not UTF-8."""


class MissingInputError(InputFileError, FileNotFoundError):
    """An input path that does not exist, or is not what it must be (a model folder); also a
    ``FileNotFoundError``, as callers caught before these types existed."""


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """An open handle on a hidden temporary sibling of ``path``, renamed onto ``path`` when the
    block ends without an exception (and removed when it raises, e.g. on a full disk).

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. An existing folder at ``path`` is refused
    rather than replaced. The file gets the mode a plain ``open`` would (0644 under umask 022),
    not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; it cannot be replaced by a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically; returns ``path``."""
    with atomic_file(path, "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(output_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``output_dir``; on success it replaces ``output_dir``.

    On any exception (a full disk, an interrupt) the temporary folder is removed and
    ``output_dir`` is left as it was; an existing folder is removed only once the new one is
    complete. An existing *file* at ``output_dir`` is refused (``OutputPathError``).
    Before the rename every folder and file inside gets the mode a plain ``mkdir``/``open``
    would give (0755/0644 under umask 022): ``mkdtemp`` makes the folder 0700, and
    safetensors >= 0.8 writes ``*.safetensors`` 0600 (through a temporary file; so does
    ``save_pretrained`` itself), which would leave the model unreadable to other users.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        # A user's file is never moved aside or replaced by a folder.
        raise OutputPathError(
            f"{output_dir}: a file of that name exists and would be lost; choose another "
            "output folder"
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        yield tmp
        for path in (tmp, *tmp.rglob("*")):
            if not path.is_symlink():
                make_readable(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output_dir.exists():
        # Move the old folder aside first so a crash between the two renames loses nothing.
        old = output_dir.with_name(f".{output_dir.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        output_dir.rename(old)
        tmp.rename(output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(output_dir)


# ----------------------------------------------------------------------------- output checks


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (where a new folder would be created)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_parent(path: Path, flag: str, need_bytes: int) -> None:
    base = nearest_existing(path.parent if path.parent != path else path)
    if not base.is_dir():
        raise OutputPathError(
            f"{flag} {path}: {base} is a file, not a folder; choose another {flag}"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{flag} {path}: {base} is not writable; choose another {flag} or fix its permissions"
        )
    if need_bytes > 0:
        free = shutil.disk_usage(base).free
        if free < need_bytes + SPACE_MARGIN:
            raise OutputPathError(
                f"{flag} {path}: needs about {format_bytes(need_bytes + SPACE_MARGIN)} but "
                f"only {format_bytes(free)} is free on the disk of {base}; free some space or "
                f"choose another {flag}"
            )


def check_output_dir(
    path: str | os.PathLike[str], flag: str, need_bytes: int = 0, replaces: str | None = None
) -> Path:
    """Refuse an output folder that cannot be written, before any work: ``path`` must be a
    folder or not exist, inside a writable folder with ``need_bytes`` (plus a margin) free.

    An existing *file* at ``path`` is refused, never replaced: it is the user's. With
    ``replaces`` (the file that marks what the command writes, e.g. ``config.json``), an
    existing folder is replaced only if it is empty or holds that file: a folder of the user's
    own files is refused, not deleted.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{flag} {path}: a file of that name exists and would be lost; choose another "
            f"{flag} (an output location is always a folder)"
        )
    if replaces and path.is_dir() and any(path.iterdir()) and not (path / replaces).exists():
        raise OutputPathError(
            f"{flag} {path}: the folder holds files but no {replaces}, so it is not one this "
            f"command wrote; it would be replaced: choose another {flag} or empty it"
        )
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: the folder is not writable")
    _check_parent(path, flag, need_bytes)
    return path


def check_output_file(path: str | os.PathLike[str], flag: str, need_bytes: int = 0) -> Path:
    """As :func:`check_output_dir`, for a single output file: a folder at ``path`` is refused."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name")
    _check_parent(path, flag, need_bytes)
    return path


def tree_size(path: str | os.PathLike[str]) -> int:
    """Bytes in the files under ``path`` (0 if it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def format_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"  # pragma: no cover


def describe_os_error(err: OSError) -> str:
    """One line for an ``OSError`` a user can act on: the path, the reason, what to do."""
    where = f"{err.filename}: " if err.filename else ""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}{reason}: the disk is full; free some space and run the command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}{reason}: choose a location you can write to, or fix its permissions"
    return f"{where}{reason}" if err.strerror else str(err)


# ----------------------------------------------------------------------------- reading


def read_input_bytes(
    path: str | os.PathLike[str], origin: str, stdin: BinaryIO | None = None
) -> bytes:
    """All bytes of ``path``: a file, a device (``/dev/null``), a pipe (``<(...)``) or ``-``
    (stdin). A missing path, a folder and an unreadable file each raise
    :class:`InputFileError` naming ``origin`` (e.g. ``--input FILE``)."""
    if str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return stream.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise MissingInputError(f"{origin}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{origin} is a folder, not a file; give a file") from None
    except PermissionError:
        raise InputFileError(f"{origin}: permission denied (the file is not readable)") from None


def decode_text(data: bytes, origin: str) -> str:
    """UTF-8 ``data`` without a leading byte-order mark; a byte that is not UTF-8 raises
    :class:`InputFileError` naming ``origin``, the line and the column (the codec's message
    names only a byte offset)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # what Windows calls "Unicode"
        raise InputFileError(
            f"{origin}: the text is UTF-16 (it starts with a UTF-16 byte-order mark); save it "
            "as UTF-8"
        )
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        prefix = data[line_start : err.start].decode("utf-8").removeprefix(BOM)
        raise InputFileError(
            f"{origin}: line {line}, column {len(prefix) + 1}: byte 0x{data[err.start]:02x} is "
            "not UTF-8; save the text as UTF-8"
        ) from None


def read_text(path: str | os.PathLike[str], origin: str | None = None) -> str:
    """A text file as UTF-8, BOM dropped, with :class:`InputFileError` for what goes wrong."""
    origin = origin or str(path)
    return decode_text(read_input_bytes(path, origin), origin)


def read_json(path: str | os.PathLike[str], origin: str | None = None) -> object:
    """A JSON file's value; invalid JSON raises :class:`InputFileError` with line and column."""
    origin = origin or str(path)
    text = read_text(path, origin)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(
            f"{origin}: line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}); "
            "fix or restore the file"
        ) from None


# ----------------------------------------------------------------------------- model folders


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "config.json").is_file()


def resolve_local_model_folder(path: str | os.PathLike[str], flag: str = "--model") -> Path:
    """``path`` if it is a model folder; else :class:`InputFileError` saying what it is."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{flag} {path}: no such folder")
    if not path.is_dir():
        raise MissingInputError(f"{flag} {path} is a file; give a model folder (with config.json)")
    if not is_model_folder(path):
        raise MissingInputError(f"{path} is not a model folder: it has no config.json")
    with open(path / "config.json", "rb") as handle:
        if handle.read(3) == BOM.encode():
            # transformers reads config.json itself, and its JSON reader refuses the mark.
            raise InputFileError(
                f"{path / 'config.json'} starts with a UTF-8 byte-order mark, which "
                "transformers cannot read; save the file as UTF-8 without BOM"
            )
    config = read_json(path / "config.json")
    if not isinstance(config, dict):
        raise InputFileError(f"{path / 'config.json'}: expected a JSON object of settings")
    return path
