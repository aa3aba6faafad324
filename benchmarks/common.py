"""Timing helpers shared by the benchmark scripts (not tests: these machines are noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(size: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Measured matmul throughput of this machine in ``dtype``: the ceiling a model can approach.

    bf16 on a CPU without AMX or AVX512-BF16 runs ~100x slower than fp32 at this size (seen on
    our AVX2 machines), where one 2048^3 product takes a minute: a 512^3 probe first, and if
    ``size`` would take over a second per product, the probe's size is measured instead."""
    probe = _matmul_gflops(512, dtype, repeats=1, warmup=1)
    if 2 * size**3 / (probe * 1e9) > 1.0:
        size = 512
    return _matmul_gflops(size, dtype, repeats=5 if size == 512 else 10, warmup=1)


def _matmul_gflops(size: int, dtype: torch.dtype, repeats: int, warmup: int) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, repeats=repeats, warmup=warmup)
    return 2 * size**3 / seconds / 1e9


def matmul_peaks(size: int = 2048) -> dict[torch.dtype, float]:
    """The fp32 and bf16 ceilings, GFLOP/s: each benchmark reports against its own dtype's."""
    return {dtype: matmul_peak_gflops(size, dtype) for dtype in (torch.float32, torch.bfloat16)}


def describe_peaks(peaks: dict[torch.dtype, float]) -> str:
    """One line: both ceilings, their ratio, and what ``auto`` precision picks here (and why)."""
    from scratchgpt.precision import resolve_dtype

    fp32, bf16 = peaks[torch.float32], peaks[torch.bfloat16]
    return (
        f"measured matmul peak: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s "
        f"(bf16/fp32 {bf16 / fp32:.2f}x); {resolve_dtype('auto').describe()}"
    )


def transformer_forward_flops(
    n_layers: int, emb_dim: int, batch: int, seq_len: int, lm_head_vocab: int = 0
) -> float:
    """Matmul FLOPs of a GPT-2 forward pass (2 per multiply-add; no LM head unless given)."""
    tokens = batch * seq_len
    per_token_block = 2 * 12 * emb_dim**2  # qkv (3E^2) + out (E^2) + MLP (8E^2)
    attention = 2 * 2 * batch * seq_len**2 * emb_dim  # QK^T and AV, full square
    return n_layers * (tokens * per_token_block + attention) + 2 * tokens * emb_dim * lm_head_vocab
