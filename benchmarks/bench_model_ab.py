"""The classifier's forward pass at this checkout vs an earlier git revision of ``modeling/``.

    python -m benchmarks.bench_model_ab [--rev 744d7f6] [--rounds 6] [--batch 16]

Both versions get the same gpt2-small weights and the same batches: SMS-length right-padded
batches (what classification and the frozen-prefix cache run) and an unpadded 8 x 128 batch
(``bench_forward.py``'s shape). Rounds alternate old and new, so load from other jobs on this
shared machine hits both alike; the median per side and the ratio are printed, with the
largest logit difference as a check that both compute the same thing. ``--train`` times
instead a training step (forward, backward, fused AdamW) of the from-scratch recipe's model
(gpt2-mini, dropout 0.1, mean pooling) on SMS-like right-padded batches of 32.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification

REPO = Path(__file__).resolve().parents[1]
FILES = (
    "__init__.py",
    "configuration_scratchgpt.py",
    "layers_scratchgpt.py",
    "modeling_scratchgpt.py",
)


def old_classifier_class(rev: str, folder: Path) -> type:
    """``ScratchGPTForSequenceClassification`` as ``modeling/`` was at ``rev``."""
    package = folder / "modeling_at_rev"
    package.mkdir()
    for name in FILES:
        show = subprocess.run(
            ["git", "show", f"{rev}:modeling/{name}"], cwd=REPO, capture_output=True, text=True
        )
        (package / name).write_text(show.stdout if show.returncode == 0 else "")
    # Imported as a package from its own folder (its files import each other relatively).
    spec = importlib.util.spec_from_file_location(
        package.name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    sys.modules[package.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[package.name])
    module = importlib.import_module(f"{package.name}.modeling_scratchgpt")
    return module.ScratchGPTForSequenceClassification


def sms_like_batch(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids with SMS-like lengths (8..60 tokens)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 61, (batch,), generator=gen)
    width = int(lengths.max())
    ids = torch.randint(0, 50000, (batch, width), generator=gen)
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    return ids * mask, mask


def timed(model, ids, mask) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    logits = model(ids, attention_mask=mask).logits
    return time.perf_counter() - start, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="744d7f6", help="git revision of the old modeling/")
    parser.add_argument("--rounds", type=int, default=6, help="alternating timed rounds")
    parser.add_argument("--batch", type=int, default=16, help="messages per SMS-like batch")
    parser.add_argument("--batches", type=int, default=8, help="SMS-like batches per round")
    parser.add_argument("--train", action="store_true", help="time from-scratch training steps")
    args = parser.parse_args()
    if args.train:
        return train_ab(args)

    with tempfile.TemporaryDirectory() as tmp:
        old_class = old_classifier_class(args.rev, Path(tmp))
        torch.manual_seed(0)
        new = ScratchGPTForSequenceClassification(ScratchGPTConfig(num_labels=2)).eval()
        old = old_class(old_class.config_class(num_labels=2)).eval()
        old.load_state_dict(new.state_dict())
        workloads = {
            "SMS-like right-padded": [sms_like_batch(args.batch, s) for s in range(args.batches)],
            "unpadded 8x128": [(torch.randint(0, 50000, (8, 128)), torch.ones(8, 128).long())],
        }
        print(f"classifier forward, gpt2-small, fp32, {torch.get_num_threads()} threads")
        with torch.inference_mode():
            for name, batches in workloads.items():
                times = {"old": [], "new": []}
                worst = 0.0
                for round_ in range(args.rounds + 1):  # round 0 warms both up, untimed
                    for side, model in (("old", old), ("new", new))[:: 1 if round_ % 2 else -1]:
                        total = 0.0
                        for ids, mask in batches:
                            seconds, logits = timed(model, ids, mask)
                            total += seconds
                            if side == "new":
                                reference = old(ids, attention_mask=mask).logits
                                worst = max(worst, (logits - reference).abs().max().item())
                        if round_:
                            times[side].append(total)
                old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
                print(
                    f"{name:>22}: old ({args.rev}) {old_s * 1000:7.1f} ms"
                    f"  new {new_s * 1000:7.1f} ms  ratio old/new {old_s / new_s:.3f}x"
                    f"  max |logit diff| {worst:.1e}"
                )


def train_step(model, optimizer, ids, mask, labels) -> float:
    start = time.perf_counter()
    model(ids, attention_mask=mask, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


def train_ab(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old_class = old_classifier_class(args.rev, Path(tmp))
        shape = {"emb_dim": 256, "n_layers": 4, "n_heads": 4, "num_labels": 2}
        recipe = {"drop_rate": 0.1, "pooling": "mean"}
        torch.manual_seed(0)
        new = ScratchGPTForSequenceClassification(ScratchGPTConfig(**shape, **recipe)).train()
        old = old_class(old_class.config_class(**shape, **recipe)).train()
        old.load_state_dict(new.state_dict())
        optimizers = {
            side: torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
            for side, model in (("old", old), ("new", new))
        }
        batches = [sms_like_batch(32, s) for s in range(args.batches)]
        labels = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(0))
        print(f"from-scratch training step, gpt2-mini, fp32, {torch.get_num_threads()} threads")
        times = {"old": [], "new": []}
        for round_ in range(args.rounds + 1):  # round 0 warms both up, untimed
            for side, model in (("old", old), ("new", new))[:: 1 if round_ % 2 else -1]:
                total = sum(
                    train_step(model, optimizers[side], ids, mask, labels) for ids, mask in batches
                )
                if round_:
                    times[side].append(total / len(batches))
        old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
        print(
            f"per step: old ({args.rev}) {old_s * 1000:7.1f} ms  new {new_s * 1000:7.1f} ms"
            f"  ratio old/new {old_s / new_s:.3f}x"
        )


if __name__ == "__main__":
    main()
