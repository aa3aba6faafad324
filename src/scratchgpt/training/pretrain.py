"""Next-token pretraining on the training texts before fine-tuning (the book's chapter 5).

From random weights a classifier has only its labels to learn the language from: 3,619 of
them for the SMS data, one per message. Predicting every next token of the same messages first
gives one target per token (~83k), so the embeddings and blocks already tell a shortcode from a
greeting when fine-tuning starts. This uses no data beyond the training split's own texts
(never validation or test), so the comparison with a baseline fitted on the same split stays
fair. Measured on the SMS data (docs/RECIPES.md): after one fine-tuning epoch test spam-F1
0.95-0.96 instead of 0.90-0.93, but after the recipe's six no better on validation or
cross-validation, so it is off unless ``--pretrain-epochs N`` asks.

The output layer is the token embedding (tied, as in GPT-2), restricted to the tokens that
occur in the training texts (8,631 of GPT-2's 50,257 for SMS): a full 50,257-way softmax
would cost more than the blocks at this width, and tokens that never occur as targets would
only be pushed down. Pretraining updates the parameters fine-tuning trains (``--trainable``)
except the new head, with the fine-tuning optimiser settings (AdamW ``--lr``,
``--weight-decay``, ``--warmup-steps``, cosine decay; one optimizer step per batch). A resumed
run skips it: its checkpoint already holds the pretrained weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm
from transformers import get_scheduler

from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.data import make_train_loader, token_collator
from scratchgpt.training.optim import make_optimizer

IGNORE = -100  # cross_entropy's ignore_index: padding and never-seen tokens


class NextTokenModule(nn.Module):
    """A classifier's body as a language model over ``vocab_ids``: ``(input_ids,
    attention_mask)`` -> mean next-token loss over the real (unpadded) positions."""

    def __init__(self, model: nn.Module, vocab_ids: torch.Tensor):
        super().__init__()
        self.gpt = model.gpt
        self.register_buffer("vocab_ids", vocab_ids, persistent=False)
        position = torch.full((model.config.vocab_size,), IGNORE, dtype=torch.long)
        position[vocab_ids] = torch.arange(len(vocab_ids))
        self.register_buffer("position", position, persistent=False)  # token id -> class

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> torch.Tensor:
        out = self.gpt(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = out.last_hidden_state[:, :-1]  # (B, T-1, E): predicts tokens 1..T-1
        logits = hidden @ self.gpt.tok_emb.weight[self.vocab_ids].T  # (B, T-1, V_used)
        targets = self.position[input_ids[:, 1:]].masked_fill(attention_mask[:, 1:] == 0, IGNORE)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def vocabulary(token_rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """The sorted token ids that occur in ``token_rows``, plus the pad/end-of-text id."""
    return torch.tensor(sorted({t for row in token_rows for t in row} | {pad_id}))


def pretrain(
    model: nn.Module, data, args: FinetuneArguments, accelerator: Accelerator
) -> list[dict]:
    """``args.pretrain_epochs`` epochs of next-token training on the training split's texts;
    returns one record per epoch (``epoch``, ``loss``, ``perplexity``, ``seconds``)."""
    pad_id = model.config.pad_token_id
    train_split = data.dataset["train"]
    module = NextTokenModule(model, vocabulary(train_split["input_ids"], pad_id))
    collate = token_collator(pad_id, data.pad_length)
    loader = make_train_loader(
        train_split, train_split["length"], args.batch_size, args.seed, collate
    )
    optimizer = make_optimizer(module, args, accelerator)
    total = len(loader) * args.pretrain_epochs
    scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=total
    )
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    accelerator.print(
        f"pretraining: next-token prediction over the {len(module_of(module).vocab_ids):,} "
        f"token types of the training texts, {args.pretrain_epochs} epoch(s)"
    )
    records = []
    bar = tqdm(
        total=total, desc="pretraining", unit="step", disable=not accelerator.is_local_main_process
    )
    for epoch in range(args.pretrain_epochs):
        record = pretrain_epoch(module, optimizer, scheduler, loader, accelerator, epoch, bar)
        records.append(record)
        accelerator.print(
            f"pretraining epoch {epoch + 1}/{args.pretrain_epochs}  next-token loss "
            f"{record['loss']:.3f} (perplexity {record['perplexity']:,.0f})  "
            f"{record['seconds']:.1f}s"
        )
    bar.close()
    accelerator.free_memory(module, optimizer, loader, scheduler)  # the fine-tuning prepare is next
    return records


def pretrain_epoch(module, optimizer, scheduler, loader, accelerator, epoch: int, bar) -> dict:
    """One pass over the loader; the record of its mean loss (over every process)."""
    start = time.perf_counter()
    module.train()
    loader.set_epoch(epoch)
    sums = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    smoothed = None
    for batch in loader:
        loss = module(batch["input_ids"], batch["attention_mask"])
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        sums += torch.tensor([loss.item(), 1.0], dtype=torch.float64, device=sums.device)
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{smoothed:.3f}")
    loss_sum, batches = accelerator.reduce(sums, reduction="sum").tolist()
    mean = loss_sum / max(batches, 1)
    return {
        "epoch": epoch + 1,
        "loss": mean,
        "perplexity": math.exp(min(mean, 50.0)),
        "seconds": time.perf_counter() - start,
    }


def module_of(prepared: nn.Module) -> NextTokenModule:
    """The module under accelerate's wrappers (DDP's ``.module``)."""
    return getattr(prepared, "module", prepared)
