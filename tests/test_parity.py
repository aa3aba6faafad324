"""Correctness by parity: with the same weights our logits equal transformers' GPT-2 and the
book's ``GPTModel`` (PyPI ``llms-from-scratch``) to fp32 tolerance."""

import pytest
import torch
from llms_from_scratch.ch04 import GPTModel
from transformers import GPT2Config, GPT2LMHeadModel

from scratchgpt.weights.convert import convert_model

TOY = dict(vocab_size=50257, context_length=64, emb_dim=48, n_heads=4, n_layers=2)
SMALL = dict(vocab_size=50257, context_length=1024, emb_dim=768, n_heads=12, n_layers=12)
SIZES = [pytest.param(TOY, id="toy"), pytest.param(SMALL, id="gpt2-small")]


def right_padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = [16, 9, 3]
    ids = torch.full((len(lengths), max(lengths)), 50256)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(0, 50257, (n,), generator=generator)
        mask[row, :n] = 1
    return ids, mask


@pytest.mark.parametrize("size", SIZES)
def test_logits_equal_transformers_gpt2(size, tmp_path):
    torch.manual_seed(0)
    reference = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=size["vocab_size"],
            n_positions=size["context_length"],
            n_embd=size["emb_dim"],
            n_head=size["n_heads"],
            n_layer=size["n_layers"],
        )
    ).eval()
    reference.save_pretrained(tmp_path / "hf")
    ours, _ = convert_model(tmp_path / "hf", source_format="hf", progress=False)
    ids, mask = right_padded_batch()
    with torch.no_grad():
        expected = reference(ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size", SIZES)
def test_logits_equal_the_books_gptmodel(size, tmp_path):
    torch.manual_seed(0)
    book = GPTModel({**size, "drop_rate": 0.0, "qkv_bias": True}).eval()
    torch.save(book.state_dict(), tmp_path / "book.pth")
    ours, _ = convert_model(
        tmp_path / "book.pth", source_format="book", n_heads=size["n_heads"], progress=False
    )
    ids = torch.randint(0, 50257, (2, 12))
    with torch.no_grad():
        expected = book(ids)
        got = ours(ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
