"""Pre-packed linear weights for fast CPU inference (oneDNN), switched on and off around a call.

A CPU GEMM first rearranges ("packs") the weight matrix into the blocked layout its kernel
reads. ``F.linear`` repeats that for every call; a classifier calls each linear layer once per
batch, and at the few hundred rows of a batch of SMS messages the repacking is a visible part of
the work. oneDNN can pack a weight once (``mkldnn._reorder_linear_weight``) and multiply with
the packed copy (``mkldnn._linear_pointwise``) -- the same two ops PyTorch's own compiler emits
for frozen CPU linears. Measured by benchmarks/bench_classify.py (2 cores, gpt2-small, SMS
test split): 28.3 -> 31.3 messages/s; class probabilities equal to 1e-6.

Used by classification (``scratchgpt.inference.classify``) and by the trainer's frozen-prefix cache.
``prepacked_linears(model)`` is a context manager: inside it every ``nn.Linear`` of the model
runs on a packed copy of its weight (when no gradient is needed: the packed op has none); on exit
the modules are exactly as before, the packed copies freed. The copies cost as much memory as
the linear weights, so ``"auto"`` packs only where that fits comfortably (fp32 on CPU, oneDNN
present, weights under a quarter of physical memory). Anything else runs the plain model.

Packing itself is one pass over every weight (about as long as the forward pass of a few hundred
tokens, ~0.3 s for gpt2-small) and saves ~10% of each later forward, so it pays only for larger
calls: given the call's token count, ``"auto"`` packs only from :data:`AUTO_MIN_TOKENS` tokens on
(classifying one message stays unpacked; a test split is packed).
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# "auto" packs a call of at least AUTO_MIN_TOKENS tokens: break-even is ~10x the tokens whose
# forward takes as long as packing (a few hundred), whatever the model size (both scale with it).
from scratchgpt.inference.arguments import AUTO_MIN_TOKENS

Prepack = bool | Literal["auto"]

_MEMORY_FRACTION = 4  # "auto" packs only if the extra copy is under 1/4 of physical memory


def packing_supported() -> bool:
    """Whether this PyTorch build has oneDNN's packed-linear ops."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _packable_linears(model: nn.Module) -> list[nn.Linear]:
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.Linear)
        and module.weight.device.type == "cpu"
        and module.weight.dtype == torch.float32
    ]


def _physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def should_prepack(model: nn.Module, prepack: Prepack = "auto", tokens: int | None = None) -> bool:
    """Resolve ``prepack`` (True, False or "auto") for ``model`` on this machine, for a call of
    ``tokens`` tokens (``None``: unknown, assumed large)."""
    return _should_pack(_packable_linears(model), prepack, tokens)


def _should_pack(linears: list[nn.Linear], prepack: Prepack, tokens: int | None = None) -> bool:
    if prepack is False or not linears or not packing_supported():
        return False
    if prepack is True:
        return True
    if tokens is not None and tokens < AUTO_MIN_TOKENS:
        return False
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in linears)
    memory = _physical_memory_bytes()
    return memory is None or weight_bytes * _MEMORY_FRACTION <= memory


def _packed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
    # The packed op has no backward, and autocast would not lower it to bf16/fp16.
    if needs_grad or torch.is_autocast_enabled(x.device.type):
        return F.linear(x, self.weight, self.bias)
    # The packed op takes 2-D input; fold the leading dimensions and restore them after.
    rows = x.reshape(-1, x.shape[-1])
    out = torch.ops.mkldnn._linear_pointwise(rows, self._packed_weight, self.bias, "none", [], "")
    return out.view(*x.shape[:-1], out.shape[-1])


@contextmanager
def prepacked_linears(
    model: nn.Module, prepack: Prepack = "auto", tokens: int | None = None
) -> Iterator[bool]:
    """Run ``model``'s fp32 CPU linears on packed weights inside the block; yields whether it did.

    ``tokens``: how many tokens the block will run, when known ("auto" skips small calls).

    The packed op has no backward and no autocast rule, so a call that needs gradients or runs
    under autocast falls back to ``F.linear``; the speed-up is for fp32 under
    ``torch.inference_mode()``/``no_grad``. On exit, normal or by exception, every module is
    restored (its own ``forward``, no extra attributes).
    """
    linears = _packable_linears(model)
    if not _should_pack(linears, prepack, tokens):
        yield False
        return
    try:
        for module in linears:
            module._packed_weight = torch.ops.mkldnn._reorder_linear_weight(
                module.weight.detach(), None
            )
            module.forward = types.MethodType(_packed_forward, module)
        yield True
    finally:
        for module in linears:
            module.__dict__.pop("forward", None)
            module.__dict__.pop("_packed_weight", None)
