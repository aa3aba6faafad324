"""Frozen-prefix cache: run the frozen first blocks once per message, not once per step.

With the book's recipe only the last block, the final norm and the head learn. Blocks
``0..K-1`` and the embeddings are frozen, and with no active dropout their output for a given
message is a pure function of its tokens: recomputing it every step and every epoch is wasted
work. :func:`build_prefix_cache` computes those hidden states once; training then runs only
blocks ``K..`` (``forward_from_block``) on the cached states. Right padding plus causal
attention means a real token never sees the padding after it, so states computed in one batch
are valid in any other batch: the cached path gives the same losses and weights as the
uncached one (to float rounding; ``tests/test_train.py`` checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from scratchgpt.data.collate import right_pad
from scratchgpt.inference.prepack import prepacked_linears

HIDDEN_STATES = "hidden_states"


class ClassifierTrainingModule(nn.Module):
    """The module accelerate prepares: a classifier, optionally fed from cached block outputs.

    Training always goes through ``forward`` (so DDP/FSDP hooks see every step) and the state
    dict always has the same ``model.`` prefix, whichever path is active: checkpoints do not
    depend on whether the cache was on.
    """

    def __init__(
        self, model: nn.Module, start_block: int = 0, class_weights: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.start_block = start_block
        # --class-weights: the training loss weighs each class (a buffer, so it follows the
        # module to its device; not persistent, so checkpoints do not depend on it).
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hidden_states: torch.Tensor | None = None,
    ):
        if hidden_states is None:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        else:
            out = self.model.forward_from_block(
                hidden_states, self.start_block, attention_mask=attention_mask, labels=labels
            )
        if self.class_weights is not None and labels is not None:
            out.loss = nn.functional.cross_entropy(
                out.logits.float(), labels, weight=self.class_weights
            )
        return out


def base_classifier(model: nn.Module) -> nn.Module:
    """The ScratchGPT classifier inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def frozen_prefix_length(model: nn.Module) -> int:
    """How many leading blocks are frozen, embeddings included (0 if the embeddings learn)."""
    gpt = base_classifier(model).gpt
    if any(p.requires_grad for p in (*gpt.tok_emb.parameters(), *gpt.pos_emb.parameters())):
        return 0
    frozen = 0
    for block in gpt.blocks:
        if any(p.requires_grad for p in block.parameters()):
            break
        frozen += 1
    return frozen


def cache_blocker(model: nn.Module, distributed_type: str, gradient_checkpointing: bool) -> str:
    """Why the cache cannot apply to this run, or ``""`` when it can."""
    if base_classifier(model) is not model:
        return "LoRA adapters sit inside every block"
    if frozen_prefix_length(model) == 0:
        return "the embeddings or the first block are trainable"
    if float(model.config.drop_rate) > 0:
        return f"dropout is active in the frozen blocks (drop_rate={model.config.drop_rate})"
    if distributed_type in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        return f"{distributed_type} shards the frozen blocks across processes"
    if gradient_checkpointing:
        return "gradient checkpointing was asked for (it targets full fine-tuning)"
    return ""


@dataclass
class PrefixCache:
    """Hidden states after block ``start_block - 1`` for every message, packed back to back."""

    start_block: int
    states: torch.Tensor  # (total_tokens, E), on the CPU
    offsets: list[int]  # message i lives in states[offsets[i]:offsets[i + 1]]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.states[self.offsets[index] : self.offsets[index + 1]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return self.states.numel() * self.states.element_size()


def estimate_cache_bytes(lengths: Sequence[int], emb_dim: int, bytes_per_value: int = 4) -> int:
    """Memory the cache of these messages will take."""
    return int(sum(lengths)) * emb_dim * bytes_per_value


@torch.no_grad()
def build_prefix_cache(
    model: nn.Module,
    token_ids: Sequence[Sequence[int]],
    start_block: int,
    accelerator,
    batch_size: int = 32,
    progress=None,
) -> PrefixCache:
    """Run embeddings + blocks ``0..start_block-1`` once over every message.

    The work is split across processes and gathered, so every process ends with the whole
    cache (batches are drawn from all messages on every process). Messages are run in
    length order so a batch carries almost no padding. ``progress`` (a tqdm bar) advances by
    the tokens of this process's messages as they are done.
    """
    lengths = [len(ids) for ids in token_ids]
    order = sorted(range(len(token_ids)), key=lambda i: lengths[i])
    parts = _split_evenly(order, accelerator.num_processes)
    local = _run_prefix(
        model,
        token_ids,
        parts[accelerator.process_index],
        start_block,
        accelerator,
        batch_size,
        progress,
    )
    gathered = _gather_parts(local, [sum(lengths[i] for i in p) for p in parts], accelerator)
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    states = torch.empty(offsets[-1], gathered[0].shape[-1], dtype=gathered[0].dtype)
    for part, part_states in zip(parts, gathered, strict=True):
        cursor = 0
        for i in part:
            states[offsets[i] : offsets[i + 1]] = part_states[cursor : cursor + lengths[i]]
            cursor += lengths[i]
    return PrefixCache(start_block=start_block, states=states, offsets=offsets)


def _split_evenly(items: list[int], n: int) -> list[list[int]]:
    size = -(-len(items) // n)
    return [items[k * size : (k + 1) * size] for k in range(n)]


def _run_prefix(
    model, token_ids, indices, start_block, accelerator, batch_size, progress=None
) -> torch.Tensor:
    """Flat (tokens, E) states of ``indices`` in that order, on the CPU."""
    classifier = base_classifier(model)
    was_training = classifier.training
    # drop_rate is 0 here (cache_blocker checks it), so eval mode changes nothing but intent.
    classifier.eval()
    scorer = scoring_copy(classifier, accelerator.mixed_precision)
    pieces = []
    # An inference pass over frozen weights: on CPU, pack them once (scratchgpt.inference.prepack).
    with prepacked_linears(scorer.gpt.blocks[:start_block]):
        for start in range(0, len(indices), batch_size):
            chunk = [list(token_ids[i]) for i in indices[start : start + batch_size]]
            input_ids, mask = right_pad(chunk, pad_id=0)
            with accelerator.autocast():
                hidden = scorer.embed_and_run_blocks(
                    input_ids.to(accelerator.device), mask.to(accelerator.device), start_block
                )  # (B, T, E)
            for row, ids in zip(hidden, chunk, strict=True):
                pieces.append(row[: len(ids)].float().cpu())
            if progress is not None:
                progress.update(sum(len(ids) for ids in chunk))
    classifier.train(was_training)
    emb_dim = classifier.config.emb_dim
    return torch.cat(pieces) if pieces else torch.empty(0, emb_dim)


def scoring_copy(classifier: nn.Module, mixed_precision: str) -> nn.Module:
    """What runs the frozen prefix: under bf16 a copy of the classifier with its weights cast
    once (autocast would cast every weight again in every batch), else the classifier itself.
    The model's own weights stay fp32: the trainable part trains on fp32 master weights and
    the output folder is saved in fp32. The cached states are stored in fp32 either way."""
    if mixed_precision != "bf16":
        return classifier
    return copy.deepcopy(classifier).to(torch.bfloat16).eval()


def _gather_parts(local: torch.Tensor, part_tokens: list[int], accelerator) -> list[torch.Tensor]:
    """Every process's (tokens, E) block, on every process (all-gather pads to equal sizes)."""
    if accelerator.num_processes == 1:
        return [local]
    width = max(part_tokens)
    padded = torch.zeros(width, local.shape[-1], dtype=local.dtype)
    padded[: local.shape[0]] = local
    everything = accelerator.gather(padded.to(accelerator.device)).cpu()  # (P * width, E)
    return [everything[p * width : p * width + n] for p, n in enumerate(part_tokens)]


class CachedSplit(Dataset):
    """A tokenized split whose items carry the cached states instead of token ids."""

    def __init__(self, cache: PrefixCache, labels: Sequence[int]) -> None:
        if len(cache) != len(labels):
            raise ValueError(f"cache has {len(cache)} messages but the split has {len(labels)}")
        self.cache = cache
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {HIDDEN_STATES: self.cache[index], "label": self.labels[index]}


@dataclass
class CachedCollator:
    """Right-pad cached states with zeros (causal attention never lets real tokens see them).

    ``pad_to_length`` mirrors the token collator's fixed padding (``--pad-to``), which only
    changes speed: outputs do not depend on right padding.
    """

    pad_to_length: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(f[HIDDEN_STATES].shape[0] for f in features)
        width = max(longest, self.pad_to_length or 0)
        first = features[0][HIDDEN_STATES]
        states = torch.zeros(len(features), width, first.shape[-1], dtype=first.dtype)
        mask = torch.zeros(len(features), width, dtype=torch.long)
        for row, f in enumerate(features):
            n = f[HIDDEN_STATES].shape[0]
            states[row, :n] = f[HIDDEN_STATES]
            mask[row, :n] = 1
        labels = torch.tensor([f["label"] for f in features], dtype=torch.long)
        return {HIDDEN_STATES: states, "attention_mask": mask, "labels": labels}
