"""Shared fixtures: tiny configs and saved model folders built from the real GPT-2 vocabulary."""

from __future__ import annotations

import os
import random
from pathlib import Path

# Tests must never reach for the network: fail fast instead of hanging on a Hub lookup.
# Set before anything imports huggingface_hub/transformers, which read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from scratchgpt.folder import save_model_folder  # noqa: E402
from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file  # noqa: E402
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig  # noqa: E402
from scratchgpt_modeling.modeling_scratchgpt import (  # noqa: E402
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def tiny_config(**overrides) -> ScratchGPTConfig:
    """A 2-layer model over the real GPT-2 vocabulary: fast, yet tokenizer-compatible."""
    base = dict(vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2)
    return ScratchGPTConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def bpe_dir() -> Path:
    path = gpt2_bpe_dir()
    if not (path / "encoder.json").is_file():
        pytest.fail(f"GPT-2 BPE files not found at {path}; set SCRATCHGPT_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def sms_texts() -> list[str]:
    lines = sms_spam_file().read_text(encoding="utf-8").split("\n")
    return [line.split("\t", 1)[1] for line in lines if line]


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, bpe_dir) -> Path:
    torch.manual_seed(0)
    config = tiny_config(
        num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1}
    )
    model = ScratchGPTForSequenceClassification(config).eval()
    return save_model_folder(model, tmp_path_factory.mktemp("models") / "classifier", bpe_dir)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, bpe_dir) -> Path:
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    return save_model_folder(model, tmp_path_factory.mktemp("models") / "lm", bpe_dir)


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


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    # 80 distinct messages -> 56 / 8 / 16 rows: every split divides into batches of 4 and 8.
    path = tmp_path_factory.mktemp("data") / "toy.txt"
    path.write_text("".join(f"{label}\t{text}\n" for label, text in toy_messages()))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, bpe_dir) -> Path:
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(n_layers=3, num_labels=2))
    return save_model_folder(model, tmp_path_factory.mktemp("models") / "tiny3", bpe_dir)


@pytest.fixture(scope="session")
def trained_classifier_dir(tmp_path_factory, bpe_dir) -> Path:
    """A finished fine-tuning run's output folder (weights, metrics.json, training_args.json,
    card): the tiny 3-layer classifier trained on the toy task, so its labels mean something.
    Used by the browser app and Space tests."""
    from accelerate.state import AcceleratorState, GradientState

    from scratchgpt import FinetuneArguments, finetune

    tmp = tmp_path_factory.mktemp("trained")
    data = tmp / "toy.txt"
    data.write_text("".join(f"{label}\t{text}\n" for label, text in toy_messages()))
    torch.manual_seed(0)
    base = ScratchGPTForSequenceClassification(tiny_config(n_layers=3, num_labels=2))
    save_model_folder(base, tmp / "base", bpe_dir)
    args = FinetuneArguments(
        model=str(tmp / "base"),
        init="pretrained",
        data_file=str(data),
        output_dir=tmp / "toy-spam",
        cache_dir=str(tmp / "cache"),
        trainable="all",
        epochs=4,
        eval_freq=2,
        eval_iter=2,
        lr=1e-3,
        no_tensorboard=True,
    )
    finetune(args)
    AcceleratorState._reset_state(reset_partial_state=True)  # finetune does; be sure
    GradientState._reset_state()
    return tmp / "toy-spam"
