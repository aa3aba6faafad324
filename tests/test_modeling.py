"""Behaviour of the model classes: padding, pooling, caching, checkpointing, dropout."""

import pytest
import torch

from scratchgpt_modeling.layers_scratchgpt import build_attention_mask, mask_for_real_tokens
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)
from tests.helpers import tiny_config

PAD = 50256


def pad_batch(sequences: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(map(len, sequences))
    ids = torch.full((len(sequences), longest), PAD)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(longest - len(seq), longest)
        ids[row, span] = torch.tensor(seq)
        mask[row, span] = 1
    return ids, mask


@pytest.fixture
def sequences():
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, 50000, (n,), generator=generator).tolist() for n in (7, 3, 12, 1)]


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_classifier_logits_ignore_padding(sequences, side, pooling):
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=3, pooling=pooling)).eval()
    ids, mask = pad_batch(sequences, side)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        alone = torch.cat([model(torch.tensor([seq])).logits for seq in sequences])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_unpadded_batch_without_mask_pools_last_position():
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2)).eval()
    ids = torch.randint(0, 50000, (3, 9))
    with torch.no_grad():
        without_mask = model(ids).logits
        with_mask = model(ids, attention_mask=torch.ones_like(ids)).logits
        last_only = model.classifier(model.gpt(ids).last_hidden_state[:, -1])
    torch.testing.assert_close(without_mask, with_mask)
    torch.testing.assert_close(without_mask, last_only)


def test_book_style_last_position_differs_from_last_real_token(sequences):
    """Reading position -1 of a right-padded batch reads a pad token: the bug we avoid."""
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2)).eval()
    ids, mask = pad_batch(sequences, "right")
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        book = model.classifier(model.gpt(ids).last_hidden_state[:, -1])
    assert not torch.allclose(ours[0], book[0], atol=1e-4)  # row 0 is padded
    torch.testing.assert_close(ours[2], book[2])  # row 2 is the longest: no padding


@pytest.mark.parametrize("side", ["right", "left"])
def test_causal_lm_padded_batch_matches_each_sequence_alone(sequences, side):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    ids, mask = pad_batch(sequences, side)
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        for row, seq in enumerate(sequences):
            alone = model(torch.tensor([seq])).logits[0]
            torch.testing.assert_close(logits[row][mask[row].bool()], alone, atol=1e-5, rtol=1e-5)


def test_loss_is_cross_entropy_on_labels():
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2)).eval()
    ids, labels = torch.randint(0, 50000, (4, 6)), torch.tensor([0, 1, 1, 0])
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    lm = ScratchGPTForCausalLM(tiny_config()).eval()
    out = lm(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()
    )
    torch.testing.assert_close(out.loss, expected)


def test_incremental_decoding_with_cache_equals_full_forward():
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    ids = torch.randint(0, 50000, (2, 10))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :6], use_cache=True)
        steps = [out.logits]
        for t in range(6, 10):
            out = model(ids[:, t : t + 1], cache=out.cache, use_cache=True)
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_generate_greedy_uses_the_cache_and_matches_uncached(monkeypatch):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    prompt = torch.randint(0, 50000, (1, 5))
    seen_lengths = []
    original = model.gpt.embed

    def recording_embed(input_ids, *args, **kwargs):
        seen_lengths.append(input_ids.shape[1])
        return original(input_ids, *args, **kwargs)

    monkeypatch.setattr(model.gpt, "embed", recording_embed)
    cached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
    assert seen_lengths == [5] + [1] * 7  # one new token per step: not quadratic
    uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
    assert cached.tolist() == uncached.tolist()


def test_generate_left_padded_batch_matches_single_prompts():
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    prompts = [[11, 12, 13, 14, 15], [21, 22]]
    ids, mask = pad_batch(prompts, "left")
    batched = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)
        assert batched[row, -6:].tolist() == alone[0, -6:].tolist()


def test_sampling_is_reproducible_with_a_seed():
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(tiny_config()).eval()
    prompt = torch.tensor([[1, 2, 3]])
    runs = []
    for _ in range(2):
        torch.manual_seed(42)
        runs.append(model.generate(prompt, max_new_tokens=10, do_sample=True, top_k=50).tolist())
    assert runs[0] == runs[1]


def test_sequence_longer_than_context_is_rejected():
    model = ScratchGPTModel(tiny_config(context_length=8))
    with pytest.raises(ValueError, match="exceeds context_length 8"):
        model(torch.zeros((1, 9), dtype=torch.long))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2))
    ids, labels = torch.randint(0, 50000, (3, 8)), torch.tensor([0, 1, 0])

    def grads():
        model.zero_grad()
        model(ids, labels=labels).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.activation_checkpointing_enable()
    assert model.gpt.blocks[0].gradient_checkpointing
    for a, b in zip(plain, grads(), strict=True):
        torch.testing.assert_close(a, b)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2, drop_rate=0.5))
    ids = torch.randint(0, 50000, (2, 8))
    model.train()
    assert not torch.allclose(model(ids).logits, model(ids).logits)
    model.eval()
    torch.testing.assert_close(model(ids).logits, model(ids).logits)


def test_output_hidden_states_has_one_entry_per_block_plus_output():
    model = ScratchGPTModel(tiny_config(n_layers=3)).eval()
    out = model(torch.randint(0, 50000, (1, 4)), output_hidden_states=True)
    assert len(out.hidden_states) == 4
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)


def test_lm_head_is_tied_to_token_embedding():
    model = ScratchGPTForCausalLM(tiny_config())
    assert model.out_head.weight is model.gpt.tok_emb.weight


def test_attention_mask_never_fully_masks_a_row():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    attn_mask, is_causal = build_attention_mask(mask, query_len=4, past_len=0)
    assert not is_causal and attn_mask.shape == (2, 1, 4, 4)
    assert attn_mask.any(dim=-1).all()
    # no padding needs no explicit mask: the kernel's causal mask is exact
    assert build_attention_mask(torch.tensor([[1, 1, 1]]), 3, 0) == (None, True)
    # right padding gets one, so a padded position reads the same keys however it is padded
    attn_mask, is_causal = build_attention_mask(torch.tensor([[1, 1, 0]]), 3, 0)
    assert not is_causal and attn_mask[0, 0, 2].tolist() == [True, True, True]
    assert attn_mask[0, 0, 1].tolist() == [True, True, False]


@pytest.mark.parametrize("side", ["right", "left", "none"])
def test_last_token_shortcut_equals_full_final_block(sequences, side):
    """The classifier runs its final block on the pooled token only: same logits and grads."""
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=3, n_layers=3))
    if side == "none":
        ids, mask = torch.randint(0, 50000, (3, 9)), None
    else:
        ids, mask = pad_batch(sequences, side)
    labels = torch.tensor([0, 1, 2, 1][: ids.shape[0]])

    def run(shortcut: bool):
        model.zero_grad()
        out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=not shortcut)
        out.loss.backward()
        return out.logits.detach(), [p.grad.clone() for p in model.parameters()]

    fast_logits, fast_grads = run(shortcut=True)
    full_logits, full_grads = run(shortcut=False)
    torch.testing.assert_close(fast_logits, full_logits, atol=1e-5, rtol=1e-5)
    for fast, full in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)


def test_forward_from_block_equals_forward_at_every_split(sequences):
    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2, n_layers=3)).eval()
    ids, mask = pad_batch(sequences, "right")
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
        for split in range(4):  # 3 = every block frozen: only final norm + head remain
            hidden = model.embed_and_run_blocks(ids, mask, end_block=split)
            got = model.forward_from_block(hidden, split, mask).logits
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_right_padding_needs_no_mask_in_the_blocks():
    """Right-padded (and unpadded) batches reach the kernel's causal path; left padding keeps
    its mask, since causal attention alone would let real tokens read the padding before them."""
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert mask_for_real_tokens(right) is None
    assert mask_for_real_tokens(torch.ones(2, 4, dtype=torch.long)) is None
    assert mask_for_real_tokens(left) is left
