"""The torch-only classifier (scratchgpt.inference.light) against the transformers model it copies.

``classify`` scores with ``LightClassifier`` where the folder's code is ours, so its
probabilities must be those of ``ScratchGPTForSequenceClassification`` loaded through the Auto
API (the folder's own code), for both poolings and for padded batches; any other folder must
still go through transformers. The start-up saving is that transformers is never imported:
checked in a fresh interpreter (timings live in benchmarks/bench_classify_startup.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from scratchgpt.folder import save_model_folder
from scratchgpt.inference.classify import (
    classify_texts,
    load_classifier,
    load_for_inference,
)
from scratchgpt.inference.light import LightClassifier
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification
from tests.helpers import tiny_config

TEXTS = [
    "WINNER!! Claim your prize now",
    "ok see you later",
    "You won a £1000 prize, call now",
    "Are we still on for dinner tonight? I can bring the wine if you like, just tell me.",
    "x",
]


def randomised_folder(folder: Path, bpe_dir: Path, **overrides) -> Path:
    """A classifier whose every parameter is random (fresh LayerNorms are all ones and zeros,
    which would hide a swapped norm), saved as a model folder."""
    torch.manual_seed(1)
    model = ScratchGPTForSequenceClassification(tiny_config(**overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return save_model_folder(model, folder, bpe_dir)


@pytest.fixture(scope="module", params=["last", "mean"])
def random_classifier_dir(request, tmp_path_factory, bpe_dir) -> Path:
    labels = {0: "a", 1: "b", 2: "c"}
    folder = tmp_path_factory.mktemp("light") / request.param
    return randomised_folder(folder, bpe_dir, pooling=request.param, id2label=labels)


def test_light_equals_transformers_model(random_classifier_dir):
    folder = random_classifier_dir
    light, _ = load_for_inference(folder)
    reference, _ = load_classifier(folder)
    assert isinstance(light, LightClassifier)
    assert isinstance(reference, PreTrainedModel)
    # batch_size 2: batches padded to their longest text, the last one alone
    ours = classify_texts(light, folder, TEXTS, batch_size=2)
    theirs = classify_texts(reference, folder, TEXTS, batch_size=2)
    for a, b in zip(ours, theirs, strict=True):
        assert a["label"] == b["label"]
        for name, p in a["scores"].items():
            assert p == pytest.approx(b["scores"][name], abs=1e-5)


def test_other_code_goes_through_transformers(tiny_classifier_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "edited"))
    code = folder / "modeling_scratchgpt.py"
    code.write_text(code.read_text() + "\n# edited by its owner\n")
    model, _ = load_for_inference(folder)
    assert isinstance(model, PreTrainedModel)


def test_causal_lm_folder_is_not_light(tiny_lm_dir):
    config = json.loads((tiny_lm_dir / "config.json").read_text())
    assert config["architectures"] != ["ScratchGPTForSequenceClassification"]
    from scratchgpt.inference.light import light_folder_config

    assert light_folder_config(tiny_lm_dir) is None


def test_left_padding_is_refused(tiny_classifier_dir):
    light, _ = load_for_inference(tiny_classifier_dir)
    ids = torch.tensor([[50256, 11, 12], [13, 14, 15]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="right-padded"):
        light(input_ids=ids, attention_mask=mask)


def test_classify_command_does_not_import_transformers(tiny_classifier_dir):
    script = (
        "import sys\n"
        "from scratchgpt.cli import classify_main\n"
        f"code = classify_main(['--model', {str(tiny_classifier_dir)!r}, 'hello there'])\n"
        "heavy = sorted(m for m in ('transformers', 'torch._dynamo', 'datasets', 'accelerate')"
        " if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
