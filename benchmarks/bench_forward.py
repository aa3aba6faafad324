"""Forward pass of a gpt2-small-shaped classifier: ours vs transformers' GPT-2, same run.

    python -m benchmarks.bench_forward [--batch 8] [--seq-len 128] [--repeats 5]

Prints seconds per forward, the ratio (transformers / ours: > 1 means ours is faster) and the
GFLOP/s each reaches against this machine's measured fp32 matmul peak.
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from benchmarks.common import matmul_peak_gflops, median_seconds, transformer_forward_flops
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="messages per forward pass")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per message")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    args = parser.parse_args()

    torch.manual_seed(0)
    ours = ScratchGPTForSequenceClassification(ScratchGPTConfig(num_labels=2)).eval()
    theirs = GPT2ForSequenceClassification(
        GPT2Config(num_labels=2, pad_token_id=50256, attn_implementation="sdpa")
    ).eval()
    ids = torch.randint(0, 50000, (args.batch, args.seq_len))
    mask = torch.ones_like(ids)

    with torch.inference_mode():
        t_ours = median_seconds(lambda: ours(ids, attention_mask=mask), args.repeats)
        t_theirs = median_seconds(lambda: theirs(ids, attention_mask=mask), args.repeats)
    peak = matmul_peak_gflops()
    # Full-forward FLOPs for both: our classifier skips most of the last block (it reads one
    # token), so its rate is "effective" — the work a full forward needs, per second.
    flops = transformer_forward_flops(12, 768, args.batch, args.seq_len)

    print(f"gpt2-small classifier forward, batch {args.batch} x {args.seq_len} tokens, fp32 CPU")
    print(f"threads: {torch.get_num_threads()}   measured matmul peak: {peak:.0f} GFLOP/s")
    for name, seconds in (("scratchgpt", t_ours), ("transformers GPT2", t_theirs)):
        achieved = flops / seconds / 1e9
        print(
            f"{name:>18}: {seconds * 1000:8.1f} ms  {achieved:6.1f} effective GFLOP/s  "
            f"({achieved / peak:.0%} of peak)"
        )
    print(f"ratio transformers/ours: {t_theirs / t_ours:.2f}x (>= 1.0 means ours is no slower)")


if __name__ == "__main__":
    main()
