"""Pre-packed CPU linears: same logits as the plain model, and the model left exactly as found."""

from __future__ import annotations

import json

import pytest
import torch

from scratchgpt.cli import classify_main
from scratchgpt.inference import prepack
from scratchgpt.inference.prepack import packing_supported, prepacked_linears, should_prepack
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification
from tests.helpers import tiny_config


@pytest.fixture
def classifier() -> ScratchGPTForSequenceClassification:
    torch.manual_seed(0)
    return ScratchGPTForSequenceClassification(tiny_config(emb_dim=64, num_labels=3)).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    input_ids = torch.randint(0, 50257, (3, 11))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0  # right padding in one row
    return input_ids, attention_mask


def overridden_modules(model: torch.nn.Module) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if {"forward", "_packed_weight"} & set(vars(module))
    ]


def test_packed_logits_equal_plain_logits(classifier):
    input_ids, attention_mask = padded_batch()
    with torch.inference_mode():
        plain = classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        with prepacked_linears(classifier, prepack=True) as packed:
            assert packed == packing_supported()
            if packed:  # every linear layer of the model runs on its packed weight
                linears = [m for m in classifier.modules() if isinstance(m, torch.nn.Linear)]
                assert len(overridden_modules(classifier)) == len(linears) > 0
            fast = classifier(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_gradients_inside_the_context_fall_back_to_the_plain_linear(classifier):
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0, 1, 2])

    def loss_and_grad():
        classifier.zero_grad()
        loss = classifier(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        return loss.detach(), classifier.gpt.blocks[0].ff.fc.weight.grad.clone()

    plain_loss, plain_grad = loss_and_grad()
    with prepacked_linears(classifier, prepack=True):
        loss, grad = loss_and_grad()
    torch.testing.assert_close(loss, plain_loss)
    torch.testing.assert_close(grad, plain_grad)


def test_autocast_inside_the_context_keeps_its_dtype(classifier):
    input_ids, attention_mask = padded_batch()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        with prepacked_linears(classifier, prepack=True):
            packed = classifier(input_ids=input_ids, attention_mask=attention_mask).logits
    assert packed.dtype == plain.dtype == torch.bfloat16
    torch.testing.assert_close(packed, plain)


def test_model_is_restored_even_after_an_error(classifier):
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    with (
        pytest.raises(RuntimeError, match="boom"),
        torch.inference_mode(),
        prepacked_linears(classifier, prepack=True),
    ):
        raise RuntimeError("boom")
    assert overridden_modules(classifier) == []
    after = classifier.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    # Training still works: the plain forward (with its backward) is back.
    input_ids, attention_mask = padded_batch()
    classifier.train()
    loss = classifier(
        input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 2])
    ).loss
    loss.backward()
    assert classifier.classifier.weight.grad is not None


def test_should_prepack_decisions(classifier, monkeypatch):
    assert should_prepack(classifier, False) is False
    assert should_prepack(classifier, True) is packing_supported()
    assert should_prepack(classifier.to(torch.bfloat16), "auto") is False  # fp32 only
    classifier.float()
    # "auto" declines when the packed copy would not fit comfortably in memory.
    monkeypatch.setattr(prepack, "_physical_memory_bytes", lambda: 1024)
    assert should_prepack(classifier, "auto") is False
    assert should_prepack(classifier, True) is packing_supported()
    monkeypatch.setattr(prepack, "_physical_memory_bytes", lambda: None)
    # "auto" packs only calls large enough to repay the packing (one message is not).
    assert should_prepack(classifier, "auto", tokens=prepack.AUTO_MIN_TOKENS - 1) is False
    assert should_prepack(classifier, "auto", tokens=prepack.AUTO_MIN_TOKENS) is packing_supported()
    assert should_prepack(classifier, True, tokens=1) is packing_supported()
    monkeypatch.setattr(prepack, "packing_supported", lambda: False)
    assert should_prepack(classifier, True) is False
    with prepacked_linears(classifier, prepack=True) as packed:
        assert packed is False and overridden_modules(classifier) == []


def test_classify_cli_no_prepack_gives_the_same_output(tiny_classifier_dir, capsys, monkeypatch):
    monkeypatch.setattr(prepack, "AUTO_MIN_TOKENS", 1)  # these few texts are packed too
    texts = ["Free entry in 2 a wkly comp to win FA Cup final tkts", "ok see you", "lol"]
    args = ["--model", str(tiny_classifier_dir), "--format", "jsonl", *texts]
    assert classify_main(args) == 0
    packed = capsys.readouterr().out
    assert classify_main([*args, "--no-prepack"]) == 0
    plain = capsys.readouterr().out
    assert packed.count("\n") == len(texts)
    for a, b in zip(packed.splitlines(), plain.splitlines(), strict=True):
        row_a, row_b = json.loads(a), json.loads(b)
        assert row_a["label"] == row_b["label"]
        assert row_a["score"] == pytest.approx(row_b["score"], abs=1e-5)
