"""Time and memory of converting an OpenAI-format GPT-2 checkpoint into a model folder.

Writes a random-weight checkpoint of a real GPT-2 size in TensorFlow's bundle format (with
``scratchgpt.weights.tf_checkpoint.write_tf_checkpoint``, whose output the tests check against a
TensorFlow-made checkpoint), then converts it in a fresh subprocess that reports its own wall
time and peak resident memory (``resource.getrusage``). Targets for 124M on the 2-core dev
machine: conversion <= 10 s, peak RSS <= 2x the checkpoint size.

    python -m benchmarks.bench_convert                 # 124M
    python -m benchmarks.bench_convert --size 355M --repeat 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TIME_TARGET_S = 10.0
RSS_TARGET_RATIO = 2.0
SIZES = ("124M", "355M", "774M", "1558M")
ROOT = Path(__file__).resolve().parents[1]

# Both steps run in children: this parent imports nothing heavy, because a child's
# getrusage peak starts from the RSS of the process it was forked from.
WRITER = """
import json, sys, time
from collections.abc import Mapping
from pathlib import Path
import numpy as np
from tqdm.auto import tqdm
from tests.fixtures.make_tf_checkpoint import openai_shapes  # the TensorFlow-made fixture's layout
from scratchgpt.weights.convert import SIZE_TO_PRESET
from scratchgpt.paths import gpt2_bpe_dir
from scratchgpt.weights.tf_checkpoint import write_tf_checkpoint
from scratchgpt_modeling.configuration_scratchgpt import PRESETS

folder, preset = Path(sys.argv[1]), PRESETS[SIZE_TO_PRESET[sys.argv[2]]]
hp = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": preset["emb_dim"],
      "n_head": preset["n_heads"], "n_layer": preset["n_layers"]}
class LazyRandom(Mapping):
    # Generates each tensor when the writer asks for it: one tensor in memory, even for 1558M.
    def __init__(self, shapes):
        self.shapes = shapes
    def __getitem__(self, name):
        rng = np.random.default_rng(sorted(self.shapes).index(name))
        return rng.standard_normal(self.shapes[name], dtype=np.float32) * 0.02
    def __iter__(self):
        return iter(tqdm(self.shapes, desc="random weights"))
    def __len__(self):
        return len(self.shapes)

start = time.perf_counter()
arrays = LazyRandom(openai_shapes(hp))
write_tf_checkpoint(folder / "model.ckpt", arrays)
(folder / "hparams.json").write_text(json.dumps(hp))
(folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\\n')
for name in ("encoder.json", "vocab.bpe"):
    (folder / name).symlink_to(gpt2_bpe_dir() / name)
nbytes = 4 * sum(int(np.prod(shape)) for shape in arrays.shapes.values())
print(json.dumps({"bytes": nbytes, "seconds": time.perf_counter() - start}))
"""

# Measures only what conversion costs, after the imports.
CONVERTER = """
import json, resource, sys, time
from pathlib import Path
import torch
from scratchgpt.weights.convert import convert

def vm_hwm():  # this process image's own peak RSS (Linux)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

torch.set_num_threads(2)
baseline = vm_hwm()
start = time.perf_counter()
convert(sys.argv[1], sys.argv[2], progress=False)
seconds = time.perf_counter() - start
report = {"seconds": seconds, "baseline_rss": baseline, "peak_rss": vm_hwm()}
report["getrusage_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
report["shards"] = len(list(Path(sys.argv[2]).glob("*.safetensors")))
print(json.dumps(report))
"""


def run_child(code: str, *args: str | Path) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; its last stdout line is a JSON report.

    It runs in the repository root, which ``python -c`` puts on ``sys.path``: the writer
    imports the test fixtures' checkpoint layout from there."""
    command = [sys.executable, "-c", code, *map(str, args)]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="124M", choices=SIZES, help="GPT-2 size")
    parser.add_argument("--repeat", type=int, default=3, help="conversions to time (best is kept)")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        checkpoint = Path(tmp) / "ckpt"
        checkpoint.mkdir()
        written = run_child(WRITER, checkpoint, args.size)
        size = written["bytes"]
        print(f"wrote {args.size} checkpoint: {size / 1e6:.0f} MB in {written['seconds']:.1f} s")
        runs = [run_child(CONVERTER, checkpoint, Path(tmp) / f"out{i}") for i in range(args.repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    peak = max(r["peak_rss"] for r in runs)
    baseline = min(r["baseline_rss"] for r in runs)
    print(
        f"conversion time: best {best['seconds']:.2f} s of {args.repeat} "
        f"(all: {', '.join(format(r['seconds'], '.2f') for r in runs)})"
    )
    print(f"  time / {TIME_TARGET_S:.0f} s target: {best['seconds'] / TIME_TARGET_S:.2f}")
    print(f"peak RSS: {peak / 1e6:.0f} MB (after imports: {baseline / 1e6:.0f} MB)")
    print(f"  peak RSS / checkpoint size: {peak / size:.2f} (target <= {RSS_TARGET_RATIO})")
    print(f"  (peak - imports) / checkpoint size: {(peak - baseline) / size:.2f}")
    print(f"safetensors files written: {runs[0]['shards']}")
    rusage = max(r["getrusage_peak"] for r in runs)
    print(f"  getrusage ru_maxrss / checkpoint size: {rusage / size:.2f}")


if __name__ == "__main__":
    main()
