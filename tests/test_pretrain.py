"""``--pretrain-epochs``: next-token pretraining on the training texts before fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from scratchgpt.training import loop as train
from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.fsdp import unsupported_under_fsdp
from scratchgpt.training.pretrain import NextTokenModule, vocabulary
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
)
from tests.helpers import flags, tiny_config, weights

# Accelerate keeps process-wide singletons: every test here leaves them clean.
pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def classifier_and_lm() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A classifier and a causal LM with the same body (the LM's head is tied to it)."""
    torch.manual_seed(0)
    classifier = ScratchGPTForSequenceClassification(tiny_config(num_labels=2)).eval()
    lm = ScratchGPTForCausalLM(tiny_config()).eval()
    lm.gpt.load_state_dict(classifier.gpt.state_dict())
    return classifier, lm


def test_next_token_loss_over_the_whole_vocabulary_is_the_causal_lm_loss():
    classifier, lm = classifier_and_lm()
    ids = torch.randint(0, 50000, (3, 9))
    module = NextTokenModule(classifier, torch.arange(classifier.config.vocab_size))
    ours = module(ids, torch.ones_like(ids))
    torch.testing.assert_close(ours, lm(input_ids=ids, labels=ids).loss)


def test_restricted_vocabulary_and_padding():
    classifier, lm = classifier_and_lm()
    rows = [[11, 22, 33, 44, 55], [22, 11, 66]]  # the second is padded with 50256
    vocab = vocabulary(rows, pad_id=50256)
    assert vocab.tolist() == [11, 22, 33, 44, 55, 66, 50256]
    ids = torch.tensor([rows[0], rows[1] + [50256, 50256]])
    mask = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    ours = NextTokenModule(classifier, vocab)(ids, mask)
    # by hand: softmax over the 7 token types only, real next tokens only (4 + 2 targets)
    logits = lm(input_ids=ids, attention_mask=mask).logits[:, :-1][..., vocab]
    position = {int(t): i for i, t in enumerate(vocab)}
    targets = torch.tensor([[position[t] for t in row[1:]] for row in ids.tolist()])
    targets[1, 2:] = -100
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    torch.testing.assert_close(ours, expected)


def test_pretraining_runs_first_and_is_recorded(tmp_path, model_dir, toy_file, capsys):
    common = ("--trainable", "all", "--batch-size", "8")
    train.main(flags(tmp_path, model_dir, toy_file, "pre", *common, "--pretrain-epochs", "3"))
    captured = capsys.readouterr()
    records = json.loads((tmp_path / "pre" / "training_args.json").read_text())
    assert [r["epoch"] for r in records["pretraining"]] == [1, 2, 3]
    losses = [r["loss"] for r in records["pretraining"]]
    assert losses[-1] < losses[0]  # it learns the toy texts' next tokens
    assert records["seconds"]["pretraining"] > 0
    assert "pretraining epoch 3/3  next-token loss" in captured.out
    lines = captured.err.replace("\r", "\n").splitlines()
    assert any(line.startswith("pretraining") and "100%" in line for line in lines)
    assert captured.out.index("pretraining epoch 3/3") < captured.out.index("epoch 1/1")
    train.reset_accelerate_state()

    train.main(flags(tmp_path, model_dir, toy_file, "plain", *common))
    assert json.loads((tmp_path / "plain" / "training_args.json").read_text())["pretraining"] == []
    pre, plain = weights(tmp_path / "pre"), weights(tmp_path / "plain")
    assert not torch.equal(pre["gpt.tok_emb.weight"], plain["gpt.tok_emb.weight"])


def test_pretraining_is_opt_in_and_fsdp_refuses_it():
    assert FinetuneArguments(init="random").pretrain_epochs == 0  # measured, not adopted
    assert FinetuneArguments().pretrain_epochs == 0  # the book's recipe
    problem = unsupported_under_fsdp(FinetuneArguments(init="random", pretrain_epochs=4))
    assert "--pretrain-epochs 4 is not supported with FSDP" in problem
    assert unsupported_under_fsdp(FinetuneArguments(init="random")) == ""
    with pytest.raises(ValueError, match="--pretrain-epochs must be >= 0, got -1"):
        FinetuneArguments(init="random", pretrain_epochs=-1)


def test_card_says_how_random_weights_were_trained():
    from scratchgpt.hub.card import base_model_sentence

    records = [{"epoch": 1, "loss": 7.4}, {"epoch": 2, "loss": 6.7}]
    said = base_model_sentence(None, records)
    assert "random initialisation" in said and "2 epoch(s) of next-token pretraining" in said
    assert "pretraining" not in base_model_sentence(None, [])
    assert base_model_sentence("openai-community/gpt2").startswith("Fine-tuned from")
