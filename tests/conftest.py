"""Shared fixtures: tiny configs and saved model folders built from the real GPT-2 vocabulary."""

from __future__ import annotations

import os
from pathlib import Path

# Tests must never reach for the network: fail fast instead of hanging on a Hub lookup.
# Set before anything imports huggingface_hub/transformers, which read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

from scratchgpt.folder import save_model_folder
from scratchgpt.paths import gpt2_bpe_dir, sms_spam_file
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
)
from tests.helpers import tiny_config, toy_messages

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; a test that trains leaves them clean."""
    yield
    from scratchgpt.training.loop import reset_accelerate_state  # not for tests that never train

    reset_accelerate_state()


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
    from scratchgpt import FinetuneArguments, finetune
    from scratchgpt.training.loop import reset_accelerate_state

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
    reset_accelerate_state()  # finetune does; be sure
    return tmp / "toy-spam"
