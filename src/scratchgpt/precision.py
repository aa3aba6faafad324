"""One precision setting for every command: ``auto`` runs bf16 where the hardware does it fast.

bf16 halves the bytes every matmul moves and, on units built for it, multiplies their speed:
Intel's AMX tiles and AVX512-BF16 on CPUs, tensor cores on GPUs. Where those units are missing
(an AVX2 laptop, most CPUs before 2020) bf16 is emulated and several times *slower* than fp32,
so ``auto`` must look before it chooses. The choice is made here, once, from what torch reports
about the device; every command records and prints it.

- Inference (``--dtype auto|float32|bfloat16``, transformers' name): the weights are cast once;
  softmax and the reported probabilities stay fp32.
- Training (``--mixed-precision auto|no|bf16|fp16``, accelerate's values plus ``auto``): autocast
  with fp32 master weights, as accelerate does it.

``SCRATCHGPT_FAST_BF16=0`` makes ``auto`` act as on a machine without fast bf16 (``=1``: as on
one with it); tests use it to take either branch on any machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch loads only when a precision is resolved: --help stays fast
    import torch

FAST_BF16_ENV = "SCRATCHGPT_FAST_BF16"
Dtype = Literal["auto", "float32", "bfloat16"]
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
DTYPE_HELP = (
    "weights' dtype while scoring: auto (default) = bfloat16 where the hardware runs it fast "
    "(CPU with AMX or AVX512-BF16, GPU with bf16 support), else float32; probabilities are "
    f"always computed in float32. {FAST_BF16_ENV}=0 makes auto choose float32"
)
MIXED_PRECISION_HELP = (
    "autocast dtype, fp32 master weights: auto (default) = bf16 where the hardware runs it "
    "fast (CPU with AMX or AVX512-BF16, GPU with bf16 support), else no (fp32) -- unless "
    "`accelerate launch --mixed_precision bf16|fp16` asked for one; no = fp32; fp16 needs a GPU"
)
DTYPE_CHOICES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: the dtype, and why it was chosen (for logs, records, the card)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        return f"precision: {self.name} ({self.reason})"


def device_type(device: str | torch.device | None) -> str:
    """ "cpu", "cuda", ... of a device given as a string, a ``torch.device`` or ``None`` (CPU)."""
    import torch

    return torch.device(device or "cpu").type


def fast_bf16(device: str | torch.device | None = None) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 matmuls faster than fp32, and the fact that says so."""
    forced = os.environ.get(FAST_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{FAST_BF16_ENV}={forced}"
    import torch

    kind = device_type(device)
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name()} supports bf16"
        return False, "this GPU has no native bf16"
    if kind != "cpu":
        return False, f"bf16 speed on {kind} is not known"
    if _cpu_has("_is_amx_tile_supported"):
        return True, "this CPU has AMX"
    if _cpu_has("_is_avx512_bf16_supported"):
        return True, "this CPU has AVX512-BF16"
    return False, "this CPU has neither AMX nor AVX512-BF16, where bf16 is slower than fp32"


def _cpu_has(check: str) -> bool:
    import torch

    probe = getattr(torch.cpu, check, None)  # private in torch 2.x: absent means unknown, no
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def resolve_dtype(choice: str, device: str | torch.device | None = None) -> Precision:
    """``--dtype`` -> the dtype to cast the weights to on ``device``."""
    import torch

    if choice in DTYPE_CHOICES:
        return Precision(getattr(torch, choice), f"--dtype {choice}")
    if choice != "auto":
        raise ValueError(f"--dtype must be one of auto, float32, bfloat16, got {choice!r}")
    fast, why = fast_bf16(device)
    return Precision(torch.bfloat16 if fast else torch.float32, f"auto: {why}")


def resolve_mixed_precision(
    choice: str, device: str | torch.device | None, launcher: str | None = None
) -> tuple[str, str]:
    """``--mixed-precision`` -> accelerate's value ("no", "bf16", "fp16") and why.

    ``launcher`` is what ``accelerate launch --mixed_precision`` (or its config) set, if
    anything: under ``auto`` an explicit bf16/fp16 there is the user's choice and wins.
    """
    if choice in ("no", "bf16", "fp16"):
        return choice, f"--mixed-precision {choice}"
    if choice != "auto":
        raise ValueError(f"--mixed-precision must be one of auto, no, bf16, fp16, got {choice!r}")
    if launcher in ("bf16", "fp16"):
        return launcher, f"auto: accelerate launch asked for {launcher}"
    fast, why = fast_bf16(device)
    return ("bf16" if fast else "no"), f"auto: {why}"
