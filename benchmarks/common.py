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
    """Measured fp32 matmul throughput of this machine: the ceiling a model can approach."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, repeats=10, warmup=3)
    return 2 * size**3 / seconds / 1e9


def transformer_forward_flops(
    n_layers: int, emb_dim: int, batch: int, seq_len: int, lm_head_vocab: int = 0
) -> float:
    """Matmul FLOPs of a GPT-2 forward pass (2 per multiply-add; no LM head unless given)."""
    tokens = batch * seq_len
    per_token_block = 2 * 12 * emb_dim**2  # qkv (3E^2) + out (E^2) + MLP (8E^2)
    attention = 2 * 2 * batch * seq_len**2 * emb_dim  # QK^T and AV, full square
    return n_layers * (tokens * per_token_block + attention) + 2 * tokens * emb_dim * lm_head_vocab
