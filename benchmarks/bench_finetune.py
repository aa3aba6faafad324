"""The book's chapter-6 fine-tuning loop against ours, same recipe, same machine, one run.

Book side: ``llms_from_scratch.ch06`` (its ``SpamDataset`` padded to the longest training
message, ``GPTModel`` at gpt2-small shape with a 2-class head, ``calc_loss_batch`` +
``backward`` + ``AdamW.step`` as in ``train_classifier_simple``, ``calc_accuracy_loader``).
Our side: ``scratchgpt.training.loop`` (length-grouped per-batch padding, frozen-prefix cache).

The machine is shared, so load changes from minute to minute. Units of work of both sides
are therefore timed **interleaved** (book step, our steps, book eval batch, our eval batches,
our cache of a chunk of messages, repeat), and both whole runs are **projected** from those
unit costs with the book's schedule: 5 epochs of batch 8, losses on 5+5 batches 13 times,
accuracy on 5+5 batches per epoch, then accuracy on every batch of train/validation/test.
Our real end-to-end run is also measured once (printed, but load-sensitive).

Both sides use random weights (no pretrained GPT-2 is reachable here) and the book's data:
747 spam + 747 ham, split 70/10/20.

    python benchmarks/bench_finetune.py                 # default recipe + --trainable all
    python benchmarks/bench_finetune.py --skip-all --skip-end-to-end
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file
from scratchgpt.tokenizer import load_tiktoken
from scratchgpt.training import loop as train
from scratchgpt.training.prefix_cache import build_prefix_cache

BOOK_CONFIG = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
               "n_layers": 12, "drop_rate": 0.0, "qkv_bias": True}  # fmt: skip
EPOCHS = 5
# Evaluation batches of the book's default run: 13 x (5 + 5) loss batches, 5 x (5 + 5)
# accuracy batches, then every batch of train/validation/test (130 + 19 + 38).
EVAL_BATCHES = 13 * 10 + EPOCHS * 10 + (130 + 19 + 38)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-file", type=Path, default=sms_spam_file(),
                        help="the SMS Spam Collection file")  # fmt: skip
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="interleaved rounds (each: 1 book step, 1 book eval batch, ...)",
    )
    parser.add_argument(
        "--our-steps-per-round",
        type=int,
        default=10,
        help="our training steps per round (ours are much cheaper)",
    )
    parser.add_argument(
        "--skip-all", action="store_true", help="skip the --trainable all per-epoch comparison"
    )
    parser.add_argument(
        "--skip-end-to-end", action="store_true", help="skip our measured end-to-end default run"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads for both sides")  # fmt: skip
    return parser.parse_args()


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- book side


class Book:
    """The book's chapter-6 set-up at gpt2-small shape (random weights)."""

    def __init__(self, data_file: Path, trainable: str) -> None:
        from llms_from_scratch.ch04 import GPTModel

        self.train_loader, self.eval_loader = book_loaders(data_file)
        torch.manual_seed(123)
        self.model = GPTModel(BOOK_CONFIG)
        self.model.out_head = torch.nn.Linear(BOOK_CONFIG["emb_dim"], 2)
        if trainable == "last_block":
            self.model.requires_grad_(False)
            for part in (self.model.trf_blocks[-1], self.model.final_norm, self.model.out_head):
                part.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=5e-5, weight_decay=0.1)
        self.batches = itertools.cycle(self.train_loader)
        self.steps_per_epoch = len(self.train_loader)

    def step(self) -> None:
        """The body of ``train_classifier_simple``'s loop."""
        from llms_from_scratch.ch06 import calc_loss_batch

        inputs, targets = next(self.batches)
        self.model.train()
        self.optimizer.zero_grad()
        loss = calc_loss_batch(inputs, targets, self.model, "cpu")
        loss.backward()
        self.optimizer.step()

    def eval_batch(self) -> None:
        from llms_from_scratch.ch06 import calc_accuracy_loader

        calc_accuracy_loader(self.eval_loader, self.model, "cpu", num_batches=1)


def book_loaders(data_file: Path) -> tuple[DataLoader, DataLoader]:
    """The book's data preparation, verbatim: balanced, split, CSV, SpamDataset, loaders."""
    from llms_from_scratch.ch06 import SpamDataset, create_balanced_dataset, random_split

    df = pd.read_csv(data_file, sep="\t", header=None, names=["Label", "Text"], quoting=3)
    balanced = create_balanced_dataset(df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, _, _ = random_split(balanced, 0.7, 0.1)
    tokenizer = load_tiktoken(gpt2_bpe_dir())  # tiktoken.get_encoding("gpt2") needs network
    with tempfile.TemporaryDirectory() as tmp:
        train_df.to_csv(Path(tmp) / "train.csv", index=None)
        train_ds = SpamDataset(Path(tmp) / "train.csv", tokenizer=tokenizer)
    torch.manual_seed(123)
    loader = DataLoader(train_ds, batch_size=8, shuffle=True, drop_last=True)
    return loader, DataLoader(train_ds, batch_size=8, shuffle=False)


# ----------------------------------------------------------------------------- our side


def our_flags(data_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--model", "gpt2-small", "--init", "random", "--data-file", str(data_file),
            "--balance", "undersample", "--keep-duplicates", "--output-dir", str(output_dir),
            "--overwrite", *extra]  # fmt: skip


def reset_accelerate() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


class Ours:
    """Our trainer's pieces, set up exactly as ``train.main`` sets them up."""

    def __init__(self, data_file: Path, tmp: Path, trainable: str) -> None:
        flags = our_flags(data_file, tmp / f"ours-{trainable}", "--trainable", trainable,
                          "--no-tensorboard")  # fmt: skip
        self.run = train.setup(train.parse_args(flags))
        self.batches = itertools.cycle(train.epoch_batches(self.run, 0))
        self.eval_batches = itertools.cycle(self.run.eval_loaders["train"])
        self.steps_per_epoch = self.run.steps_per_epoch
        self.n_messages = self.run.info["num_train_examples"]

    def step(self) -> None:
        self.run.module.train()
        train.train_step(self.run, next(self.batches))

    @torch.no_grad()
    def eval_batch(self) -> None:
        self.run.module.eval()
        self.run.module(**next(self.eval_batches))

    def cache_chunk(self, token_ids: list[list[int]]) -> None:
        """Build the frozen-prefix cache of some messages (what setup does for all)."""
        module = self.run.accelerator.unwrap_model(self.run.module)
        build_prefix_cache(module.model, token_ids, module.start_block, self.run.accelerator)


def all_token_ids(data_file: Path) -> list[list[int]]:
    """Token ids of the book's 1,494 balanced messages (the cache covers every split)."""
    from llms_from_scratch.ch06 import create_balanced_dataset

    df = pd.read_csv(data_file, sep="\t", header=None, names=["Label", "Text"], quoting=3)
    encoding = load_tiktoken(gpt2_bpe_dir())
    return [encoding.encode(text) for text in create_balanced_dataset(df)["Text"]]


# ----------------------------------------------------------------------------- measurements


def time_default(args: argparse.Namespace, tmp: Path) -> dict:
    """Interleaved unit costs for the default recipe (last block + final norm + head)."""
    book, ours = Book(args.data_file, "last_block"), Ours(args.data_file, tmp, "last_block")
    messages = all_token_ids(args.data_file)
    chunk = len(messages) // args.rounds
    book.step(), book.eval_batch(), ours.step(), ours.eval_batch()  # warm-up
    t = {k: [] for k in ("book_step", "book_eval", "our_step", "our_eval", "our_cache")}
    for r in range(args.rounds):
        t["book_step"].append(seconds(book.step))
        t["our_step"] += [seconds(ours.step) for _ in range(args.our_steps_per_round)]
        t["book_eval"].append(seconds(book.eval_batch))
        t["our_eval"] += [seconds(ours.eval_batch) for _ in range(3)]
        piece = messages[r * chunk : (r + 1) * chunk]
        t["our_cache"].append(seconds(lambda piece=piece: ours.cache_chunk(piece)) / len(piece))
    unit = {k: statistics.mean(v) for k, v in t.items()}
    unit["book_steps"] = EPOCHS * book.steps_per_epoch
    unit["our_steps"] = EPOCHS * ours.steps_per_epoch
    unit["messages"] = len(messages)
    reset_accelerate()
    return unit


def time_all(args: argparse.Namespace, tmp: Path) -> dict:
    """Interleaved training-step costs with every parameter trainable (no cache applies)."""
    book, ours = Book(args.data_file, "all"), Ours(args.data_file, tmp, "all")
    book.step(), ours.step()  # warm-up
    t = {"book_step": [], "our_step": []}
    for _ in range(max(2, args.rounds // 2)):
        t["book_step"].append(seconds(book.step))
        t["our_step"] += [seconds(ours.step) for _ in range(3)]
    unit = {k: statistics.mean(v) for k, v in t.items()}
    unit |= {"book_epoch_steps": book.steps_per_epoch, "our_epoch_steps": ours.steps_per_epoch}
    reset_accelerate()
    return unit


def run_ours_end_to_end(args: argparse.Namespace, tmp: Path) -> dict:
    """Our whole default run, for real: data, model, cache, 5 epochs, evaluations, outputs."""
    output_dir = tmp / "ours-default"
    wall = seconds(lambda: train.main(our_flags(args.data_file, output_dir)))
    reset_accelerate()
    record = json.loads((output_dir / "training_args.json").read_text())
    metrics = json.loads((output_dir / "metrics.json").read_text())
    return {"wall": wall, "phases": record["seconds"], "metrics": metrics}


# ----------------------------------------------------------------------------- report


def report_default(u: dict) -> None:
    book_total = u["book_steps"] * u["book_step"] + EVAL_BATCHES * u["book_eval"]
    ours_total = (u["messages"] * u["our_cache"] + u["our_steps"] * u["our_step"]
                  + EVAL_BATCHES * u["our_eval"])  # fmt: skip
    print("\n== default recipe: last block + final norm + head, 5 epochs, batch 8 ==")
    print("unit costs, timed interleaved (mean seconds):")
    print(f"  training step   book {u['book_step']:.4f}   ours {u['our_step']:.4f}   "
          f"ratio {u['book_step'] / u['our_step']:.1f}x")  # fmt: skip
    print(f"  eval batch      book {u['book_eval']:.4f}   ours {u['our_eval']:.4f}   "
          f"ratio {u['book_eval'] / u['our_eval']:.1f}x")  # fmt: skip
    print(f"  prefix cache    ours {u['our_cache']:.4f} per message (once, {u['messages']} msgs)")
    print("whole run PROJECTED from unit costs (no data loading / model init on either side):")
    print(f"  book {u['book_steps']} steps + {EVAL_BATCHES} eval batches       {book_total:8.1f} s")
    print(f"  ours cache + {u['our_steps']} steps + {EVAL_BATCHES} eval batches "
          f"{ours_total:8.1f} s")  # fmt: skip
    print(f"  end-to-end ratio {book_total / ours_total:.1f}x")


def report_all(u: dict) -> None:
    book_epoch = u["book_epoch_steps"] * u["book_step"]
    ours_epoch = u["our_epoch_steps"] * u["our_step"]
    print("\n== --trainable all: training time per epoch (projected from interleaved steps) ==")
    print(f"  book step {u['book_step']:.3f} s x {u['book_epoch_steps']} = {book_epoch:7.1f} s")
    print(f"  ours step {u['our_step']:.3f} s x {u['our_epoch_steps']} = {ours_epoch:7.1f} s")
    print(f"  per-epoch ratio {book_epoch / ours_epoch:.1f}x")


def report_end_to_end(e2e: dict) -> None:
    phases = ", ".join(f"{k} {v:.1f}" for k, v in e2e["phases"].items())
    accs = "  ".join(f"{s} {m['accuracy']:.2%}" for s, m in e2e["metrics"].items())
    print("\n== our default run, MEASURED end to end (load-sensitive) ==")
    print(f"  wall {e2e['wall']:.1f} s   phases: {phases}")
    print(f"  accuracy (random init): {accs}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        report_default(time_default(args, tmp))
        if not args.skip_all:
            report_all(time_all(args, tmp))
        if not args.skip_end_to_end:
            report_end_to_end(run_ours_end_to_end(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
