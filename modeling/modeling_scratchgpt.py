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
import warnings

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
from .layers_scratchgpt import (
    ScratchGPTAttention,
    ScratchGPTFeedForward,
    TransformerBlock,
    is_tracing,
    mask_for_real_tokens,
    pool_hidden_states,
    pool_through_blocks,
    position_ids_from_mask,
    run_blocks,
)


class ScratchGPTBlock(GradientCheckpointingLayer, TransformerBlock):
    """Pre-LayerNorm transformer block (``layers_scratchgpt.TransformerBlock``) with
    transformers' gradient checkpointing around its ``forward``."""


# transformers 5.24 renamed the KV cache from ``past_key_values`` to ``cache`` (argument and
# output field); this file ships to the Hub and meets both, so it reads the field name once.
_CACHE_FIELD = (
    "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"
)


def _one_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The KV cache under either name; the old one warns where transformers has the new one."""
    if past_key_values is None:
        return cache
    if cache is not None:
        raise ValueError("pass the KV cache as `cache` or as `past_key_values`, not both")
    if _CACHE_FIELD == "cache" and not is_tracing():
        warnings.warn(
            "`past_key_values` is deprecated in transformers >= 5.24: pass the KV cache as `cache`",
            FutureWarning,
            stacklevel=3,
        )
    return past_key_values


def _with_cache(output_class, cache: Cache | None, **fields):
    return output_class(**fields, **{_CACHE_FIELD: cache})


class ScratchGPTPreTrainedModel(PreTrainedModel):
    config_class = ScratchGPTConfig
    config: ScratchGPTConfig
    base_model_prefix = "gpt"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ScratchGPTBlock"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    # No tensor-valued Python branch under torch.compile/export (see build_attention_mask), and
    # the cache is transformers' own (static caches included).
    _can_compile_fullgraph = True

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

    def _flag(self, value: bool | None, name: str) -> bool:
        """A per-call flag (``output_hidden_states``, ``return_dict``, ...), else the config's."""
        return bool(value if value is not None else getattr(self.config, name, False))


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
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token + position embeddings (with embedding dropout): the input of block 0.

        ``token_type_ids`` (optional, as in GPT-2) are embedded with the token embedding and
        added: GPT-2 has no separate segment table, and neither has the book's model."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)
        seq_len = inputs_embeds.shape[1]
        if isinstance(past_len, int) and past_len + seq_len > self.config.context_length:
            raise ValueError(
                f"sequence of {past_len + seq_len} tokens exceeds context_length "
                f"{self.config.context_length}; truncate the input"
            )
        if position_ids is None:
            position_ids = position_ids_from_mask(
                attention_mask, seq_len, past_len, inputs_embeds.device
            )
        hidden = inputs_embeds + self.pos_emb(position_ids)
        if token_type_ids is not None:
            hidden = hidden + self.tok_emb(token_type_ids)
        return self.drop_emb(hidden)

    def run_blocks(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        start: int = 0,
        end: int | None = None,
        cache: Cache | None = None,
        all_hidden: list[torch.Tensor] | None = None,
        all_attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run blocks ``start..end-1`` on ``hidden`` (B, T, E); no final norm. Block inputs are
        appended to ``all_hidden`` and attention weights to ``all_attentions`` when given."""
        return run_blocks(
            self.blocks[start:end], hidden, attention_mask, cache, all_hidden, all_attentions
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        """``cache`` (transformers >= 5.24) and ``past_key_values`` (older) are the same input."""
        cache = _one_cache(cache, past_key_values)
        use_cache = self._flag(use_cache, "use_cache")
        if self.gradient_checkpointing and self.training:
            use_cache = False  # recomputation and a growing cache do not mix
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if not use_cache:
            cache = None
        past_len = cache.get_seq_length() if cache is not None else 0
        hidden = self.embed(
            input_ids, attention_mask, position_ids, inputs_embeds, past_len, token_type_ids
        )
        all_hidden = [] if self._flag(output_hidden_states, "output_hidden_states") else None
        all_attentions = [] if self._flag(output_attentions, "output_attentions") else None
        hidden = self.run_blocks(
            hidden,
            attention_mask,
            cache=cache,
            all_hidden=all_hidden,
            all_attentions=all_attentions,
        )
        hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden.append(hidden)
        output = _with_cache(
            BaseModelOutputWithPast,
            cache,
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_attentions) if all_attentions is not None else None,
        )
        return output if self._flag(return_dict, "return_dict") else output.to_tuple()


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
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """``labels`` are the input ids (shifted inside); -100 marks positions to ignore. The
        loss is transformers' causal-LM loss, so its keyword arguments (``num_items_in_batch``
        from ``Trainer``, ``shift_labels``, ``ignore_index``) pass through ``**kwargs``."""
        outputs = self.gpt(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_one_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            token_type_ids=token_type_ids,
        )
        hidden = outputs.last_hidden_state
        # generation reads only the last position: an int keeps the last k, a tensor indexes
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.out_head(hidden[:, keep])  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        output = _with_cache(
            CausalLMOutputWithPast,
            outputs.get(_CACHE_FIELD),
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if self._flag(return_dict, "return_dict") else output.to_tuple()


def sequence_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: ScratchGPTConfig,
    num_items_in_batch: int | torch.Tensor | None = None,
    **kwargs,
) -> torch.Tensor:
    """transformers' sequence-classification loss: ``config.problem_type`` picks MSE
    ("regression"), cross-entropy ("single_label_classification") or BCE-with-logits
    ("multi_label_classification"); unset, it is inferred and stored as transformers does
    (one label -> regression; integer labels -> single-label; else multi-label).

    With ``num_items_in_batch`` (``Trainer`` passes the number of labels in the whole
    accumulated batch) the loss is a sum divided by it, so gradient accumulation over
    micro-batches of any size gives the gradient of one big batch, for every problem type.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    logits = logits.float()
    reduction = "mean" if num_items_in_batch is None else "sum"
    if config.problem_type == "regression":
        if num_labels == 1:
            logits, labels = logits.squeeze(), labels.squeeze()
        loss = F.mse_loss(logits, labels.to(logits.dtype), reduction=reduction)
    elif config.problem_type == "single_label_classification":
        loss = F.cross_entropy(
            logits.view(-1, num_labels), labels.view(-1), ignore_index=-100, reduction=reduction
        )
    elif config.problem_type == "multi_label_classification":
        loss = F.binary_cross_entropy_with_logits(
            logits, labels.to(logits.dtype), reduction=reduction
        )
    else:
        raise ValueError(
            f"config.problem_type must be 'regression', 'single_label_classification' or "
            f"'multi_label_classification', got {config.problem_type!r}"
        )
    if num_items_in_batch is not None:
        loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
    return loss


class ScratchGPTForSequenceClassification(ScratchGPTPreTrainedModel):
    """The chapter-6 classifier: the GPT backbone, a pooled token state, a linear head.

    Without an ``attention_mask``, padding is recognised as transformers' GPT-2 classifier does
    it: by ``config.pad_token_id`` in ``input_ids`` (for pooling; the blocks see every token).
    """

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
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """``labels``: class ids (single-label), floats (regression, one per output) or
        multi-hot floats (multi-label); see :func:`sequence_classification_loss`."""
        pool_mask = self._pooling_mask(input_ids, attention_mask)
        output_hidden_states = self._flag(output_hidden_states, "output_hidden_states")
        output_attentions = self._flag(output_attentions, "output_attentions")
        if output_hidden_states or output_attentions:
            # every token's states are asked for: run the whole final block
            outputs = self.gpt(
                input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
                use_cache=False,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
                token_type_ids=token_type_ids,
            )
            pooled = pool_hidden_states(outputs.last_hidden_state, pool_mask, self.config.pooling)
            hidden_states, attentions = outputs.hidden_states, outputs.attentions
        else:
            hidden = self.gpt.embed(
                input_ids, attention_mask, position_ids, inputs_embeds, 0, token_type_ids
            )
            pooled = self._pool_from_block(hidden, 0, attention_mask, pool_mask)
            hidden_states = attentions = None
        output = self._classify(pooled, labels, hidden_states, attentions, **kwargs)
        return output if self._flag(return_dict, "return_dict") else output.to_tuple()

    def _pooling_mask(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Which tokens are real for pooling: the attention mask, else (like GPT-2's
        classifier) every id that is not ``config.pad_token_id``."""
        if attention_mask is not None and attention_mask.dim() == 2:
            return attention_mask
        if input_ids is None or self.config.pad_token_id is None:
            return None
        return (input_ids != self.config.pad_token_id).long()

    def embed_and_run_blocks(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        end_block: int | None = None,
    ) -> torch.Tensor:
        """Hidden states after blocks ``0..end_block-1``: what a frozen prefix always yields.
        Only the real tokens' states are meant to be read (``mask_for_real_tokens``)."""
        hidden = self.gpt.embed(input_ids, attention_mask)
        return self.gpt.run_blocks(hidden, mask_for_real_tokens(attention_mask), end=end_block)

    def forward_from_block(
        self,
        hidden_states: torch.Tensor,
        start_block: int,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Finish a forward pass from precomputed states entering block ``start_block``
        (``n_layers`` means only the final norm and the head remain)."""
        pooled = self._pool_from_block(hidden_states, start_block, attention_mask, attention_mask)
        return self._classify(pooled, labels)

    def _pool_from_block(
        self,
        hidden: torch.Tensor,
        start: int,
        attention_mask: torch.Tensor | None,
        pool_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Run blocks ``start..`` and pool: (B, T, E) -> (B, E) (``pool_through_blocks``)."""
        return pool_through_blocks(
            self.gpt.blocks[start:],
            self.gpt.final_norm,
            hidden,
            attention_mask,
            pool_mask,
            self.config.pooling,
        )

    def _classify(
        self,
        pooled: torch.Tensor,
        labels: torch.Tensor | None,
        hidden_states: tuple[torch.Tensor, ...] | None = None,
        attentions: tuple[torch.Tensor, ...] | None = None,
        **loss_kwargs,
    ) -> SequenceClassifierOutput:
        logits = self.classifier(pooled)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, **loss_kwargs)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, attentions=attentions
        )


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
