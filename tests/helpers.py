"""Helpers shared by test modules: tiny configs, the toy task, fine-tuning flags, ports.

Test modules import these from here, never from one another (fixtures live in conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from scratchgpt.paths import REPO_ROOT
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig


def tiny_config(**overrides) -> ScratchGPTConfig:
    """A 2-layer model over the real GPT-2 vocabulary: fast, yet tokenizer-compatible."""
    base = dict(vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2)
    return ScratchGPTConfig(**{**base, **overrides})


# A toy classification task shared by the training and Python-API tests.
# Disjoint vocabularies make the task learnable.
HAM_WORDS = ["see", "you", "at", "home", "later", "tonight", "ok", "thanks", "mum", "dinner"]
SPAM_WORDS = ["win", "cash", "prize", "free", "claim", "now", "urgent", "txt", "award", "stop"]


def toy_messages(n: int = 80, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable task: ham and spam drawn from disjoint vocabularies, all texts distinct."""
    rng = random.Random(seed)
    messages: dict[str, str] = {}
    while len(messages) < n:
        label = "spam" if len(messages) % 2 else "ham"
        words = SPAM_WORDS if label == "spam" else HAM_WORDS
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        messages.setdefault(text, label)
    return [(label, text) for text, label in messages.items()]


def flags(tmp: Path, model_dir: Path, data: Path, name: str, *extra: str) -> list[str]:
    """``finetune.py`` flags for a short offline run of ``model_dir`` on ``data``."""
    return [
        "--model", str(model_dir), "--init", "pretrained", "--data-file", str(data),
        "--output-dir", str(tmp / name), "--cache-dir", str(tmp / "cache"),
        "--no-tensorboard", "--epochs", "1", "--eval-freq", "2", "--eval-iter", "2",
        "--lr", "1e-3", *extra,
    ]  # fmt: skip


def step_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "steps.jsonl").read_text().splitlines()]


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model.safetensors")


def free_port() -> int:
    """A local port that nothing listens on once the probing socket is closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_script_against_a_dead_hub(script: str, args: list[str], hf_home: Path):
    """Run ``scripts/<script>`` with a token, online, against a Hub endpoint nobody serves."""
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "HF_TOKEN": "hf_not_a_real_token",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(hf_home),
    }
    command = [sys.executable, str(REPO_ROOT / "scripts" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
