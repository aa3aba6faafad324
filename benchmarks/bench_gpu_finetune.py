"""Full fine-tuning step on a GPU: ours vs transformers' ``GPT2ForSequenceClassification``, one run.

Same recipe on both sides: the preset's shape with random weights, every parameter trainable,
two labels, AdamW (lr 5e-5, weight decay 0.1, the fused kernel where the device has one),
bf16 autocast, ``batch x seq_len`` token ids with an all-ones attention mask (the trainer
always passes a mask), forward + loss + backward + optimizer step + ``zero_grad``. Our side is
``ScratchGPTForSequenceClassification`` called as ``scratchgpt.training.loop`` calls it (through
accelerate that is the same autocast and the same fused AdamW). The sides run one after the
other, each alone on the GPU, so ``torch.cuda.max_memory_allocated`` is that side's peak
(weights + gradients + AdamW states + activations). Before timing, a parity check copies
transformers' weights into our model and compares a few training steps' losses.

    python -m benchmarks.bench_gpu_finetune --preset gpt2-medium gpt2-large --shapes 8x32 16x128
    python -m benchmarks.bench_gpu_finetune --device cpu --preset tiny --steps 2   # smoke test

Two helpers for ``benchmarks/gpu_check.sh`` live here too, so the device machine runs one file:
``--compat-check`` (our modeling code alone on whatever transformers is installed: forward,
cached vs uncached ``generate``, save + reload through ``trust_remote_code``) and
``--check-output DIR`` (a ``scripts/finetune.py`` output folder loads with transformers alone
on the CPU, and on the GPU in fp32, and both give the same logits).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TINY = {"emb_dim": 64, "n_layers": 2, "n_heads": 2, "context_length": 256}
PAD_ID = 50256
SMS_SAMPLES = [
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "Ok lar... Joking wif u oni...",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121",
    "I'm gonna be home soon and i don't want to talk about this stuff anymore tonight, k?",
    "See you at 6?",
]


# ----------------------------------------------------------------------------- imports


def modeling():
    """``scratchgpt_modeling`` installed (``pip install -e .``), else straight from ``modeling/``
    (the compatibility check runs before anything is installed)."""
    try:
        import scratchgpt_modeling.modeling_scratchgpt as module
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "scratchgpt_modeling",
            REPO / "modeling" / "__init__.py",
            submodule_search_locations=[str(REPO / "modeling")],
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["scratchgpt_modeling"] = package
        spec.loader.exec_module(package)
        import scratchgpt_modeling.modeling_scratchgpt as module
    return module


def our_config(preset: str, **overrides):
    from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig

    modeling()
    if preset == "tiny":
        return ScratchGPTConfig(**TINY, **overrides)
    return ScratchGPTConfig.from_preset(preset, **overrides)


def hf_config(config):
    """transformers' GPT-2 at our config's shape, without dropout, SDPA attention."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.emb_dim,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        num_labels=2,
        pad_token_id=PAD_ID,
        attn_implementation="sdpa",
    )


def build(side: str, preset: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """A fresh classifier of one side, its weights initialised directly on ``device``."""
    from transformers import GPT2ForSequenceClassification

    mod = modeling()
    config = our_config(preset, num_labels=2)
    torch.manual_seed(seed)
    with torch.device(device):
        if side == "ours":
            model = mod.ScratchGPTForSequenceClassification(config)
        else:
            model = GPT2ForSequenceClassification(hf_config(config))
    return model.train()


@torch.no_grad()
def copy_hf_into_ours(hf: torch.nn.Module, ours: torch.nn.Module) -> None:
    """transformers' GPT-2 weights into our module layout (Conv1D weights are transposed)."""
    src, gpt = hf.transformer, ours.gpt
    gpt.tok_emb.weight.copy_(src.wte.weight)
    gpt.pos_emb.weight.copy_(src.wpe.weight)
    for theirs, block in zip(src.h, gpt.blocks, strict=True):
        pairs = [
            (block.norm1, theirs.ln_1, False),
            (block.att.qkv, theirs.attn.c_attn, True),
            (block.att.out_proj, theirs.attn.c_proj, True),
            (block.norm2, theirs.ln_2, False),
            (block.ff.fc, theirs.mlp.c_fc, True),
            (block.ff.proj, theirs.mlp.c_proj, True),
        ]
        for mine, other, transpose in pairs:
            mine.weight.copy_(other.weight.T if transpose else other.weight)
            mine.bias.copy_(other.bias)
    gpt.final_norm.weight.copy_(src.ln_f.weight)
    gpt.final_norm.bias.copy_(src.ln_f.bias)
    ours.classifier.weight.copy_(hf.score.weight)
    ours.classifier.bias.zero_()  # transformers' score layer has no bias


# ----------------------------------------------------------------------------- one training step


def make_batches(count: int, batch: int, seq_len: int, device: torch.device, seed: int = 1):
    """``count`` batches of random token ids (never the pad id), full masks, random labels."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, PAD_ID, (batch, seq_len), generator=gen)
        labels = torch.randint(0, 2, (batch,), generator=gen)
        batches.append(
            {
                "input_ids": ids.to(device),
                "attention_mask": torch.ones_like(ids).to(device),
                "labels": labels.to(device),
            }
        )
    return batches


def make_optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.AdamW:
    """The trainer's optimizer: AdamW lr 5e-5, weight decay 0.1, fused on CPU and CUDA."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1, fused=fused or None)


def train_step(model, optimizer, batch: dict, device: torch.device, dtype) -> torch.Tensor:
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- measurements


def parity(preset: str, device: torch.device, dtype, steps: int = 3) -> dict:
    """Same weights, same batches: our losses track transformers' over a few AdamW steps."""
    hf = build("transformers", preset, device)
    ours = build("ours", preset, device)
    copy_hf_into_ours(hf, ours)
    batches = make_batches(steps, 4, 32, device, seed=7)
    losses = {}
    for name, model in (("transformers", hf), ("ours", ours)):
        optimizer = make_optimizer(model, device)
        losses[name] = [
            train_step(model, optimizer, b, device, dtype).float().item() for b in batches
        ]
    diff = max(abs(a - b) for a, b in zip(losses["ours"], losses["transformers"], strict=True))
    # bf16 autocast rounds differently in the two graphs (fused qkv, one-token last block)
    tolerance = 2e-2 if dtype is not None else 1e-4
    del hf, ours
    release(device)
    return {**losses, "max_abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}


def release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_side(side: str, preset: str, shape: tuple[int, int], args, device, dtype) -> dict:
    """Median seconds per training step over ``args.repeats`` rounds of ``args.steps`` steps."""
    batch, seq_len = shape
    release(device)
    model = build(side, preset, device)
    optimizer = make_optimizer(model, device)
    batches = make_batches(4, batch, seq_len, device)  # rotate: no single cached batch
    for i in range(args.warmup):
        train_step(model, optimizer, batches[i % len(batches)], device, dtype)
    synchronize(device)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for i in range(args.steps):
            loss = train_step(model, optimizer, batches[i % len(batches)], device, dtype)
        synchronize(device)
        times.append((time.perf_counter() - start) / args.steps)
    step = statistics.median(times)
    result = {
        "side": side,
        "step_s": step,
        "step_s_spread": [min(times), max(times)],
        "examples_per_s": batch / step,
        "tokens_per_s": batch * seq_len / step,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": loss.float().item(),
        "peak_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
    }
    del model, optimizer, batches
    release(device)
    return result


def training_flops(preset: str, batch: int, seq_len: int) -> float:
    """Matmul FLOPs of one full training step (3x a full forward: the backward is 2x)."""
    config = our_config(preset)
    e, layers, tokens = config.emb_dim, config.n_layers, batch * seq_len
    forward = layers * (2 * 12 * e * e * tokens + 2 * 2 * batch * seq_len**2 * e)
    return 3 * forward


def bench(args) -> dict:
    device = torch.device(args.device)
    dtype = None if args.dtype == "fp32" else {"bf16": torch.bfloat16}[args.dtype]
    import transformers

    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
    }
    print(" ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    results = {"info": info, "parity": {}, "runs": []}
    for preset in args.parity_preset:
        results["parity"][preset] = parity(preset, device, dtype)
        p = results["parity"][preset]
        print(
            f"parity {preset}: max |loss diff| {p['max_abs_diff']:.2e} "
            f"(tolerance {p['tolerance']:.0e}) {'OK' if p['ok'] else 'FAIL'}",
            flush=True,
        )
    for preset in args.preset:
        for shape in args.shapes:
            row = {"preset": preset, "batch": shape[0], "seq_len": shape[1]}
            for side in args.order:
                row[side] = time_side(side, preset, shape, args, device, dtype)
            flops = training_flops(preset, *shape)
            for side in args.order:
                row[side]["effective_tflops"] = flops / row[side]["step_s"] / 1e12
            row["speedup"] = row["transformers"]["step_s"] / row["ours"]["step_s"]
            if device.type == "cuda":
                row["memory_ratio"] = row["transformers"]["peak_gib"] / row["ours"]["peak_gib"]
            results["runs"].append(row)
            print_row(row, device)
    print_table(results["runs"], device)
    return results


def print_row(row: dict, device: torch.device) -> None:
    head = f"{row['preset']} {row['batch']}x{row['seq_len']}:"
    for side in ("ours", "transformers"):
        r = row[side]
        mem = f", peak {r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else ""
        print(
            f"{head} {side:>12} {r['step_s'] * 1000:8.2f} ms/step  "
            f"{r['examples_per_s']:8.1f} ex/s  {r['effective_tflops']:6.1f} TFLOP/s{mem}",
            flush=True,
        )


def print_table(runs: list[dict], device: torch.device) -> None:
    print(
        "\n| preset | batch x seq | ours ex/s | transformers ex/s | speedup | "
        "ours peak GiB | transformers peak GiB | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in runs:
        o, t = row["ours"], row["transformers"]
        gib = (
            (f"{o['peak_gib']:.2f}", f"{t['peak_gib']:.2f}", f"{row['memory_ratio']:.2f}x")
            if device.type == "cuda"
            else ("-", "-", "-")
        )
        print(
            f"| {row['preset']} | {row['batch']}x{row['seq_len']} | {o['examples_per_s']:.1f} "
            f"| {t['examples_per_s']:.1f} | {row['speedup']:.2f}x | {' | '.join(gib)} |"
        )


# ----------------------------------------------------------------------------- device helpers


def compat_check(device: torch.device) -> dict:
    """Our modeling code on the installed transformers: forward, generate, remote-code reload."""
    import transformers

    report: dict = {"transformers": transformers.__version__, "torch": torch.__version__}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = modeling()
        config = our_config("tiny")
        torch.manual_seed(0)
        lm = mod.ScratchGPTForCausalLM(config).to(device).eval()
        clf = mod.ScratchGPTForSequenceClassification(our_config("tiny", num_labels=2))
        clf = clf.to(device).eval()
        ids = torch.randint(0, PAD_ID, (2, 12), device=device)
        with torch.no_grad():
            report["lm_logits_shape"] = list(lm(ids).logits.shape)
            report["clf_logits_shape"] = list(clf(ids).logits.shape)
            mask = torch.ones_like(ids)
            kwargs = {"attention_mask": mask, "max_new_tokens": 8, "do_sample": False}
            cached = lm.generate(ids, use_cache=True, **kwargs)
            plain = lm.generate(ids, use_cache=False, **kwargs)
        report["generate_cached_equals_uncached"] = bool(torch.equal(cached, plain))
        report["generated_shape"] = list(cached.shape)
        with tempfile.TemporaryDirectory() as tmp:
            lm.save_pretrained(tmp)
            from transformers import AutoModelForCausalLM

            again = AutoModelForCausalLM.from_pretrained(tmp, trust_remote_code=True)
            again = again.to(device).eval()
            with torch.no_grad():
                diff = (again(ids).logits - lm(ids).logits).abs().max().item()
        report["remote_code_reload_max_abs_diff"] = diff
        report["remote_code_class"] = type(again).__module__ + "." + type(again).__name__
    report["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:200] for w in caught})
    report["ok"] = report["generate_cached_equals_uncached"] and diff < 1e-5
    return report


def check_output(folder: Path) -> dict:
    """The folder loads with transformers alone (remote code) on the CPU, and on the GPU in
    fp32; both give the same logits on a few SMS messages, and the pipeline classifies."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    report: dict = {"folder": str(folder)}
    config = json.loads((folder / "config.json").read_text())
    report["config"] = config
    for name in ("metrics.json", "training_args.json"):
        if (folder / name).is_file():
            report[name] = json.loads((folder / name).read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    tokenizer.padding_side = "right"
    inputs = tokenizer(SMS_SAMPLES, return_tensors="pt", padding=True)
    cpu = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    cpu = cpu.eval()
    report["cpu_param_dtype"] = str(next(cpu.parameters()).dtype)
    with torch.no_grad():
        cpu_logits = cpu(**inputs).logits
    report["cpu_logits"] = cpu_logits.tolist()
    report["cpu_pipeline"] = pipeline("text-classification", model=cpu, tokenizer=tokenizer)(
        SMS_SAMPLES[:2]
    )
    if torch.cuda.is_available():
        gpu = (
            AutoModelForSequenceClassification.from_pretrained(
                folder, trust_remote_code=True, dtype=torch.float32
            )
            .to("cuda")
            .eval()
        )
        with torch.no_grad():
            gpu_logits = gpu(**{k: v.cuda() for k, v in inputs.items()}).logits.cpu()
        diff = (gpu_logits - cpu_logits).abs().max().item()
        scale = max(1.0, cpu_logits.abs().max().item())
        report["gpu_logits"] = gpu_logits.tolist()
        report["cpu_vs_gpu_max_abs_diff"] = diff
        report["logits_match"] = diff <= 1e-4 * scale
    report["loads_on_cpu"] = all(math.isfinite(x) for row in report["cpu_logits"] for x in row)
    return report


# ----------------------------------------------------------------------------- command line


def shape(text: str) -> tuple[int, int]:
    batch, _, seq_len = text.partition("x")
    return int(batch), int(seq_len)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test")
    parser.add_argument(
        "--preset",
        nargs="+",
        default=["gpt2-medium"],
        help="model shapes: gpt2-small|medium|large|xl, or tiny",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=shape,
        default=[(16, 128)],
        metavar="BATCHxSEQ",
        help="batch x sequence length per step",
    )
    parser.add_argument(
        "--dtype",
        choices=("bf16", "fp32"),
        default="bf16",
        help="autocast dtype (fp32: no autocast)",
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument(
        "--order",
        nargs=2,
        default=["ours", "transformers"],
        choices=("ours", "transformers"),
        help="which side runs first",
    )
    parser.add_argument(
        "--parity-preset",
        nargs="*",
        default=None,
        help="presets for the same-weights loss check (default: the first --preset; none: skip)",
    )
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument(
        "--compat-check",
        action="store_true",
        help="only check our modeling code against the installed transformers",
    )
    parser.add_argument(
        "--check-output",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="only check that these finetune output folders load (CPU + GPU)",
    )
    args = parser.parse_args(argv)
    if args.parity_preset is None:
        args.parity_preset = args.preset[:1]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compat_check:
        result = compat_check(torch.device(args.device))
        print(json.dumps(result, indent=2))
    elif args.check_output:
        result = {str(folder): check_output(folder) for folder in args.check_output}
        for folder, r in result.items():
            print(
                f"{folder}: loads on CPU {r['loads_on_cpu']}, CPU vs GPU max |logit diff| "
                f"{r.get('cpu_vs_gpu_max_abs_diff')}, match {r.get('logits_match')}"
            )
    else:
        result = bench(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
