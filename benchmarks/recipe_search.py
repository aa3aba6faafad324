"""Which recipe to fine-tune *random* weights with: measured, not assumed.

The book's recipe (last block + final norm + head, lr 5e-5, last-token pooling) is made for
pre-trained weights, whose frozen blocks already read English. From random weights the frozen
blocks are a fixed random feature map, and what the trainable top has to learn is different.
This script measures candidates on the same data and splits ``finetune.py`` uses, with the
frozen-prefix cache built **once** (``scratchgpt.training.loop.setup`` with the last two blocks
trainable) and shared by every candidate:

- each candidate restarts from the same random weights, trains ``--epochs`` epochs of the real
  length-grouped, seeded batches, and is scored on the whole validation split after each epoch;
- a candidate training only the last block keeps block 10 frozen (it runs forward on the cached
  states, no gradient), so its numbers equal a ``--trainable last_block`` run's.

The test split is not looked at. The best (validation spam F1, then accuracy) becomes the
default for ``--init random``; README.md ("Choosing the recipe for random weights") records the
table this script printed.

    python -m benchmarks.recipe_search --json recipes.json       # the default candidates
    python -m benchmarks.recipe_search --candidates last_block:last:5e-5 last_block:mean:1e-3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from scratchgpt.metrics import report
from scratchgpt.paths import sms_spam_file
from scratchgpt.training import loop
from scratchgpt.training.arguments import FinetuneArguments

DEFAULT_CANDIDATES = [
    "last_block:last:5e-5",  # the book's recipe
    "last_block:last:5e-4",
    "last_block:mean:5e-4",
    "last_block:mean:1e-3",
    "last_two_blocks:mean:5e-4",
    "last_two_blocks:last:5e-4",
]


@dataclass
class Candidate:
    trainable: str
    pooling: str
    lr: float

    @classmethod
    def parse(cls, text: str) -> Candidate:
        trainable, pooling, lr = text.split(":")
        if trainable not in ("last_block", "last_two_blocks"):
            raise SystemExit(f"--candidates {text}: trainable must be last_block|last_two_blocks")
        if pooling not in ("last", "mean"):
            raise SystemExit(f"--candidates {text}: pooling must be last|mean")
        return cls(trainable, pooling, float(lr))

    def __str__(self) -> str:
        return f"{self.trainable} {self.pooling} lr={self.lr:g}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-file",
        type=Path,
        default=sms_spam_file(),
        help="the SMS Spam Collection file (default: ../shared/data's copy)",
    )
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=DEFAULT_CANDIDATES,
        help="TRAINABLE:POOLING:LR triples (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs per candidate")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (the book's 8)")
    parser.add_argument("--seed", type=int, default=123, help="weights, data and order")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()  # fmt: skip


def spam_f1(result: dict, label_names: list[str]) -> float:
    metrics = report.compute_classification_metrics(
        result["predictions"], result["references"], label_names
    )
    return metrics["per_class"][label_names[-1]]["f1"]


def try_candidate(run, candidate: Candidate, snapshot: dict, epochs: int) -> list[dict]:
    """Train one candidate from the shared starting weights; whole-validation score per epoch."""
    model = run.module.model
    model.load_state_dict(snapshot)
    torch.manual_seed(run.args.seed)
    loop.configure_trainable(model, replace(run.args, trainable=candidate.trainable))
    model.config.pooling = candidate.pooling
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=candidate.lr, weight_decay=0.1, fused=True)
    history, start = [], time.perf_counter()
    for epoch in range(epochs):
        run.module.train()
        run.train_loader.set_epoch(epoch)
        for batch in run.train_loader:
            loss = run.module(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        result = loop.predict(run, run.eval_loaders["validation"])
        history.append({
            "epoch": epoch + 1,
            "val_accuracy": loop.accuracy(result),
            "val_spam_f1": spam_f1(result, run.label_names),
            "val_loss": result["loss"],
            "seconds": time.perf_counter() - start,
        })  # fmt: skip
        last = history[-1]
        print(f"  {candidate}  epoch {epoch + 1}: val acc {last['val_accuracy']:.4f}  "
              f"spam F1 {last['val_spam_f1']:.4f}  loss {last['val_loss']:.4f}  "
              f"({last['seconds']:.0f}s)", flush=True)  # fmt: skip
    return history


def main() -> None:
    args = parse_args()
    candidates = [Candidate.parse(text) for text in args.candidates]
    with tempfile.TemporaryDirectory() as tmp:
        settings = FinetuneArguments(
            init="random",
            recipe="book",  # gpt2-small's shape, batches of --batch-size; candidates set the rest
            data_file=str(args.data_file),
            trainable="last_two_blocks",  # cache blocks 0..9: every candidate fits on top
            batch_size=args.batch_size,
            seed=args.seed,
            output_dir=Path(tmp) / "out",
            no_tensorboard=True,
        )
        start = time.perf_counter()
        run = loop.setup(settings)
        print(f"setup (data, model, prefix cache) {time.perf_counter() - start:.0f}s; "
              f"{run.info['prefix_cache']}", flush=True)  # fmt: skip
        snapshot = {k: v.clone() for k, v in run.module.model.state_dict().items()}
        results = []
        for candidate in candidates:
            history = try_candidate(run, candidate, snapshot, args.epochs)
            best = max(history, key=lambda r: (r["val_spam_f1"], r["val_accuracy"]))
            results.append({"candidate": str(candidate), "history": history, "best": best})
        loop.reset_accelerate_state()
    print("\n| candidate | best epoch | val accuracy | val spam F1 | s / epoch |")
    print("|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: (-r["best"]["val_spam_f1"], -r["best"]["val_accuracy"])):
        b, per_epoch = r["best"], r["history"][-1]["seconds"] / len(r["history"])
        print(f"| {r['candidate']} | {b['epoch']} | {b['val_accuracy']:.4f} | "
              f"{b['val_spam_f1']:.4f} | {per_epoch:.0f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
