"""What a transformers user does with a model, checked on ours (issue 10).

Each group is one habit: ``generate()`` with and without the KV cache, ``Trainer`` with gradient
accumulation, peft LoRA, ``torch.compile``/``torch.export``, the standard output switches and
losses of a ``*ForSequenceClassification`` / ``*ForCausalLM``, and a clean log. All models are
tiny (vocabulary 99, 2 layers) with fixed seeds; tolerances are fp32.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from types import SimpleNamespace

import peft
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.loss.loss_utils import ForCausalLMLoss, ForSequenceClassificationLoss

from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)

PAD = 0
VOCAB = 99
TOL = dict(atol=1e-5, rtol=1e-5)


def small_config(**overrides) -> ScratchGPTConfig:
    """A 2-layer, 4-head model over a 99-token vocabulary; token 0 is padding (and bos)."""
    base = dict(
        vocab_size=VOCAB,
        context_length=64,
        emb_dim=32,
        n_heads=4,
        n_layers=2,
        pad_token_id=PAD,
        bos_token_id=PAD,
        eos_token_id=None,  # no early stop: every row generates max_new_tokens
    )
    return ScratchGPTConfig(**{**base, **overrides})


def make_lm(**overrides) -> ScratchGPTForCausalLM:
    torch.manual_seed(0)
    return ScratchGPTForCausalLM(small_config(**overrides)).eval()


def make_classifier(**overrides) -> ScratchGPTForSequenceClassification:
    torch.manual_seed(0)
    return ScratchGPTForSequenceClassification(small_config(**overrides)).eval()


def padded(lengths: list[int], side: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts of the given lengths, padded with PAD on ``side``: (ids, mask)."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.full((len(lengths), longest), PAD)
    mask = torch.zeros((len(lengths), longest), dtype=torch.long)
    for row, n in enumerate(lengths):
        span = slice(0, n) if side == "right" else slice(longest - n, longest)
        ids[row, span] = torch.randint(1, VOCAB, (n,), generator=generator)
        mask[row, span] = 1
    return ids, mask


# --- 1. generate(): the cache changes speed, never tokens --------------------------------------

NEW_TOKENS = 8


@pytest.fixture(params=["left_padded_batch", "single_prompt"])
def prompts(request) -> tuple[torch.Tensor, torch.Tensor]:
    if request.param == "single_prompt":
        return padded([6], "left")
    return padded([5, 2, 7], "left")  # the usual batched-generation setup: left padding


def peaked_lm() -> ScratchGPTForCausalLM:
    """Larger init: logits spread over ~1 nat, so a token decoded without its context differs
    (the default 0.02 gives near-uniform logits that repeat one token whatever the context)."""
    return make_lm(initializer_range=0.2)


def generate(model, ids, mask, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, pad_token_id=PAD, **kwargs
        )
    return out[:, ids.shape[1] :]


def test_greedy_generate_cached_equals_uncached_and_argmax_loop(prompts):
    """generate() with the default (dynamic) cache, a static cache, use_cache=False, and a
    hand-written loop that re-reads the whole sequence each step all pick the same tokens."""
    model = peaked_lm()
    ids, mask = prompts
    cached = generate(model, ids, mask)
    static = generate(model, ids, mask, cache_implementation="static")  # the compile-ready cache
    uncached = generate(model, ids, mask, use_cache=False)
    seq, seq_mask = ids, mask
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            logits = model(seq, attention_mask=seq_mask, use_cache=False).logits
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            seq_mask = torch.cat([seq_mask, torch.ones_like(seq_mask[:, :1])], dim=1)
    manual = seq[:, ids.shape[1] :]
    assert torch.equal(uncached, manual)
    assert torch.equal(cached, manual)
    assert torch.equal(static, manual)


def test_sampling_generate_cached_equals_uncached_with_same_seed(prompts):
    """do_sample=True under one seed draws the same tokens with and without the cache."""
    model = peaked_lm()
    ids, mask = prompts
    torch.manual_seed(123)
    cached = generate(model, ids, mask, do_sample=True, top_k=0, temperature=1.0)
    torch.manual_seed(123)
    uncached = generate(model, ids, mask, do_sample=True, top_k=0, temperature=1.0, use_cache=False)
    assert torch.equal(cached, uncached)


def test_beam_search_cached_equals_uncached(prompts):
    """num_beams=3 (the cache is reordered between beams) gives the uncached result."""
    model = peaked_lm()
    ids, mask = prompts
    cached = generate(model, ids, mask, num_beams=3)
    uncached = generate(model, ids, mask, num_beams=3, use_cache=False)
    assert torch.equal(cached, uncached)


# --- 2. Trainer with gradient accumulation = one big batch -------------------------------------


class ListDataset(Dataset):
    def __init__(self, rows: list[dict[str, torch.Tensor]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.rows[index]


def lm_rows(n: int = 8, length: int = 10) -> list[dict[str, torch.Tensor]]:
    """Right-padded rows whose numbers of target tokens differ (padding and some -100 labels),
    so every micro-batch has a different token count: where ``num_items_in_batch`` matters."""
    ids, mask = padded([3 + (5 * i) % 8 for i in range(n)], "right", seed=2)
    ids, mask = ids[:, :length], mask[:, :length]
    labels = ids.masked_fill(mask == 0, -100)
    labels[::3, :2] = -100  # a prompt whose first tokens are not trained on
    return [
        dict(input_ids=i, attention_mask=m, labels=lab)
        for i, m, lab in zip(ids, mask, labels, strict=True)
    ]


def trained_weights(model, rows, batch_size: int, accumulation: int, out_dir) -> dict:
    """One optimizer step of plain SGD through Trainer, rows in order, no clipping."""
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,  # clipping would hide a gradient scaled by the accumulation factor
        train_sampling_strategy="sequential",
        dataloader_drop_last=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=ListDataset(rows)).train()
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_accumulation_matches_big_batch(make_model, rows, tmp_path):
    accumulated = trained_weights(make_model(), rows, 2, 4, tmp_path / "ga")
    big_batch = trained_weights(make_model(), rows, 8, 1, tmp_path / "big")
    initial = make_model().state_dict()
    assert any(not torch.equal(big_batch[k], initial[k]) for k in initial), "nothing trained"
    for name in big_batch:
        torch.testing.assert_close(accumulated[name], big_batch[name], **TOL, msg=name)


def test_trainer_gradient_accumulation_equals_big_batch_causal_lm(tmp_path):
    """gradient_accumulation_steps=4 x batch 2 == one step on batch 8 (same rows, same order)."""
    assert_accumulation_matches_big_batch(lambda: make_lm().train(), lm_rows(), tmp_path)


@pytest.mark.parametrize("problem_type", ["single_label_classification", "regression"])
def test_trainer_gradient_accumulation_equals_big_batch_classifier(tmp_path, problem_type):
    """The same for the classifier: Trainer trusts a forward with **kwargs to normalise by
    num_items_in_batch, and divides by the accumulation steps only when it does not."""
    regression = problem_type == "regression"
    rows = [
        dict(row, labels=torch.tensor(0.5 * i) if regression else torch.tensor(i % 3))
        for i, row in enumerate(lm_rows())
    ]
    num_labels = 1 if regression else 3

    def make_model():
        return make_classifier(num_labels=num_labels, problem_type=problem_type).train()

    assert_accumulation_matches_big_batch(make_model, rows, tmp_path)


# --- 3. peft LoRA: every adapter is used, and merging changes nothing ---------------------------

LINEARS = ["qkv", "out_proj", "fc", "proj"]


def lora_model(model, task_type: str, use_dora: bool = False):
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=LINEARS,
        task_type=task_type,
        init_lora_weights=False,  # random B: the adapters change the output from the start
        use_dora=use_dora,
    )
    return peft.get_peft_model(model, config)


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_lora_classifier_every_adapter_gets_a_gradient(side, use_dora):
    """After one backward, every lora_A/lora_B (the last block's att.qkv included) has a
    non-zero gradient: no fast path bypasses a wrapped linear."""
    model = lora_model(make_classifier(num_labels=3), "SEQ_CLS", use_dora)
    ids, mask = padded([5, 2, 7], side)
    model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2])).loss.backward()
    adapters = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert len(adapters) >= 2 * len(LINEARS) * 2  # A and B per linear per block
    assert any("blocks.1.att.qkv" in n for n in adapters)
    no_grad = [n for n, p in adapters.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"adapters without gradient: {no_grad}"


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_lora_classifier_logits_equal_merged_model(side, use_dora):
    """merge_and_unload() folds the adapters into the weights: same logits as the PEFT model."""
    model = lora_model(make_classifier(num_labels=3), "SEQ_CLS", use_dora).eval()
    ids, mask = padded([5, 2, 7], side)
    with torch.no_grad():
        adapted = model(input_ids=ids, attention_mask=mask).logits
        merged = model.merge_and_unload()(input_ids=ids, attention_mask=mask).logits
        base = make_classifier(num_labels=3)(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(adapted, base, atol=1e-4), "the adapters changed nothing"
    torch.testing.assert_close(adapted, merged, **TOL)


def test_lora_causal_lm_every_adapter_gets_a_gradient_and_merges():
    """The same two promises for the language model."""
    model = lora_model(make_lm(), "CAUSAL_LM")
    ids, mask = padded([5, 2, 7], "right")
    model(
        input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)
    ).loss.backward()
    adapters = {n: p for n, p in model.named_parameters() if "lora_" in n}
    no_grad = [n for n, p in adapters.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert adapters and not no_grad, f"adapters without gradient: {no_grad}"
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=ids, attention_mask=mask).logits
        merged = model.merge_and_unload()(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(adapted, merged, **TOL)


# --- 4. torch.compile(fullgraph=True) and torch.export -----------------------------------------


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "cls", [ScratchGPTModel, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification]
)
def test_model_declares_it_can_compile(cls):
    """transformers reads ``_can_compile_fullgraph`` (GPT-2: True) before compiling generate()."""
    assert cls._can_compile_fullgraph is True


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("make", [make_lm, make_classifier], ids=["causal_lm", "classifier"])
def test_compile_fullgraph_with_padding_mask(fresh_dynamo, make, side):
    """torch.compile(model, fullgraph=True) raises on any graph break (a Python branch on
    tensor data); compiled logits equal eager ones."""
    model = make()
    ids, mask = padded([5, 2, 7], side)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        got = compiled(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, **TOL)


def test_export_classifier_with_attention_mask():
    """torch.export.export traces the classifier with a padding mask; the program runs."""
    model = make_classifier(num_labels=3)
    ids, mask = padded([5, 2, 7], "left")
    program = torch.export.export(model, args=(), kwargs={"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        got = program.module()(input_ids=ids, attention_mask=mask)
    got = got["logits"] if isinstance(got, dict) else got[0]
    torch.testing.assert_close(got, expected, **TOL)


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    """``torch.onnx.export(dynamo=True)`` with dynamic batch and length; ONNX Runtime on the CPU
    gives the model's logits for other shapes and both paddings."""
    import onnxruntime

    from scratchgpt.inference.export import LogitsOnly, export_onnx

    model = LogitsOnly(make_classifier(num_labels=3)).eval()
    export_onnx(model.model, tmp_path / "classifier.onnx", max_length=64)
    session = onnxruntime.InferenceSession(
        tmp_path / "classifier.onnx", providers=["CPUExecutionProvider"]
    )
    for lengths, side in (([9, 3, 4, 1], "right"), ([6, 2], "left")):
        ids, mask = padded(lengths, side)
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), model(ids, mask), **TOL)


# --- 5. Classifier: output switches and problem_type -------------------------------------------


def test_classifier_return_dict_false_returns_tuple():
    """return_dict=False (argument or config) gives a plain tuple: (loss, logits)."""
    model = make_classifier(num_labels=3)
    ids, mask = padded([5, 2, 7], "right")
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        as_dict = model(ids, attention_mask=mask, labels=labels)
        as_tuple = model(ids, attention_mask=mask, labels=labels, return_dict=False)
        model.config.return_dict = False
        from_config = model(ids, attention_mask=mask, labels=labels)
    for out in (as_tuple, from_config):
        assert type(out) is tuple
        torch.testing.assert_close(out[0], as_dict.loss)
        torch.testing.assert_close(out[1], as_dict.logits)


@pytest.mark.parametrize("make", [make_lm, make_classifier], ids=["causal_lm", "classifier"])
def test_config_output_hidden_states(make):
    """config.output_hidden_states=True returns n_layers + 1 hidden states without asking."""
    model = make()
    model.config.output_hidden_states = True
    ids, mask = padded([5, 2, 7], "right")
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
    assert out.hidden_states is not None
    assert len(out.hidden_states) == model.config.n_layers + 1
    assert out.hidden_states[0].shape == (3, 7, model.config.emb_dim)


@pytest.mark.parametrize("make", [make_lm, make_classifier], ids=["causal_lm", "classifier"])
def test_output_attentions_with_eager_attention(make):
    """attn_implementation="eager" + output_attentions=True returns one (B, nh, T, T)
    softmax per layer, zero on padding keys and on future keys; logits equal SDPA's."""
    sdpa_model = make()
    model = type(sdpa_model)._from_config(sdpa_model.config, attn_implementation="eager")
    model.load_state_dict(sdpa_model.state_dict())
    model.eval()
    assert model.config._attn_implementation == "eager"
    ids, mask = padded([5, 2, 7], "left")
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_attentions=True)
        expected = sdpa_model(ids, attention_mask=mask).logits
    torch.testing.assert_close(out.logits, expected, **TOL)
    assert out.attentions is not None and len(out.attentions) == model.config.n_layers
    real = mask.bool()  # (B, T)
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)  # (T, T): key after query
    for weights in out.attentions:
        assert weights.shape == (3, model.config.n_heads, 7, 7)
        sums = weights.sum(-1).transpose(1, 2)[real]  # (real queries, nh): each a softmax
        torch.testing.assert_close(sums, torch.ones_like(sums))
        assert weights[:, :, future].abs().max() == 0
        on_pad_keys = weights * real[:, None, :, None] * ~real[:, None, None, :]
        assert on_pad_keys.abs().max() == 0  # real queries never look at padding


PROBLEMS = {
    # name: (num_labels, labels, problem_type as given, problem_type transformers infers)
    "single_label": (3, torch.tensor([0, 2, 1]), None, "single_label_classification"),
    "multi_label": (
        3,
        torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]]),
        None,
        "multi_label_classification",
    ),
    "regression": (1, torch.tensor([0.5, -1.0, 2.0]), None, "regression"),
    "one_label_integer_targets": (1, torch.tensor([0, 1, 1]), None, "regression"),
    "explicit_regression_3_outputs": (
        3,
        torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]),
        "regression",
        "regression",
    ),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_classifier_loss_follows_problem_type(problem):
    """The loss is the one transformers' ForSequenceClassificationLoss (GPT-2's rule) computes
    from the same logits, and problem_type is inferred into the config the same way."""
    num_labels, labels, given, inferred = PROBLEMS[problem]
    model = make_classifier(num_labels=num_labels, problem_type=given)
    ids, mask = padded([5, 2, 7], "right")
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    reference = SimpleNamespace(num_labels=num_labels, problem_type=given)
    expected = ForSequenceClassificationLoss(labels, out.logits, reference)
    assert reference.problem_type == inferred
    assert model.config.problem_type == inferred
    torch.testing.assert_close(out.loss, expected)
    if problem == "regression":
        torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), labels))
    if problem == "multi_label":
        torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, labels))


# --- 6. Causal LM: transformers' loss and cache conventions ------------------------------------


def lm_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = padded([5, 2, 7], "right")
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, :2] = -100
    return ids, mask, labels


def test_lm_loss_equals_transformers_for_causal_lm_loss():
    model = make_lm()
    ids, mask, labels = lm_batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, ForCausalLMLoss(out.logits, labels, VOCAB))


def test_lm_loss_honours_num_items_in_batch():
    """Trainer passes num_items_in_batch (target tokens over all accumulated micro-batches):
    the loss is then the sum over this batch divided by that count."""
    model = make_lm()
    ids, mask, labels = lm_batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(40))
    expected = ForCausalLMLoss(out.logits, labels, VOCAB, num_items_in_batch=torch.tensor(40))
    torch.testing.assert_close(out.loss, expected)


def test_lm_loss_honours_shift_labels():
    """A collator that already shifted the targets passes shift_labels: used as they are."""
    model = make_lm()
    ids, mask, labels = lm_batch()
    shift_labels = torch.randint(1, VOCAB, ids.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels, shift_labels=shift_labels)
    expected = ForCausalLMLoss(out.logits, labels, VOCAB, shift_labels=shift_labels)
    torch.testing.assert_close(out.loss, expected)


def cache_of(output):
    """The returned KV cache: ``output.cache`` (5.24+), ``past_key_values`` before."""
    name = "cache" if "cache" in type(output).__dataclass_fields__ else "past_key_values"
    return getattr(output, name)


def test_use_cache_defaults_to_config():
    """config.use_cache=True (the default): a plain forward returns a cache; False: none."""
    model = make_lm()
    ids, mask = padded([5, 2, 7], "right")
    with torch.no_grad():
        assert cache_of(model(ids, attention_mask=mask)) is not None
        model.config.use_cache = False
        assert cache_of(model(ids, attention_mask=mask)) is None


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_forward_continues_from_a_cache_under_either_name(name):
    """transformers 5.24's generate() passes ``cache=``; older code ``past_key_values=``."""
    model = make_lm()
    ids, mask = padded([5, 2, 7], "left")
    with torch.no_grad():
        full = model(ids, attention_mask=mask, use_cache=False).logits
        prefix = model(ids[:, :4], attention_mask=mask[:, :4], use_cache=True)
        rest = model(ids[:, 4:], attention_mask=mask, use_cache=True, **{name: cache_of(prefix)})
    real = mask[:, 4:].bool()
    torch.testing.assert_close(rest.logits[real], full[:, 4:][real], **TOL)


# --- 7. A clean log: no deprecation notices caused by our code ---------------------------------


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def deprecation_notices():
    """Collect deprecation messages: transformers logs them once per process through its own
    logger (``warning_once``, whose memory is cleared here) or raises FutureWarnings.
    Warnings raised inside torch itself are not ours and are left out."""
    logging.Logger.warning_once.cache_clear()
    logger = logging.getLogger("transformers")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    found: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    messages = handler.messages + [
        str(w.message) for w in caught if "/torch/" not in w.filename.replace("\\", "/")
    ]
    found.extend(m for m in messages if "deprecat" in m.lower())


def test_no_deprecation_notices_in_forward_and_generate():
    lm, classifier = make_lm(), make_classifier(num_labels=3)
    ids, mask = padded([5, 2, 7], "left")
    prompt, prompt_mask = padded([6], "left")  # unpadded: generate() runs even on old code
    with deprecation_notices() as found, torch.no_grad():
        lm(ids, attention_mask=mask)
        lm(ids, attention_mask=mask, labels=ids)
        generate(lm, prompt, prompt_mask)
        generate(lm, prompt, prompt_mask, use_cache=False)
        generate(lm, prompt, prompt_mask, num_beams=2)
        classifier(ids, attention_mask=mask, labels=torch.tensor([0, 1, 2]))
    assert not found, found


def test_token_type_ids_are_embedded_as_gpt2_does():
    """GPT-2 adds ``wte(token_type_ids)`` to its input embeddings; ours must too (every class),
    not drop them silently."""
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=99, context_length=16, emb_dim=32, n_heads=2, n_layers=2)
    lm = ScratchGPTForCausalLM(config).eval()
    classifier = ScratchGPTForSequenceClassification(config).eval()
    ids, types = torch.randint(0, 99, (2, 6)), torch.randint(0, 3, (2, 6))
    with torch.no_grad():
        shift = lm.gpt.embed(ids, token_type_ids=types) - lm.gpt.embed(ids)
        torch.testing.assert_close(shift, lm.gpt.tok_emb(types))  # GPT-2's rule
        assert not torch.allclose(lm(ids, token_type_ids=types).logits, lm(ids).logits)
        typed = classifier(ids, token_type_ids=types).logits
        assert not torch.allclose(typed, classifier(ids).logits)
        full = classifier(ids, token_type_ids=types, output_hidden_states=True).logits
        torch.testing.assert_close(typed, full)  # the pooled fast path sees them too
