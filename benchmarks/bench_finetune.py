"""Three fine-tuning loops, same recipe, same machine, one run: ours, the book's chapter-6
loop, and transformers' ``Trainer`` (what a transformers user would pick instead).

Book side: ``llms_from_scratch.ch06`` (its ``SpamDataset`` padded to the longest training
message, ``GPTModel`` at gpt2-small shape with a 2-class head, ``calc_loss_batch`` +
``backward`` + ``AdamW.step`` as in ``train_classifier_simple``, ``calc_accuracy_loader``).
Our side: ``scratchgpt.training.loop`` (length-grouped per-batch padding, frozen-prefix cache).
Trainer side: ``transformers.Trainer`` + ``GPT2ForSequenceClassification`` (``GPT2Config`` at
gpt2-small shape, ``pad_token_id`` set), the same trainable parts (last block + final norm +
head), ``DataCollatorWithPadding`` (per-batch padding in Trainer's random order), AdamW lr 5e-5
wd 0.1, constant lr, no clipping, fp32 on the CPU, ``report_to="none"``, no saving, no
evaluation during training (``--skip-trainer`` leaves it out).

The machine is shared, so load changes from minute to minute. Units of work of all sides are
therefore timed **interleaved** (Trainer step, book step, our steps, book eval batch, our eval
batches, Trainer eval batch, our cache of a chunk of messages, repeat), and the whole runs are
**projected** from those unit costs with the book's schedule: 5 epochs of batch 8, losses on
5+5 batches 13 times, accuracy on 5+5 batches per epoch, then accuracy on every batch of
train/validation/test (the same 367 evaluation batches for every side). Our real end-to-end
run is also measured once (printed, but load-sensitive).

How the Trainer is timed: one ``Trainer.train`` call with ``max_steps`` = rounds + 1 runs the
rounds itself: a callback at the end of each step runs the other sides' units of that round,
and each Trainer step is timed from the end of that work to the end of the next step. So a
Trainer step is its loop's real per-step cost (batch fetch and collation, forward, backward,
the gradient norm Trainer always computes, fused AdamW, scheduler, callbacks), the first step
(optimizer state creation) is the untimed warm-up, and Trainer's one-off set-up (building the
dataloader and optimizer) is left out, as data loading and model set-up are for the other
sides. A Trainer evaluation batch is one ``Trainer.prediction_step`` on a batch of Trainer's
own evaluation dataloader, what its evaluation loop runs per batch.

All sides use random weights (no pretrained GPT-2 is reachable here) and the book's data:
747 spam + 747 ham, split 70/10/20.

    python -m benchmarks.bench_finetune                 # default recipe + --trainable all
    python -m benchmarks.bench_finetune --skip-all --skip-end-to-end
    nice -n 10 python -m benchmarks.bench_finetune --rounds 2 --our-steps-per-round 2 \
        --skip-all --skip-end-to-end                    # a quick try (numbers: noisy)
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
from scratchgpt.tokenizer import load_hf_tokenizer, load_tiktoken
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
        help="interleaved rounds (each: 1 Trainer step, 1 book step, 1 book eval batch, ...)",
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
    parser.add_argument(
        "--skip-trainer",
        action="store_true",
        help="skip the third side, transformers' Trainer + GPT2ForSequenceClassification",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads for every side")  # fmt: skip
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


def book_train_frame(data_file: Path) -> pd.DataFrame:
    """The book's training messages: 747 + 747 balanced, split 70/10/20, labels 0/1."""
    from llms_from_scratch.ch06 import create_balanced_dataset, random_split

    df = pd.read_csv(data_file, sep="\t", header=None, names=["Label", "Text"], quoting=3)
    balanced = create_balanced_dataset(df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, _, _ = random_split(balanced, 0.7, 0.1)
    return train_df


def book_loaders(data_file: Path) -> tuple[DataLoader, DataLoader]:
    """The book's data preparation, verbatim: balanced, split, CSV, SpamDataset, loaders."""
    from llms_from_scratch.ch06 import SpamDataset

    train_df = book_train_frame(data_file)
    tokenizer = load_tiktoken(gpt2_bpe_dir())  # tiktoken.get_encoding("gpt2") needs network
    with tempfile.TemporaryDirectory() as tmp:
        train_df.to_csv(Path(tmp) / "train.csv", index=None)
        train_ds = SpamDataset(Path(tmp) / "train.csv", tokenizer=tokenizer)
    torch.manual_seed(123)
    loader = DataLoader(train_ds, batch_size=8, shuffle=True, drop_last=True)
    return loader, DataLoader(train_ds, batch_size=8, shuffle=False)


# ----------------------------------------------------------------------------- our side


def our_flags(data_file: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--model", "gpt2-small", "--init", "random", "--recipe", "book",
            "--data-file", str(data_file),
            "--balance", "undersample", "--keep-duplicates", "--output-dir", str(output_dir),
            "--overwrite", *extra]  # fmt: skip


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


# ----------------------------------------------------------------------------- Trainer side


class HFTrainer:
    """transformers' ``Trainer`` + ``GPT2ForSequenceClassification``, as a transformers user
    would set up the book's recipe: gpt2-small shape with random weights (``GPT2Config``, no
    dropout, ``pad_token_id`` = ``<|endoftext|>``), the book's 1,045 training messages
    tokenized without padding and padded per batch by ``DataCollatorWithPadding``, AdamW lr
    5e-5 wd 0.1 (Trainer's default fused AdamW, no decay on biases and norms), constant lr,
    batch 8, 5 epochs, no clipping (as the book), fp32 on the CPU, no evaluation, logging to
    nothing, no saving.

    Its training steps are timed inside ``Trainer.train`` itself (see ``drive``), so each
    step includes the loop's own work: fetching and collating the batch, forward, backward,
    the gradient norm it always computes, optimizer and scheduler steps, callbacks.
    """

    def __init__(self, data_file: Path, tmp: Path, trainable: str, steps: int) -> None:
        from transformers import (
            DataCollatorWithPadding,
            GPT2Config,
            GPT2ForSequenceClassification,
            PrinterCallback,
            Trainer,
            TrainingArguments,
        )

        tokenizer = load_hf_tokenizer(gpt2_bpe_dir())  # AutoTokenizer("gpt2") needs network
        train_ds = trainer_dataset(data_file, tokenizer)
        config = GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, num_labels=2,
                            pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        torch.manual_seed(123)
        self.model = GPT2ForSequenceClassification(config)
        if trainable == "last_block":
            self.model.requires_grad_(False)
            for part in (self.model.transformer.h[-1], self.model.transformer.ln_f,
                         self.model.score):  # fmt: skip
                part.requires_grad_(True)
        training_args = TrainingArguments(
            output_dir=str(tmp / f"trainer-{trainable}"),
            per_device_train_batch_size=8,
            per_device_eval_batch_size=8,
            num_train_epochs=EPOCHS,
            max_steps=steps,  # the timed window; the projection uses the full schedule
            learning_rate=5e-5,
            weight_decay=0.1,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            use_cpu=True,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=123,
        )
        collator = DataCollatorWithPadding(tokenizer)
        self.trainer = Trainer(model=self.model, args=training_args, train_dataset=train_ds,
                               data_collator=collator)  # fmt: skip
        # Its end-of-run dict of train_runtime etc. would clutter the report.
        self.trainer.remove_callback(PrinterCallback)
        self.steps_per_epoch = len(self.trainer.get_train_dataloader())
        self.eval_batches = itertools.cycle(self.trainer.get_eval_dataloader(train_ds))

    def drive(self, rounds: int, between: Callable[[int], None]) -> list[float]:
        """Run ``Trainer.train`` for 1 + ``rounds`` steps; after step r + 1 it calls
        ``between(r)`` (the other sides' units of round r), so the three sides stay
        interleaved. Returns the seconds of steps 2 .. rounds + 1, each from the end of
        ``between`` to the end of the step (step 1 is the warm-up)."""
        from transformers import TrainerCallback

        times: list[float] = []

        class Interleave(TrainerCallback):
            mark: float | None = None

            def on_step_end(self, args, state, control, **kwargs):
                if self.mark is not None:
                    times.append(time.perf_counter() - self.mark)
                if state.global_step <= rounds:
                    between(state.global_step - 1)
                self.mark = time.perf_counter()

        self.trainer.add_callback(Interleave())
        self.trainer.train()
        return times

    @torch.no_grad()
    def eval_batch(self) -> None:
        """One batch of Trainer's evaluation loop: ``prediction_step`` on a collated batch."""
        self.model.eval()
        self.trainer.prediction_step(
            self.model, next(self.eval_batches), prediction_loss_only=False
        )
        self.model.train()


def trainer_dataset(data_file: Path, tokenizer):
    """The book's training messages as a tokenized ``datasets.Dataset`` (no padding)."""
    from datasets import Dataset

    frame = book_train_frame(data_file)
    raw = Dataset.from_dict({"text": list(frame["Text"]), "label": list(frame["Label"])})
    return raw.map(lambda batch: tokenizer(batch["text"], truncation=True), batched=True,
                   remove_columns=["text"])  # fmt: skip


def trainer_side(
    args: argparse.Namespace, tmp: Path, trainable: str, rounds: int
) -> HFTrainer | None:
    """The Trainer side for ``rounds`` timed steps (plus a warm-up), unless --skip-trainer."""
    return None if args.skip_trainer else HFTrainer(args.data_file, tmp, trainable, rounds + 1)


def interleave(rounds: int, one_round: Callable[[int], None], hf: HFTrainer | None) -> list:
    """Run ``one_round(r)`` for every round: inside ``Trainer.train`` when there is a
    Trainer side (returning its step times), else in a plain loop."""
    if hf is not None:
        return hf.drive(rounds, one_round)
    for r in range(rounds):
        one_round(r)
    return []


# ----------------------------------------------------------------------------- measurements


def time_default(args: argparse.Namespace, tmp: Path) -> dict:
    """Interleaved unit costs for the default recipe (last block + final norm + head)."""
    book, ours = Book(args.data_file, "last_block"), Ours(args.data_file, tmp, "last_block")
    hf = trainer_side(args, tmp, "last_block", args.rounds)
    messages = all_token_ids(args.data_file)
    chunk = len(messages) // args.rounds
    book.step(), book.eval_batch(), ours.step(), ours.eval_batch()  # warm-up
    if hf is not None:
        hf.eval_batch()
    t = {k: [] for k in ("book_step", "book_eval", "our_step", "our_eval", "our_cache",
                         "trainer_eval")}  # fmt: skip

    def one_round(r: int) -> None:
        t["book_step"].append(seconds(book.step))
        t["our_step"] += [seconds(ours.step) for _ in range(args.our_steps_per_round)]
        t["book_eval"].append(seconds(book.eval_batch))
        t["our_eval"] += [seconds(ours.eval_batch) for _ in range(3)]
        if hf is not None:
            t["trainer_eval"].append(seconds(hf.eval_batch))
        piece = messages[r * chunk : (r + 1) * chunk]
        t["our_cache"].append(seconds(lambda: ours.cache_chunk(piece)) / len(piece))

    t["trainer_step"] = interleave(args.rounds, one_round, hf)
    unit = {k: statistics.mean(v) for k, v in t.items() if v}
    unit["book_steps"] = EPOCHS * book.steps_per_epoch
    unit["our_steps"] = EPOCHS * ours.steps_per_epoch
    if hf is not None:
        unit["trainer_steps"] = EPOCHS * hf.steps_per_epoch
    unit["messages"] = len(messages)
    train.reset_accelerate_state()
    return unit


def time_all(args: argparse.Namespace, tmp: Path) -> dict:
    """Interleaved training-step costs with every parameter trainable (no cache applies)."""
    rounds = max(2, args.rounds // 2)
    book, ours = Book(args.data_file, "all"), Ours(args.data_file, tmp, "all")
    hf = trainer_side(args, tmp, "all", rounds)
    book.step(), ours.step()  # warm-up
    t = {"book_step": [], "our_step": []}

    def one_round(r: int) -> None:
        t["book_step"].append(seconds(book.step))
        t["our_step"] += [seconds(ours.step) for _ in range(3)]

    t["trainer_step"] = interleave(rounds, one_round, hf)
    unit = {k: statistics.mean(v) for k, v in t.items() if v}
    unit |= {"book_epoch_steps": book.steps_per_epoch, "our_epoch_steps": ours.steps_per_epoch}
    if hf is not None:
        unit["trainer_epoch_steps"] = hf.steps_per_epoch
    train.reset_accelerate_state()
    return unit


def run_ours_end_to_end(args: argparse.Namespace, tmp: Path) -> dict:
    """Our whole default run, for real: data, model, cache, 5 epochs, evaluations, outputs."""
    output_dir = tmp / "ours-default"
    wall = seconds(lambda: train.main(our_flags(args.data_file, output_dir)))
    train.reset_accelerate_state()
    record = json.loads((output_dir / "training_args.json").read_text())
    metrics = json.loads((output_dir / "metrics.json").read_text())
    return {"wall": wall, "phases": record["seconds"], "metrics": metrics}


# ----------------------------------------------------------------------------- report


def report_default(u: dict) -> None:
    totals = {
        "book": u["book_steps"] * u["book_step"] + EVAL_BATCHES * u["book_eval"],
        "ours": (u["messages"] * u["our_cache"] + u["our_steps"] * u["our_step"]
                 + EVAL_BATCHES * u["our_eval"]),
    }  # fmt: skip
    if "trainer_step" in u:
        totals["Trainer"] = (
            u["trainer_steps"] * u["trainer_step"] + EVAL_BATCHES * u["trainer_eval"]
        )
    print("\n== default recipe: last block + final norm + head, 5 epochs, batch 8 ==")
    print("unit costs, timed interleaved (mean seconds):")
    print(f"  training step   book {u['book_step']:.4f}   ours {u['our_step']:.4f}"
          + trainer_cell(u, "trainer_step") + "   book/ours "
          f"{u['book_step'] / u['our_step']:.1f}x")  # fmt: skip
    print(f"  eval batch      book {u['book_eval']:.4f}   ours {u['our_eval']:.4f}"
          + trainer_cell(u, "trainer_eval") + "   book/ours "
          f"{u['book_eval'] / u['our_eval']:.1f}x")  # fmt: skip
    print(f"  prefix cache    ours {u['our_cache']:.4f} per message (once, {u['messages']} msgs)")
    print("whole run PROJECTED from unit costs (no data loading / model init on any side):")
    print(f"  book {u['book_steps']} steps + {EVAL_BATCHES} eval batches"
          f"{totals['book']:14.1f} s")  # fmt: skip
    print(f"  ours cache + {u['our_steps']} steps + {EVAL_BATCHES} eval batches"
          f"{totals['ours']:7.1f} s")  # fmt: skip
    if "Trainer" in totals:
        print(f"  Trainer {u['trainer_steps']} steps + {EVAL_BATCHES} eval batches"
              f"{totals['Trainer']:11.1f} s")  # fmt: skip
    print_ratios("whole run", totals)


def trainer_cell(u: dict, key: str) -> str:
    return f"   Trainer {u[key]:.4f}" if key in u else ""


def print_ratios(what: str, totals: dict[str, float]) -> None:
    """One line: every side's time relative to ours (> 1: ours is faster), and book/Trainer."""
    ratios = [f"{name}/ours {seconds / totals['ours']:.1f}x"
              for name, seconds in totals.items() if name != "ours"]  # fmt: skip
    if "Trainer" in totals:
        ratios.append(f"book/Trainer {totals['book'] / totals['Trainer']:.2f}x")
    print(f"  RATIOS ({what}): " + "   ".join(ratios))


def report_all(u: dict) -> None:
    totals = {"book": u["book_epoch_steps"] * u["book_step"],
              "ours": u["our_epoch_steps"] * u["our_step"]}  # fmt: skip
    print("\n== --trainable all: training time per epoch (projected from interleaved steps) ==")
    print(f"  book step {u['book_step']:.3f} s x {u['book_epoch_steps']} = {totals['book']:7.1f} s")
    print(f"  ours step {u['our_step']:.3f} s x {u['our_epoch_steps']} = {totals['ours']:7.1f} s")
    if "trainer_step" in u:
        totals["Trainer"] = u["trainer_epoch_steps"] * u["trainer_step"]
        print(f"  Trainer step {u['trainer_step']:.3f} s x {u['trainer_epoch_steps']} = "
              f"{totals['Trainer']:7.1f} s")  # fmt: skip
    print_ratios("per epoch", totals)


def report_end_to_end(e2e: dict) -> None:
    phases = ", ".join(f"{k} {v:.1f}" for k, v in e2e["phases"].items())
    accs = "  ".join(f"{s} {m['accuracy']:.2%}" for s, m in e2e["metrics"].items())
    print("\n== our default run, MEASURED end to end (load-sensitive) ==")
    print(f"  wall {e2e['wall']:.1f} s   phases: {phases}")
    print(f"  accuracy (random init): {accs}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    sides = "ours, book" + ("" if args.skip_trainer else ", Trainer")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} threads, {args.rounds} interleaved rounds; sides: {sides}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        report_default(time_default(args, tmp))
        if not args.skip_all:
            report_all(time_all(args, tmp))
        if not args.skip_end_to_end:
            report_end_to_end(run_ours_end_to_end(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
