"""The browser app's latency on this machine: launch to first answer, then per message.

    python -m benchmarks.bench_app [--model FOLDER] [--messages 20] [--file-messages 200]

Starts ``scripts/app.py`` as a person would (a new process) and polls its API with
``gradio_client`` until the first ``/classify`` answer comes back: the time from launch covers
imports, loading and packing the model, starting the server and the first answer. Then it
times ``/classify`` (label and scores) and ``/explain`` (leave-one-out, one batch) one SMS
message at a time through the API -- what a visitor waits, HTTP and queue included -- and
``/classify_file`` on a file of SMS messages. Without ``--model``, a gpt2-small-shaped
classifier with random weights is saved to a temporary folder (speed does not depend on the
weights). Prints the machine's load average too: these 2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_gpt2_small(folder: Path) -> Path:
    from scratchgpt.folder import save_model_folder
    from scratchgpt.paths import gpt2_bpe_dir
    from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
    from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification

    config = ScratchGPTConfig(num_labels=2, id2label={0: "ham", 1: "spam"})
    model = ScratchGPTForSequenceClassification(config).eval()
    return save_model_folder(model, folder / "gpt2-small-random", gpt2_bpe_dir())


def sms_messages(count: int, seed: int = 0) -> list[str]:
    from scratchgpt.paths import sms_spam_file

    lines = sms_spam_file().read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t", 1)[1] for line in lines if "\t" in line]
    return random.Random(seed).sample(texts, count)


def first_answer(url: str, process: subprocess.Popen, start: float, timeout: float) -> float:
    """Seconds from ``start`` until the app's ``/classify`` first answers."""
    from gradio_client import Client

    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with {process.returncode} before answering")
        try:
            Client(url, verbose=False).predict("Are we still on for tonight?", api_name="/classify")
            return time.perf_counter() - start
        except Exception:  # not up yet: connection refused, 404, ...
            time.sleep(0.25)
    raise SystemExit(f"no answer from {url} within {timeout:.0f} s")


def timed(call, items) -> list[float]:
    times = []
    for item in items:
        begin = time.perf_counter()
        call(item)
        times.append(time.perf_counter() - begin)
    return times


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"{name:<28} median {statistics.median(times) * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms"
        f"   ({len(times)} messages)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: random gpt2-small)")
    parser.add_argument("--messages", type=int, default=20, help="messages sent one at a time")
    parser.add_argument("--file-messages", type=int, default=200, help="messages in the file")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for launch")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(random_gpt2_small(Path(tmp)))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, str(ROOT / "scripts" / "app.py"), "--model", model]
        start = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            launch = first_answer(url, process, start, args.timeout)
            client = Client(url, verbose=False)
            messages = sms_messages(args.messages)
            classify = timed(lambda m: client.predict(m, api_name="/classify"), messages)
            explain = timed(lambda m: client.predict(m, api_name="/explain"), messages)
            source = Path(tmp) / "messages.txt"
            source.write_text("\n".join(sms_messages(args.file_messages, seed=1)) + "\n")
            begin = time.perf_counter()
            client.predict(handle_file(str(source)), api_name="/classify_file")
            batch = time.perf_counter() - begin
        finally:
            process.terminate()
            process.wait(timeout=30)

    print(f"model: {model}   load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'launch -> first answer':<28} {launch:7.1f} s")
    print(summary("/classify, one message", classify))
    print(summary("/explain, one message", explain))
    rate = args.file_messages / batch
    print(f"{'/classify_file':<28} {batch:7.1f} s for {args.file_messages} messages "
          f"({rate:.1f} msg/s)")  # fmt: skip


if __name__ == "__main__":
    main()
