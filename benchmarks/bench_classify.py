"""Classify the SMS test split with a gpt2-small-shaped classifier: ours in fp32 and bf16, the
book's loop, and transformers' ``pipeline`` on the same model folder.

    python -m benchmarks.bench_classify [--book-messages N] [--batch-size 16] [--rounds 2]
                                        [--sides book,fp32,...]

Every side has the same random weights (speed does not depend on them) and shape.
- book: ``llms_from_scratch.ch06.classify_review`` on its ``GPTModel`` with a 2-class head,
  one message at a time, padded to 120 tokens (the book pads to its longest training message);
- fp32, fp32-plain: ours, ``scratchgpt.inference.classify.classify_texts`` (length-sorted
  batches padded per batch, last real token pooled), with the linear weights pre-packed for
  oneDNN (the default) and without;
- bf16: ours with the weights cast once to bfloat16 (what ``--dtype auto`` picks on hardware
  with fast bf16: AMX, AVX512-BF16, a GPU);
- pipeline-fp32, pipeline-bf16: ``transformers.pipeline("text-classification")`` on the same
  model folder (``trust_remote_code``), what a transformers user would run instead;
- onnx: the classifier exported with ``torch.onnx.export(dynamo=True)`` (dynamic batch and
  length) and run by ONNX Runtime on the CPU, fp32, with our batching: the deployer's choice.
The bf16 sides run by default only where bf16 is fast (on a CPU without AMX or AVX512-BF16 it
is emulated, ~20-100x slower than fp32); name them in ``--sides`` to run them anyway.

The split is dealt into ``--rounds`` interleaved parts, and each round runs every side on one
part, so load from other jobs on this shared machine hits all alike. ``--book-messages N``
limits the run to a random N-message subset. Prints messages/s, the ratios against the
targets (auto >= 3x fp32, >= 20x the book), and the fraction of this machine's measured matmul
peak *of the side's dtype* reached, counting the model FLOPs of each message's real tokens.
"""

from __future__ import annotations

import argparse
import copy
import random
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from benchmarks.common import describe_peaks, matmul_peaks, transformer_forward_flops
from scratchgpt.data.arguments import DataArguments
from scratchgpt.data.collate import right_pad
from scratchgpt.data.prepare import prepare_from_args
from scratchgpt.folder import save_model_folder
from scratchgpt.inference.classify import (
    cast_for_inference,
    classify_texts,
    length_sorted_batches,
)
from scratchgpt.inference.export import export_onnx
from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file
from scratchgpt.precision import fast_bf16, resolve_dtype
from scratchgpt.tokenizer import load_tiktoken
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification

BOOK_PAD_LENGTH = 120
TARGET_VS_BOOK = 20.0
TARGET_VS_FP32 = 3.0
SIDES = ("book", "fp32", "fp32-plain", "bf16", "pipeline-fp32", "pipeline-bf16", "onnx")
DTYPES = {"bf16": torch.bfloat16, "pipeline-bf16": torch.bfloat16}  # the others: fp32
GPT2_SMALL = {"n_layers": 12, "emb_dim": 768}


def sms_test_texts() -> list[str]:
    """The test split exactly as the trainer builds it by default (dedupe, 70/10/20, seed 123)."""
    args = DataArguments(data_file=str(sms_spam_file()), no_cache=True)
    return list(prepare_from_args(args, gpt2_bpe_dir(), 1024).dataset["test"]["text"])


def book_model() -> torch.nn.Module:
    from llms_from_scratch.ch04 import GPTModel

    config = {
        "vocab_size": 50257,
        "context_length": 1024,
        "emb_dim": 768,
        "n_heads": 12,
        "n_layers": 12,
        "drop_rate": 0.0,
        "qkv_bias": True,
    }
    model = GPTModel(config)
    model.out_head = torch.nn.Linear(768, 2)  # the book's classification head (chapter 6)
    return model.eval()


def time_book(model: torch.nn.Module, texts: list[str]) -> float:
    from llms_from_scratch.ch06 import classify_review

    tokenizer = load_tiktoken(gpt2_bpe_dir())
    classify_review(texts[0], model, tokenizer, "cpu", max_length=BOOK_PAD_LENGTH)  # warm-up
    start = time.perf_counter()
    for text in tqdm(texts, desc="book classify_review", unit="msg"):
        classify_review(text, model, tokenizer, "cpu", max_length=BOOK_PAD_LENGTH)
    return time.perf_counter() - start


def time_ours(
    model: torch.nn.Module, texts: list[str], batch_size: int, prepack: bool | str = "auto"
) -> float:
    classify_texts(model, gpt2_bpe_dir(), texts[:batch_size], batch_size, prepack=prepack)
    start = time.perf_counter()
    classify_texts(model, gpt2_bpe_dir(), texts, batch_size, progress=True, prepack=prepack)
    return time.perf_counter() - start


def flops_per_message(texts: list[str], cap: int = 1024) -> float:
    """Mean model FLOPs of one message over its real tokens (padding excluded)."""
    encoding = load_tiktoken(gpt2_bpe_dir())
    lengths = [min(len(ids), cap) for ids in encoding.encode_batch(texts)]
    total = sum(transformer_forward_flops(batch=1, seq_len=n, **GPT2_SMALL) for n in lengths)
    return total / len(texts)


def time_pipeline(classifier, texts: list[str], batch_size: int) -> float:
    classifier(texts[:batch_size], batch_size=batch_size, truncation=True)  # warm-up
    start = time.perf_counter()
    classifier(texts, batch_size=batch_size, truncation=True)
    return time.perf_counter() - start


def make_onnx_session(model: torch.nn.Module, folder: Path):
    """Export with dynamic batch and length, and open it in ONNX Runtime (CPU)."""
    import onnxruntime

    print("exporting to ONNX (torch.onnx dynamo exporter)...")
    path = export_onnx(model, folder.parent / "classifier.onnx", max_length=1024)
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def time_onnx(session, texts: list[str], batch_size: int) -> float:
    """Our tokenization and length-sorted batching, each batch through ONNX Runtime."""
    encoding = load_tiktoken(gpt2_bpe_dir())
    start = time.perf_counter()
    rows = [ids[:1024] for ids in encoding.encode_batch(texts)]
    for batch in length_sorted_batches([len(r) for r in rows], batch_size):
        ids, mask = right_pad([rows[i] for i in batch], encoding.eot_token)
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        torch.from_numpy(session.run(None, feeds)[0]).softmax(-1)
    return time.perf_counter() - start


def make_pipeline(folder: Path, dtype: torch.dtype):
    from transformers import pipeline

    return pipeline(
        "text-classification", model=str(folder), trust_remote_code=True, dtype=dtype, device="cpu"
    )


def report(name: str, messages: int, seconds: float, flops: float, peak: float) -> float:
    rate = messages / seconds
    fraction = rate * flops / 1e9 / peak
    print(
        f"{name:<34} {messages:>5} msgs {seconds:7.1f} s {rate:8.1f} msg/s  "
        f"{fraction:6.1%} of its dtype's peak"
    )
    return rate


def default_sides() -> list[str]:
    fast, _ = fast_bf16("cpu")
    return [side for side in SIDES if fast or side not in DTYPES]


def build_sides(names: list[str], seed: int, folder: Path) -> dict:
    """name -> a callable (texts, batch_size) -> seconds."""
    torch.manual_seed(seed)
    ours = ScratchGPTForSequenceClassification(ScratchGPTConfig.from_preset("gpt2-small")).eval()
    save_model_folder(ours, folder, gpt2_bpe_dir())
    sides = {}
    for name in names:
        if name == "book":
            book = book_model()
            sides[name] = lambda texts, batch, book=book: time_book(book, texts)
        elif name in ("fp32", "fp32-plain"):
            prepack = "auto" if name == "fp32" else False
            sides[name] = lambda texts, batch, p=prepack: time_ours(ours, texts, batch, p)
        elif name == "onnx":
            session = make_onnx_session(ours, folder)
            sides[name] = lambda texts, batch, s=session: time_onnx(s, texts, batch)
        elif name == "bf16":
            bf16 = copy.deepcopy(ours)
            cast_for_inference(bf16, "bfloat16")
            sides[name] = lambda texts, batch, m=bf16: time_ours(m, texts, batch)
        else:
            classifier = make_pipeline(folder, DTYPES.get(name, torch.float32))
            sides[name] = lambda texts, batch, c=classifier: time_pipeline(c, texts, batch)
    return sides


def print_ratios(rates: dict[str, float]) -> None:
    auto = "bf16" if resolve_dtype("auto", "cpu").dtype == torch.bfloat16 else "fp32"
    print(f"auto precision runs the {auto} side here")
    checks = [
        (auto, "fp32", TARGET_VS_FP32 if auto == "bf16" else None),
        (auto, "book", TARGET_VS_BOOK),
        (auto, "pipeline-fp32", None),
        (auto, "onnx", None),
        ("bf16", "pipeline-bf16", None),
    ]
    for ours, other, target in checks:
        if ours == other or ours not in rates or other not in rates:
            continue
        ratio = rates[ours] / rates[other]
        verdict = ""
        if target:
            verdict = f" ({'meets' if ratio >= target else 'MISSES'} the {target:.0f}x target)"
        print(f"ratio {ours}/{other}: {ratio:.2f}x{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--book-messages",
        type=int,
        default=0,
        metavar="N",
        help="classify a random N-message subset instead of the whole test split (0, the "
        "default: the whole split, ~4 minutes for the book's loop on 2 cores)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="messages per batch")
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved parts of the messages (shared machines)"
    )
    parser.add_argument(
        "--sides",
        default=",".join(default_sides()),
        help=f"comma-separated sides to run, of {', '.join(SIDES)} (default: %(default)s; the "
        "bf16 ones only where bf16 is fast)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and the weights")
    args = parser.parse_args()
    names = [name.strip() for name in args.sides.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SIDES))
    if unknown:
        parser.error(f"--sides: unknown {', '.join(unknown)}; choose among {', '.join(SIDES)}")

    texts = sms_test_texts()
    if args.book_messages:
        texts = random.Random(args.seed).sample(texts, min(args.book_messages, len(texts)))
    with tempfile.TemporaryDirectory() as tmp:
        sides = build_sides(names, args.seed, Path(tmp) / "gpt2-small-classifier")
        seconds = dict.fromkeys(names, 0.0)
        peaks = matmul_peaks()
        # The machine is shared: alternate the sides in rounds so load changes hit them alike,
        # and keep the best matmul rate seen (others' jobs only lower it) as the ceiling.
        for index in range(args.rounds):
            part = texts[index :: args.rounds]
            for name, run in sides.items():
                seconds[name] += run(part, args.batch_size)
            for dtype, peak in matmul_peaks().items():
                peaks[dtype] = max(peaks[dtype], peak)

    scope = f"a random {len(texts)}-message subset of" if args.book_messages else "the whole"
    print(
        f"\nSMS test split ({scope} split, {len(texts)} messages); gpt2-small shape, "
        f"{torch.get_num_threads()} threads; {describe_peaks(peaks)}"
    )
    flops = flops_per_message(texts)
    print(f"model FLOPs per message (real tokens): {flops / 1e9:.2f} GFLOP")
    rates = {
        name: report(name, len(texts), seconds[name], flops, peaks[DTYPES.get(name, torch.float32)])
        for name in names
    }
    print_ratios(rates)


if __name__ == "__main__":
    main()
