"""Robust HTTP downloads (resume, retries, atomic rename) and OpenAI's GPT-2 checkpoint files.

Only the standard library talks to the network, so no extra dependency is needed. A download
goes to ``<dest>.part`` and is renamed to ``dest`` only once every byte has arrived (and the
optional size/sha256 match): a file found at ``dest`` is therefore complete and is not fetched
again. An interrupted transfer resumes from the ``.part`` file with an HTTP ``Range`` request.

Failures that mean "no network" (DNS failure, connection refused, unreachable network) are
raised at once as :class:`DownloadError`: retrying them only makes an offline user wait. The
message says what failed, not what to do: only the caller knows which flag of its own script
helps (``--init random``, ``--data-file``, ``--checkpoint-dir``). Folders a failed download
created are removed again when they stay empty (a kept ``.part`` file keeps its folder).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

OPENAI_GPT2_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
OPENAI_GPT2_SIZES = ("124M", "355M", "774M", "1558M")
OPENAI_GPT2_FILES = (
    "checkpoint",
    "encoder.json",
    "hparams.json",
    "model.ckpt.data-00000-of-00001",
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)
CHUNK_SIZE = 1 << 20
# HTTP statuses worth retrying: the server is busy or failed, the URL itself is fine.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# errno values meaning "this machine cannot reach the server at all".
OFFLINE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH})


class DownloadError(RuntimeError):
    """A download failed for good (after retries, or at once when retrying cannot help)."""


class _TransientError(Exception):
    """An error after which a retry (resuming the ``.part`` file) may succeed."""


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``; skip it when already complete.

    ``retries`` extra attempts follow a transient failure, waiting ``backoff * 2**attempt``
    seconds; each resumes the partial file. ``timeout`` bounds the connect and each read.
    """
    dest = Path(dest)
    if dest.is_file() and _is_complete(dest, expected_size, expected_sha256):
        return dest
    created = _make_parents(dest.parent)
    part = dest.with_name(dest.name + ".part")
    try:
        for attempt in range(retries + 1):
            try:
                _fetch_into(url, part, timeout=timeout, progress=progress)
                break
            except _TransientError as err:
                if attempt == retries:
                    raise DownloadError(
                        f"giving up on {url} after {retries + 1} attempts: {err}. "
                        f"The partial file {part} is kept; running again resumes it."
                    ) from err
                time.sleep(backoff * 2**attempt)
        _verify(part, url, expected_size, expected_sha256)
    except BaseException:
        _remove_if_empty(created)
        raise
    os.replace(part, dest)
    return dest


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first."""
    created = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    """Undo :func:`_make_parents` where nothing was written (deepest first)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (a resumable .part file), or already gone
            return


def _is_complete(path: Path, expected_size: int | None, expected_sha256: str | None) -> bool:
    if expected_size is not None and path.stat().st_size != expected_size:
        return False
    return expected_sha256 is None or _sha256(path) == expected_sha256.lower()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(part: Path, url: str, expected_size: int | None, expected_sha256: str | None) -> None:
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, expected_size is {expected_size}")
    if expected_sha256 is not None and (actual := _sha256(part)) != expected_sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: sha256 {actual} != expected_sha256 {expected_sha256}")


def _fetch_into(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: append the missing bytes of ``url`` to ``part``."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "scratchgpt-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # The range starts at or past the end: the .part file may hold stale bytes.
            part.unlink()
            raise _TransientError(f"HTTP 416 for a resume at byte {offset}; restarting") from err
        if err.code in RETRYABLE_STATUSES:
            raise _TransientError(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if _is_offline(reason):
            raise DownloadError(_offline_message(url, reason)) from err
        raise _TransientError(f"cannot connect: {reason}") from err
    with response:
        _stream(response, url, part, offset, progress)


def _is_offline(reason: object) -> bool:
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in OFFLINE_ERRNOS


def _offline_message(url: str, reason: object) -> str:
    return f"cannot reach {url} ({reason}): this machine seems offline"


def _stream(
    response: http.client.HTTPResponse, url: str, part: Path, offset: int, progress: bool
) -> None:
    if response.status == 206:
        _check_content_range(response, url, offset)
    elif offset:
        offset = 0  # The server ignored the Range header and sends everything again.
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    received = offset
    with (
        part.open("ab" if offset else "wb") as out,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=not progress,
        ) as bar,
    ):
        try:
            while chunk := response.read(CHUNK_SIZE):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise _TransientError(f"transfer cut at byte {received}: {err!r}") from err
        out.flush()
        os.fsync(out.fileno())
    if total is not None and received != total:
        raise _TransientError(f"transfer cut at byte {received} of {total}")


def _check_content_range(response: http.client.HTTPResponse, url: str, offset: int) -> None:
    content_range = response.headers.get("Content-Range", "")
    # Format: "bytes START-END/TOTAL".
    start = content_range.removeprefix("bytes ").split("-", 1)[0]
    if not start.isdigit() or int(start) != offset:
        raise DownloadError(
            f"{url}: asked to resume at byte {offset}, server sent Content-Range {content_range!r}"
        )


def download_openai_gpt2(
    size: str,
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str = OPENAI_GPT2_BASE_URL,
    timeout: float = 30.0,
    retries: int = 4,
    progress: bool = True,
) -> Path:
    """Fetch OpenAI's seven GPT-2 ``size`` files into ``dest_dir`` (created) and return it."""
    if size not in OPENAI_GPT2_SIZES:
        raise ValueError(
            f"size={size!r} is not an OpenAI GPT-2 size; choose one of {OPENAI_GPT2_SIZES}"
        )
    dest_dir = Path(dest_dir)
    for name in OPENAI_GPT2_FILES:
        download_file(
            f"{base_url.rstrip('/')}/{size}/{name}",
            dest_dir / name,
            timeout=timeout,
            retries=retries,
            progress=progress,
        )
    return dest_dir
