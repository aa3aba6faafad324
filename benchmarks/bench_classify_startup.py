"""Classifying one message from a fresh process: the torch-only path vs the transformers path.

    python -m benchmarks.bench_classify_startup                      # a random gpt2-mini folder
    python -m benchmarks.bench_classify_startup --model outputs/sms-spam --repeats 7

Each side is a new Python process that imports, loads the folder, classifies one message and
prints the result, timed from outside (wall clock, medians, the sides interleaved):

- ours: ``scripts/classify.py --model DIR MESSAGE`` (``LightClassifier`` where the folder's
  code is ours: transformers is never imported);
- transformers: the same load, tokenization and batching through ``load_classifier``
  (``AutoModelForSequenceClassification`` with the folder's own code), i.e. classify.py
  before the torch-only path;
- floor: ``python -c "import torch"``, which neither side can avoid.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "You won a £1000 prize, call now"
TRANSFORMERS_SIDE = (
    "import sys\n"
    "from scratchgpt.inference.classify import classify_texts, load_classifier\n"
    "model, folder = load_classifier(sys.argv[1])\n"
    "print(classify_texts(model, folder, [sys.argv[2]])[0]['label'])\n"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        help="fine-tuned model folder (default: a random gpt2-mini classifier, written to a "
        "temporary folder)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (default: 5)")
    return parser.parse_args()


def random_mini_folder(parent: Path) -> Path:
    from scratchgpt.folder import save_model_folder
    from scratchgpt.weights.convert import build_model

    model = build_model(
        "gpt2-mini", init="random", num_labels=2, id2label={0: "ham", 1: "spam"}, pooling="mean"
    )
    return save_model_folder(model, parent / "gpt2-mini")


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[:3])} ... failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or random_mini_folder(Path(tmp))
        sides = {
            "ours (scripts/classify.py)": [
                sys.executable,
                "scripts/classify.py",
                "--model",
                str(folder),
                MESSAGE,
            ],
            "transformers (load_classifier)": [
                sys.executable,
                "-c",
                TRANSFORMERS_SIDE,
                str(folder),
                MESSAGE,
            ],
            "floor (import torch)": [sys.executable, "-c", "import torch"],
        }
        for command in sides.values():  # warm the page cache and .pyc files
            seconds(command)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, command in sides.items():
                times[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"one message, fresh process, median of {args.repeats} ({folder}):")
    for name, value in medians.items():
        print(f"  {name:<32} {value:6.2f} s")
    ours, theirs = medians["ours (scripts/classify.py)"], medians["transformers (load_classifier)"]
    print(f"ratio transformers / ours: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
