"""The book's GPT-2 (chapter 4) as transformers models: base model, causal LM, sequence classifier.

This file ships to the Hugging Face Hub next to ``config.json`` and is loaded with
``trust_remote_code=True``: it may import only the standard library, torch and transformers,
and its sibling ``configuration_scratchgpt.py`` relatively.

Module names mirror the book (``tok_emb``, ``pos_emb``, ``trf_blocks`` -> ``blocks``, ``att``,
``ff``, ``norm1``/``norm2``, ``final_norm``, ``out_head``) with one change for speed: the
query/key/value projections are one fused ``att.qkv`` linear layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutput,
)

from .configuration_scratchgpt import ScratchGPTConfig


class ScratchGPTAttention(nn.Module):
    """Causal multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, config: ScratchGPTConfig, layer_idx: int):
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.drop_rate = config.drop_rate
        self.layer_idx = layer_idx
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        past_key_values: Cache | None = None,
    ) -> torch.Tensor:
        batch, seq_len, emb_dim = x.shape
        # (B, T, 3E) -> 3 x (B, nh, T, hs)
        q, k, v = (
            self.qkv(x).view(batch, seq_len, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        )
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)  # (B, nh, past + T, hs)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self._dropout_p(),
            is_causal=is_causal,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(batch, seq_len, emb_dim)  # (B, T, E)
        return self.out_proj(y)

    def forward_at(
        self, x: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Attention output at one query position per row, ``positions`` (B,): (B, E).

        Keys and values still come from every token, but the query, the output projection
        (and, in the block, the MLP) run on a single token instead of T.
        """
        batch, seq_len, emb_dim = x.shape
        rows = torch.arange(batch, device=x.device)
        bias_q = bias_kv = None
        if self.qkv.bias is not None:
            bias_q, bias_kv = self.qkv.bias.split([emb_dim, 2 * emb_dim])
        weight_q, weight_kv = self.qkv.weight.split([emb_dim, 2 * emb_dim])
        q = F.linear(x[rows, positions], weight_q, bias_q)  # (B, E)
        q = q.view(batch, self.n_heads, 1, self.head_dim)  # (B, nh, 1, hs)
        kv = F.linear(x, weight_kv, bias_kv).view(batch, seq_len, 2, self.n_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4)  # 2 x (B, nh, T, hs)
        key_pos = torch.arange(seq_len, device=x.device)[None, :]  # (1, T)
        keep = key_pos <= positions[:, None]  # (B, T): causal for the one query
        if attention_mask is not None:
            keep = (keep & attention_mask.bool()) | (key_pos == positions[:, None])
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep[:, None, None, :], dropout_p=self._dropout_p()
        )  # (B, nh, 1, hs)
        return self.out_proj(y.reshape(batch, emb_dim))

    def _dropout_p(self) -> float:
        return self.drop_rate if self.training else 0.0


class ScratchGPTFeedForward(nn.Module):
    """The 4x-wide MLP with GPT-2's tanh approximation of GELU."""

    def __init__(self, config: ScratchGPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.emb_dim, 4 * config.emb_dim)
        self.proj = nn.Linear(4 * config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class ScratchGPTBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm transformer block: x + att(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, config: ScratchGPTConfig, layer_idx: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.att = ScratchGPTAttention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.ff = ScratchGPTFeedForward(config)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = True,
        past_key_values: Cache | None = None,
    ) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), attn_mask, is_causal, past_key_values))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))

    def forward_at(
        self, x: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The block's output at one position per row (B, E): the same values ``forward``
        gives there, for about a sixth of the work when only that token is read."""
        x_at = x[torch.arange(x.shape[0], device=x.device), positions]  # (B, E)
        x_at = x_at + self.drop_shortcut(
            self.att.forward_at(self.norm1(x), positions, attention_mask)
        )
        return x_at + self.drop_shortcut(self.ff(self.norm2(x_at)))


def _is_right_padded(attention_mask: torch.Tensor) -> bool:
    """True when every row is ones then zeros: causal masking alone then hides the padding
    from every real token, so the fast ``is_causal`` kernel gives exact results."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def build_attention_mask(
    attention_mask: torch.Tensor | None, query_len: int, past_len: int
) -> tuple[torch.Tensor | None, bool]:
    """Return ``(attn_mask, is_causal)`` for ``scaled_dot_product_attention``.

    ``attention_mask`` is the usual (B, past + T) 1/0 padding mask. The cheap cases use the
    kernel's built-in causal mask; otherwise a boolean (B, 1, T, past + T) mask combines
    causality with padding. A padded query row always sees its own position, so no row is
    fully masked (which would give NaN); those rows are never read.
    """
    no_padding = attention_mask is None or bool(attention_mask.all())
    if past_len == 0 and (no_padding or _is_right_padded(attention_mask)):
        return None, query_len > 1
    if no_padding and query_len == 1:
        return None, False  # one new token may attend to everything cached
    total = past_len + query_len
    device = attention_mask.device if attention_mask is not None else None
    query_pos = torch.arange(past_len, total, device=device)[:, None]  # (T, 1)
    key_pos = torch.arange(total, device=device)[None, :]  # (1, past + T)
    causal = key_pos <= query_pos  # (T, past + T)
    if attention_mask is None:
        return causal[None, None], False
    keep = causal[None] & attention_mask[:, None, :].bool()  # (B, T, past + T)
    keep = keep | (key_pos == query_pos)[None]
    return keep[:, None], False  # (B, 1, T, past + T)


def position_ids_from_mask(
    attention_mask: torch.Tensor | None, query_len: int, past_len: int, device: torch.device
) -> torch.Tensor:
    """Positions count real tokens only, so left padding does not shift a message's positions."""
    if attention_mask is None:
        return torch.arange(past_len, past_len + query_len, device=device)[None]  # (1, T)
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -query_len:]  # (B, T)


class ScratchGPTPreTrainedModel(PreTrainedModel):
    config_class = ScratchGPTConfig
    config: ScratchGPTConfig
    base_model_prefix = "gpt"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ScratchGPTBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Point all four Auto classes at the code files saved next to the weights (a config
        # loaded from the Hub carries "repo--module.Class" entries that would go stale).
        self.config.auto_map = dict(AUTO_MAP)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # GPT-2's scheme: residual projections scaled by 1/sqrt(2 * n_layers), since each
        # block adds two of them to the residual stream.
        if isinstance(module, (ScratchGPTAttention, ScratchGPTFeedForward)):
            std = self.config.initializer_range / math.sqrt(2 * self.config.n_layers)
            proj = module.out_proj if isinstance(module, ScratchGPTAttention) else module.proj
            init.normal_(proj.weight, mean=0.0, std=std)


class ScratchGPTModel(ScratchGPTPreTrainedModel):
    """Embeddings, transformer blocks and the final LayerNorm: returns token hidden states."""

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.blocks = nn.ModuleList(ScratchGPTBlock(config, i) for i in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.tok_emb = value

    def embed(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_len: int = 0,
    ) -> torch.Tensor:
        """Token + position embeddings (with embedding dropout): the input of block 0."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)
        seq_len = inputs_embeds.shape[1]
        if past_len + seq_len > self.config.context_length:
            raise ValueError(
                f"sequence of {past_len + seq_len} tokens exceeds context_length "
                f"{self.config.context_length}; truncate the input"
            )
        if position_ids is None:
            position_ids = position_ids_from_mask(
                attention_mask, seq_len, past_len, inputs_embeds.device
            )
        return self.drop_emb(inputs_embeds + self.pos_emb(position_ids))

    def run_blocks(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        start: int = 0,
        end: int | None = None,
        past_key_values: Cache | None = None,
        all_hidden: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run blocks ``start..end-1`` on ``hidden`` (B, T, E); no final norm."""
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        attn_mask, is_causal = build_attention_mask(attention_mask, hidden.shape[1], past_len)
        for block in self.blocks[start:end]:
            if all_hidden is not None:
                all_hidden.append(hidden)
            hidden = block(hidden, attn_mask, is_causal, past_key_values)
        return hidden

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        use_cache = use_cache if use_cache is not None else False
        if self.gradient_checkpointing and self.training:
            use_cache = False  # recomputation and a growing cache do not mix
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if not use_cache:
            past_key_values = None
        output_hidden_states = (
            output_hidden_states
            if output_hidden_states is not None
            else self.config.output_hidden_states
        )
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        hidden = self.embed(input_ids, attention_mask, position_ids, inputs_embeds, past_len)
        all_hidden: list[torch.Tensor] | None = [] if output_hidden_states else None
        hidden = self.run_blocks(
            hidden, attention_mask, past_key_values=past_key_values, all_hidden=all_hidden
        )
        hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden.append(hidden)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden,
            past_key_values=past_key_values,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )
        return output if return_dict is not False else output.to_tuple()


class ScratchGPTForCausalLM(ScratchGPTPreTrainedModel, GenerationMixin):
    """The language model: next-token logits from an output head tied to the token embedding."""

    _tied_weights_keys = {"out_head.weight": "gpt.tok_emb.weight"}

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.gpt = ScratchGPTModel(config)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.out_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.out_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """``labels`` are the input ids (shifted inside); -100 marks positions to ignore."""
        outputs = self.gpt(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]  # generation only needs the last position
        logits = self.out_head(hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
        )
        return output if return_dict is not False else output.to_tuple()


def last_token_positions(
    attention_mask: torch.Tensor | None, batch: int, seq_len: int, device: torch.device
) -> torch.Tensor:
    """Index of each row's last real (mask = 1) token: (B,). Right, left or no padding."""
    if attention_mask is None:
        return torch.full((batch,), seq_len - 1, device=device)
    positions = torch.arange(seq_len, device=device)
    return (positions * attention_mask.long()).argmax(dim=1)


def pool_hidden_states(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str
) -> torch.Tensor:
    """(B, T, E) token states -> (B, E), reading only real (non-padding) tokens.

    "last" takes the last token whose mask is 1: correct for right padding, left padding and
    unpadded batches alike. The book reads position -1, which is a pad token for every
    message shorter than its batch.
    """
    if attention_mask is None:
        return hidden[:, -1] if pooling == "last" else hidden.mean(dim=1)
    if pooling == "mean":
        mask = attention_mask.to(hidden.dtype)  # (B, T)
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    batch, seq_len = attention_mask.shape
    last = last_token_positions(attention_mask, batch, seq_len, hidden.device)  # (B,)
    return hidden[torch.arange(batch, device=hidden.device), last]


class ScratchGPTForSequenceClassification(ScratchGPTPreTrainedModel):
    """The chapter-6 classifier: the GPT backbone, a pooled token state, a linear head."""

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.gpt = ScratchGPTModel(config)
        self.classifier = nn.Linear(config.emb_dim, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        if output_hidden_states:
            outputs = self.gpt(
                input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
                output_hidden_states=True,
            )
            pooled = pool_hidden_states(
                outputs.last_hidden_state, attention_mask, self.config.pooling
            )
            return self._classify(pooled, labels, outputs.hidden_states)
        hidden = self.gpt.embed(input_ids, attention_mask, position_ids, inputs_embeds)
        return self._classify(self._pool_from_block(hidden, 0, attention_mask), labels)

    def embed_and_run_blocks(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        end_block: int | None = None,
    ) -> torch.Tensor:
        """Hidden states after blocks ``0..end_block-1``: what a frozen prefix always yields."""
        hidden = self.gpt.embed(input_ids, attention_mask)
        return self.gpt.run_blocks(hidden, attention_mask, end=end_block)

    def forward_from_block(
        self,
        hidden_states: torch.Tensor,
        start_block: int,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
    ) -> SequenceClassifierOutput:
        """Finish a forward pass from precomputed states entering block ``start_block``
        (``n_layers`` means only the final norm and the head remain)."""
        pooled = self._pool_from_block(hidden_states, start_block, attention_mask)
        return self._classify(pooled, labels)

    def _pool_from_block(
        self, hidden: torch.Tensor, start: int, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Run blocks ``start..`` and pool: (B, T, E) -> (B, E).

        With "last" pooling only one token per message is read after the final block, so that
        block runs its query, output projection and MLP on that token alone.
        """
        if self.config.pooling != "last":
            hidden = self.gpt.final_norm(self.gpt.run_blocks(hidden, attention_mask, start=start))
            return pool_hidden_states(hidden, attention_mask, self.config.pooling)
        batch, seq_len, _ = hidden.shape
        last = last_token_positions(attention_mask, batch, seq_len, hidden.device)  # (B,)
        if start >= self.config.n_layers:
            at_last = hidden[torch.arange(batch, device=hidden.device), last]
        else:
            hidden = self.gpt.run_blocks(hidden, attention_mask, start=start, end=-1)
            at_last = self.gpt.blocks[-1].forward_at(hidden, last, attention_mask)  # (B, E)
        return self.gpt.final_norm(at_last)

    def _classify(
        self,
        pooled: torch.Tensor,
        labels: torch.LongTensor | None,
        hidden_states: tuple[torch.Tensor, ...] | None = None,
    ) -> SequenceClassifierOutput:
        logits = self.classifier(pooled)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


__all__ = [
    "ScratchGPTForCausalLM",
    "ScratchGPTForSequenceClassification",
    "ScratchGPTModel",
    "ScratchGPTPreTrainedModel",
]


# `save_pretrained` copies this file and its configuration sibling next to config.json and
# writes `auto_map`, so `Auto*.from_pretrained(folder, trust_remote_code=True)` works anywhere.
# One auto class per model class is all `register_for_auto_class` records; the full
# four-entry map is written by `ScratchGPTPreTrainedModel.save_pretrained` below.
AUTO_MAP = {
    "AutoConfig": "configuration_scratchgpt.ScratchGPTConfig",
    "AutoModel": "modeling_scratchgpt.ScratchGPTModel",
    "AutoModelForCausalLM": "modeling_scratchgpt.ScratchGPTForCausalLM",
    "AutoModelForSequenceClassification": "modeling_scratchgpt.ScratchGPTForSequenceClassification",
}
ScratchGPTConfig.register_for_auto_class()
ScratchGPTModel.register_for_auto_class("AutoModel")
ScratchGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
ScratchGPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
