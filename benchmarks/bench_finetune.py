"""The book's chapter-6 fine-tuning loop against ours, same recipe, same machine, one run.

Book side: ``llms_from_scratch.ch06`` (its ``SpamDataset`` padded to the longest training
message, ``GPTModel`` at gpt2-small shape with a 2-class head, ``calc_loss_batch`` +
``backward`` + ``AdamW.step`` as in ``train_classifier_simple``). Its 650 steps take ~14 min
here, so only ``--book-steps`` steps and a few evaluation batches are timed and the rest is
**projected** (printed as such). Our side is run for real, end to end, with
``scratchgpt.train.main`` (data, model, prefix cache, 5 epochs, evaluations, final metrics on
every split, output folder).

Both sides use random weights (no pretrained GPT-2 is reachable here), the balanced SMS data
(747 + 747 messages; the book's 70/10/20 split sizes), batch 8, AdamW 5e-5 / 0.1.

    python benchmarks/bench_finetune.py                 # default recipe + --trainable all
    python benchmarks/bench_finetune.py --skip-all      # default recipe only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from scratchgpt import train
from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file
from scratchgpt.tokenizer import load_tiktoken

BOOK_CONFIG = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
               "n_layers": 12, "drop_rate": 0.0, "qkv_bias": True}  # fmt: skip
# The book's schedule for its default run: 5 epochs x 130 steps, losses on 5+5 batches at
# steps 0, 50, ..., 600 (13 times), accuracy on 5+5 batches per epoch, and finally accuracy
# on the whole train/validation/test loaders (130 + 19 + 38 batches).
BOOK_EPOCHS, BOOK_STEPS_PER_EPOCH = 5, 130
BOOK_EVAL_BATCHES = 13 * 10 + BOOK_EPOCHS * 10 + (130 + 19 + 38)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-file", type=Path, default=sms_spam_file(),
                        help="the SMS Spam Collection file")  # fmt: skip
    parser.add_argument(
        "--book-steps",
        type=int,
        default=8,
        help="training steps timed on the book's side (after 1 warm-up)",
    )
    parser.add_argument(
        "--book-eval-batches",
        type=int,
        default=4,
        help="evaluation batches timed on the book's side (after 1 warm-up)",
    )
    parser.add_argument(
        "--our-steps",
        type=int,
        default=30,
        help="steps timed on our side for the per-epoch --trainable all ratio",
    )
    parser.add_argument(
        "--skip-all", action="store_true", help="skip the --trainable all comparison"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch CPU threads for both sides",
    )
    return parser.parse_args()


# ----------------------------------------------------------------------------- book side


def book_loaders(data_file: Path, folder: Path) -> tuple[DataLoader, DataLoader]:
    """The book's data preparation, verbatim: balanced, split, CSVs, SpamDataset."""
    from llms_from_scratch.ch06 import SpamDataset, create_balanced_dataset, random_split

    df = pd.read_csv(data_file, sep="\t", header=None, names=["Label", "Text"], quoting=3)
    balanced = create_balanced_dataset(df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, val_df, _ = random_split(balanced, 0.7, 0.1)
    train_df.to_csv(folder / "train.csv", index=None)
    val_df.to_csv(folder / "validation.csv", index=None)
    tokenizer = load_tiktoken(gpt2_bpe_dir())  # tiktoken.get_encoding("gpt2") needs network
    train_ds = SpamDataset(folder / "train.csv", tokenizer=tokenizer)
    torch.manual_seed(123)
    loader = DataLoader(train_ds, batch_size=8, shuffle=True, drop_last=True)
    eval_loader = DataLoader(train_ds, batch_size=8, shuffle=False)
    print(f"book: {len(train_ds)} training messages padded to {train_ds.max_length} tokens")
    return loader, eval_loader


def book_model(trainable: str) -> torch.nn.Module:
    """The book's classifier set-up from chapter 6 (random weights here)."""
    from llms_from_scratch.ch04 import GPTModel

    torch.manual_seed(123)
    model = GPTModel(BOOK_CONFIG)
    model.out_head = torch.nn.Linear(BOOK_CONFIG["emb_dim"], 2)
    if trainable == "last_block":
        model.requires_grad_(False)
        for part in (model.trf_blocks[-1], model.final_norm, model.out_head):
            part.requires_grad_(True)
    return model


def time_book(data_file: Path, trainable: str, steps: int, eval_batches: int) -> dict:
    """Seconds per training step and per evaluation batch of the book's loop."""
    from llms_from_scratch.ch06 import calc_accuracy_loader, calc_loss_batch

    with tempfile.TemporaryDirectory() as tmp:
        loader, eval_loader = book_loaders(data_file, Path(tmp))
    model = book_model(trainable)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    model.train()
    times = []
    for i, (inputs, targets) in enumerate(loader):
        if i > steps:
            break
        start = time.perf_counter()
        optimizer.zero_grad()  # the body of train_classifier_simple's loop
        loss = calc_loss_batch(inputs, targets, model, "cpu")
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    calc_accuracy_loader(eval_loader, model, "cpu", num_batches=1)  # warm-up
    start = time.perf_counter()
    calc_accuracy_loader(eval_loader, model, "cpu", num_batches=eval_batches)
    per_eval = (time.perf_counter() - start) / eval_batches
    return {"step_s": statistics.mean(times), "eval_batch_s": per_eval}


# ----------------------------------------------------------------------------- our side


def our_flags(data_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--model", "gpt2-small", "--init", "random", "--data-file", str(data_file),
            "--balance", "undersample", "--keep-duplicates", "--output-dir", str(output_dir),
            "--overwrite", *extra]  # fmt: skip


def reset_accelerate() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def run_ours_end_to_end(data_file: Path, tmp: Path) -> tuple[float, dict, dict]:
    """Our whole default run, measured: setup, cache, 5 epochs, evaluations, outputs."""
    start = time.perf_counter()
    metrics = train.main(our_flags(data_file, tmp / "ours-default"))
    seconds = time.perf_counter() - start
    reset_accelerate()
    record = json.loads((tmp / "ours-default" / "training_args.json").read_text())
    # Training-loop time (steps + the periodic 5-batch evaluations) over optimizer steps.
    step = {"step_s": record["train_seconds"] / record["global_steps"]}
    return seconds, metrics, step


def time_our_steps(data_file: Path, tmp: Path, trainable: str, steps: int) -> dict:
    """Seconds per step over the first ``steps`` batches of a (length-shuffled) epoch."""
    args = train.parse_args(our_flags(data_file, tmp / f"ours-{trainable}", "--trainable",
                                      trainable, "--no-tensorboard"))  # fmt: skip
    run = train.setup(args)
    run.module.train()
    times = []
    for i, batch in enumerate(train.epoch_batches(run, 0)):
        if i > steps:
            break
        start = time.perf_counter()
        train.train_step(run, batch)
        if i:
            times.append(time.perf_counter() - start)
    reset_accelerate()
    return {"step_s": statistics.mean(times), "steps_per_epoch": len(run.train_loader)}


# ----------------------------------------------------------------------------- report


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; book steps timed: "
          f"{args.book_steps}, book eval batches timed: {args.book_eval_batches}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        book = time_book(args.data_file, "last_block", args.book_steps, args.book_eval_batches)
        ours_s, metrics, ours_step = run_ours_end_to_end(args.data_file, tmp)
        report_default(book, ours_s, ours_step, metrics)
        if not args.skip_all:
            book_all = time_book(args.data_file, "all", max(2, args.book_steps // 2), 1)
            ours_all = time_our_steps(args.data_file, tmp, "all", args.our_steps)
            report_all(book_all, ours_all)


def report_default(book: dict, ours_s: float, ours_step: dict, metrics: dict) -> None:
    book_train = BOOK_EPOCHS * BOOK_STEPS_PER_EPOCH * book["step_s"]
    book_total = book_train + BOOK_EVAL_BATCHES * book["eval_batch_s"]
    print("\n== default recipe (last block + final norm + head, 5 epochs, batch 8) ==")
    print(f"book  per step (measured)        {book['step_s']:8.3f} s")
    print(
        f"ours  per step (measured: loop time incl. its evals / steps){ours_step['step_s']:8.3f} s   "
        f"ratio {book['step_s'] / ours_step['step_s']:6.1f}x"
    )
    print(f"book  eval batch (measured)      {book['eval_batch_s']:8.3f} s")
    print(
        f"book  end to end (PROJECTED: {BOOK_EPOCHS * BOOK_STEPS_PER_EPOCH} steps + "
        f"{BOOK_EVAL_BATCHES} eval batches) {book_total:8.1f} s"
    )
    print(f"ours  end to end (MEASURED, incl. data, cache, final eval, outputs) {ours_s:8.1f} s")
    print(f"end-to-end ratio (projected book / measured ours): {book_total / ours_s:.1f}x")
    accs = "  ".join(f"{s} {m['accuracy']:.2%}" for s, m in metrics.items())
    print(f"ours  accuracy (random init): {accs}")


def report_all(book: dict, ours: dict) -> None:
    book_epoch = BOOK_STEPS_PER_EPOCH * book["step_s"]
    ours_epoch = ours["steps_per_epoch"] * ours["step_s"]
    print("\n== --trainable all (training time per epoch, projected from timed steps) ==")
    print(f"book  per step {book['step_s']:.3f} s  -> epoch {book_epoch:7.1f} s")
    print(f"ours  per step {ours['step_s']:.3f} s  -> epoch {ours_epoch:7.1f} s")
    print(f"per-epoch ratio: {book_epoch / ours_epoch:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
