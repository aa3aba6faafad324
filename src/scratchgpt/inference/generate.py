"""Text generation with a causal-LM model folder: the book's sanity check on converted weights.

Converted OpenAI weights continue the book's prompt "Every effort moves you" with fluent
English; broken conversions and random weights give word salad. Decoding is transformers'
``generate()`` (the model uses a KV cache), with greedy search at temperature 0, sampling
with temperature and top-k otherwise.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from scratchgpt.inference.arguments import DEFAULT_PROMPT, GenerateArguments
from scratchgpt.inference.classify import (
    load_with_folder_code,
    resolve_encoding,
    resolve_model_folder,
)
from scratchgpt.tokenizer import ENDOFTEXT


def load_language_model(
    path_or_repo: str | Path, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, Path]:
    """``(model, folder)`` through ``AutoModelForCausalLM`` with the folder's own code."""
    folder = resolve_model_folder(path_or_repo)
    model = load_with_folder_code(AutoModelForCausalLM, folder)
    if device is not None:
        model.to(device)
    return model.eval(), folder


def generate_text(
    model: PreTrainedModel,
    tokenizer: str | Path,
    prompt: str,
    max_new_tokens: int = 25,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = 123,
    num_samples: int = 1,
) -> list[str]:
    """Continue ``prompt``; returns ``num_samples`` texts (prompt included).

    ``temperature`` 0 is greedy (deterministic, so ``num_samples`` must be 1); above 0 it
    samples from the softmax of logits / temperature, restricted to the ``top_k`` most likely
    tokens when given. ``seed`` makes sampling repeatable.
    """
    if not prompt:
        raise ValueError("the prompt is empty: give at least one word")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0 and num_samples > 1:
        raise ValueError("greedy decoding gives one answer: use --temperature > 0 for samples")
    encoding = resolve_encoding(tokenizer)
    ids = encoding.encode(prompt, allowed_special={ENDOFTEXT})
    context = int(model.config.context_length)
    if len(ids) + max_new_tokens > context:
        raise ValueError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"context length {context}"
        )
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k or 0}
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples,
            pad_token_id=encoding.eot_token,
            **(sampling if temperature > 0 else {"do_sample": False}),
        )
    return [encoding.decode(row.tolist()) for row in output]


def generate(args: GenerateArguments, prompt: str = DEFAULT_PROMPT) -> list[str]:
    """``generate``: continue ``prompt`` with ``args.model``; returns the texts (prompt
    included), ``args.num_samples`` of them when sampling."""
    model, folder = load_language_model(args.model, args.device)
    return generate_text(
        model,
        folder,
        prompt,
        args.max_new_tokens,
        args.temperature,
        args.top_k,
        args.seed,
        args.num_samples,
    )
