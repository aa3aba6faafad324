"""download.py against a real HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scratchgpt import download
from scratchgpt.download import DownloadError, download_file, download_openai_gpt2

PAYLOAD = bytes(range(256)) * 40  # 10 KiB, every byte value, so offsets errors show


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range``; cuts the first ``server.cuts`` transfers."""

    def do_GET(self) -> None:  # http.server's name
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/slow":
            # Longer than the client's timeout (an Event: time.sleep is patched by `sleeps`);
            # the client has hung up by then, so answer nothing.
            threading.Event().wait(1.0)
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if (range_header := self.headers.get("Range")) and server.honour_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if server.cuts > 0:
            server.cuts -= 1
            # Announce the full length but send only part of it, then drop the connection.
            self.wfile.write(body[start : start + (len(body) - start) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        """Keep pytest output clean."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {"/data.bin": PAYLOAD}
    httpd.requests = []
    httpd.cuts = 0
    httpd.honour_range = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer, path: str = "/data.bin") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff sleeps instead of waiting."""
    calls: list[float] = []
    monkeypatch.setattr(download.time, "sleep", calls.append)
    return calls


def test_downloads_whole_file(server, tmp_path, sleeps):
    dest = download_file(_url(server), tmp_path / "sub" / "data.bin", progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert sleeps == []


def test_cut_transfer_resumes_with_range(server, tmp_path, sleeps):
    server.cuts = 2
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    dest = download_file(
        _url(server), tmp_path / "data.bin", expected_sha256=digest, expected_size=len(PAYLOAD),
        progress=False,
    )  # fmt: skip
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None
    first_cut = len(PAYLOAD) // 3
    assert ranges[1] == f"bytes={first_cut}-"
    assert ranges[2] == f"bytes={first_cut + (len(PAYLOAD) - first_cut) // 3}-"
    assert sleeps == [1.0, 2.0]  # exponential backoff


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, sleeps):
    server.cuts = 1
    server.honour_range = False
    dest = download_file(_url(server), tmp_path / "data.bin", progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_gives_up_after_retries_and_keeps_part(server, tmp_path, sleeps):
    server.cuts = 10
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"after 3 attempts.*data\.bin\.part"):
        download_file(_url(server), dest, retries=2, progress=False)
    assert not dest.exists()  # an interrupted download never looks complete
    assert 0 < (tmp_path / "data.bin.part").stat().st_size < len(PAYLOAD)
    assert len(sleeps) == 2


def test_timeout_is_retried_then_reported(server, tmp_path, sleeps):
    with pytest.raises(DownloadError, match=r"slow after 2 attempts.*timed out"):
        download_file(
            _url(server, "/slow"), tmp_path / "slow", timeout=0.2, retries=1, progress=False
        )
    assert len(server.requests) == 2 and sleeps == [1.0]


def test_404_fails_without_retry(server, tmp_path, sleeps):
    url = _url(server, "/missing.bin")
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        download_file(url, tmp_path / "missing.bin", progress=False)
    assert len(server.requests) == 1 and sleeps == []
    assert not (tmp_path / "missing.bin").exists()


def test_connection_refused_fails_fast_with_hint(tmp_path, sleeps):
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gpt-2/models/124M/hparams.json"
    with pytest.raises(DownloadError, match="124M/hparams.json") as info:
        download_file(url, tmp_path / "cache" / "124M" / "hparams.json", progress=False)
    # What failed, not a flag: only the caller knows which flag of its script helps.
    assert "offline" in str(info.value) and "--" not in str(info.value)
    assert sleeps == []  # no backoff when the network is simply absent
    assert list(tmp_path.iterdir()) == []  # the folders it made for the file are gone


def test_skips_complete_file(server, tmp_path, sleeps):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    download_file(_url(server), dest, expected_size=len(PAYLOAD), progress=False)
    assert server.requests == []


def test_refetches_file_with_wrong_size(server, tmp_path, sleeps):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    download_file(_url(server), dest, expected_size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 1


def test_sha256_mismatch_is_an_error_and_leaves_nothing(server, tmp_path, sleeps):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="sha256"):
        download_file(_url(server), dest, expected_sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_openai_gpt2_fetches_seven_files(server, tmp_path, sleeps):
    server.files = {
        f"/models/124M/{name}": name.encode() * 3 for name in download.OPENAI_GPT2_FILES
    }
    base = _url(server, "/models")
    folder = download_openai_gpt2("124M", tmp_path / "gpt2", base_url=base, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(download.OPENAI_GPT2_FILES)
    assert (folder / "vocab.bpe").read_bytes() == b"vocab.bpe" * 3


def test_openai_gpt2_rejects_unknown_size(tmp_path):
    with pytest.raises(ValueError, match="'125M'.*124M"):
        download_openai_gpt2("125M", tmp_path)
